"""Does occlusion point at the digit? IoU of the top-20% occlusion region with the ink on MNIST test digits.

Run:
    python -m experiments.ink_overlap --config configs/ink_overlap.py
Another window, e.g.:
    python -m experiments.ink_overlap --config configs/ink_overlap.py --config.occlusion.window=6
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase
from jaxfool.explain import OcclusionConfig


@dataclasses.dataclass
class Config(MnistBase):
    """The ink-overlap measurement (the common fields: :class:`configs.common.MnistBase`; ``seed`` seeds the
    random maps).

    Attributes:
        num_images: test digits explained (their predicted class), taken evenly from every class.
        fraction: share of pixels in the top region of each heatmap.
        ink_threshold: ink is brighter than this fraction of the pixel range.
        occlusion: occlusion settings; a black window on MNIST's black background.
        other_baselines: further occluding values measured in the same run (0.5: mid-gray).
    """

    num_images: int = 100
    fraction: float = 0.2
    ink_threshold: float = 0.5
    occlusion: OcclusionConfig = dataclasses.field(
        default_factory=lambda: OcclusionConfig(window=4, stride=1, baseline=0.0, batch_size=128))
    other_baselines: tuple[float, ...] = (0.5,)

    def validate(self) -> None:
        if self.num_images < 1 or not 0 < self.fraction <= 1 or not 0 <= self.ink_threshold < 1:
            raise ValueError("num_images must be >= 1, fraction in (0, 1] and ink_threshold in [0, 1)")


def get_config() -> Config:
    return Config()
