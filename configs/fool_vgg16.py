"""How to fool a CNN in 5 easy steps: VGG16's top-3 guesses and Grad-CAM for a folder of photos.

Run (official ImageNet weights; fetched once with `python -m jaxfool.weights fetch vgg16`):
    python -m experiments.fool_vgg16 --config configs/fool_vgg16.py --config.image_dir=path/to/photos
Offline, on scikit-image's sample photos, with random weights (meaningless predictions, real pipeline):
    python -m experiments.fool_vgg16 --config configs/fool_vgg16.py --config.weights=random
"""

from __future__ import annotations

import dataclasses

from configs.common import Base


@dataclasses.dataclass
class Config(Base):
    """The fool-VGG16 experiment (the common fields: :class:`configs.common.Base`; ``seed`` seeds random weights).

    Attributes:
        image_dir: a folder of .jpg/.png photos; empty: scikit-image's chelsea, coffee, astronaut and rocket.
        weights: ``"imagenet"``, ``"random"`` (meaningless predictions) or a weights file / checkpoint folder.
        top: predictions listed per image.
        layer: the layer of the Grad-CAM overlay (the study's: the last conv layer).
        gif_ms: display time of each layer in the Grad-CAM GIF.
    """

    image_dir: str = ""
    weights: str = "imagenet"
    top: int = 3
    layer: str = "block5_conv3"
    gif_ms: int = 500

    def validate(self) -> None:
        if not 1 <= self.top <= 1000:
            raise ValueError(f"top={self.top} is out of range; use 1..1000")


def get_config() -> Config:
    return Config()
