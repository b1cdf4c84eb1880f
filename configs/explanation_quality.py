"""Can these explanations be trusted? Faithfulness (deletion / insertion AUC) and Adebayo et al.'s sanity checks
for eight heatmap methods on the trained MNIST CNN.

Run:
    python -m experiments.explanation_quality --config configs/explanation_quality.py
Quicker (fewer digits, no shuffled-label model):
    python -m experiments.explanation_quality --config configs/explanation_quality.py --config.num_images=20 \
        --config.data_randomization=false
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase
from jaxfool.explain.evaluation import HEATMAP_METHODS


@dataclasses.dataclass
class Config(MnistBase):
    """The explanation-quality measurement (the common fields: :class:`configs.common.MnistBase`; ``seed`` seeds
    the random maps, SmoothGrad's noise and the randomised weights).

    Attributes:
        num_images: test digits explained (their predicted class), taken evenly from every class.
        methods: heatmap methods, among ``jaxfool.explain.evaluation.HEATMAP_METHODS``.
        sanity_methods: the methods put through cascading randomisation.
        steps: points of the deletion and insertion curves, minus one.
        blur_sigma: the insertion curve starts from the image blurred by this many pixels.
        data_randomization: also train the CNN on shuffled labels and compare its maps (Adebayo's data test).
    """

    num_images: int = 100
    methods: tuple[str, ...] = HEATMAP_METHODS
    sanity_methods: tuple[str, ...] = ("saliency", "smooth_grad", "grad_cam", "guided_backprop")
    steps: int = 28
    blur_sigma: float = 2.0
    data_randomization: bool = True

    def validate(self) -> None:
        unknown = sorted((set(self.methods) | set(self.sanity_methods)) - set(HEATMAP_METHODS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; valid: {', '.join(HEATMAP_METHODS)}")
        if self.num_images < 1 or self.steps < 1 or self.blur_sigma <= 0:
            raise ValueError("num_images and steps must be >= 1 and blur_sigma > 0")


def get_config() -> Config:
    return Config()
