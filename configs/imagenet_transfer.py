"""ImageNet transfer: Xie et al.'s Table 1 between VGG16, ResNet50 and ResNet101, and the fourth study's
cross-model part (FGSM at eps 4 on VGG16 -> ResNet101's top-1 and Grad-CAM beside VGG16's).

Run (official weights when on disk -- `python -m jaxfool.weights fetch vgg16|resnet50|resnet101` -- else
random weights, labelled MEANINGLESS):
    python -m experiments.imagenet_transfer --config configs/imagenet_transfer.py
On your own photos:
    python -m experiments.imagenet_transfer --config configs/imagenet_transfer.py --config.image_dir=photos/
"""

from __future__ import annotations

import dataclasses

from configs.common import Base


@dataclasses.dataclass
class Config(Base):
    """The ImageNet transfer table and cross-model comparison (the common fields: :class:`configs.common.Base`;
    ``seed`` seeds random weights and the attacks).

    Attributes:
        weights: ``auto`` (official if on disk, else random), ``imagenet`` (fetch if needed) or ``random``.
        image_dir: folder of photos; empty: scikit-image's sample photos.
        max_images: at most this many photos (sorted by name).
        models: sources and targets among vgg16, resnet50, resnet101 (empty: no table).
        attacks: registry names (Xie et al.: fgsm, ifgsm, mifgsm, di2fgsm, mdi2fgsm).
        eps: L-inf radius in pixel units of 0-255 (Xie et al.: 15).
        steps: steps of the iterative attacks.
        decay: MI-FGSM momentum decay.
        diversity_prob: DI2-FGSM transformation probability.
        cross_model: run the VGG16 -> ResNet101 comparison.
        cross_eps: its FGSM radius in pixel units (the study: 4).
        batch_size: images per compiled call.
    """

    weights: str = "auto"
    image_dir: str = ""
    max_images: int = 8
    models: tuple[str, ...] = ("vgg16", "resnet50", "resnet101")
    attacks: tuple[str, ...] = ("fgsm", "ifgsm", "mifgsm", "di2fgsm", "mdi2fgsm")
    eps: float = 15.0
    steps: int = 10
    decay: float = 1.0
    diversity_prob: float = 0.5
    cross_model: bool = True
    cross_eps: float = 4.0
    batch_size: int = 4

    def validate(self) -> None:
        if self.weights not in ("auto", "imagenet", "random"):
            raise ValueError(f"weights={self.weights!r}: use auto, imagenet or random")
        unknown = [m for m in self.models if m not in ("vgg16", "resnet50", "resnet101")]
        if unknown:
            raise ValueError(f"unknown models {unknown}; use vgg16, resnet50, resnet101")
        if self.eps <= 0 or self.cross_eps <= 0 or self.eps > 255 or self.cross_eps > 255:
            raise ValueError("eps and cross_eps are pixel radii in (0, 255]")
        if self.steps < 1 or self.max_images < 1 or self.batch_size < 1 or not 0 <= self.diversity_prob <= 1:
            raise ValueError("need steps, max_images, batch_size >= 1 and 0 <= diversity_prob <= 1")


def get_config() -> Config:
    return Config()
