"""How VGG16 sees the world: the study's filters, its sea-snake class image and a photo pushed to triceratops
(official weights when on disk, else random weights, labelled MEANINGLESS).

Run:
    python -m experiments.see_the_world_vgg16 --config configs/see_the_world_vgg16.py
Overrides, e.g.:
    python -m experiments.see_the_world_vgg16 --config configs/see_the_world_vgg16.py --config.target.units=rgb
With the official VGG16 weights (fetched once): ``python -m jaxfool.weights fetch vgg16``.
"""

from __future__ import annotations

import dataclasses

from configs.common import Base
from jaxfool.visualize import AscentConfig


@dataclasses.dataclass
class VggTargetConfig:
    """A real photo pushed towards an ImageNet class on VGG16: the study's Mona Lisa -> triceratops.

    The study's recipe: the photo thumbnailed to width 224 and cropped 224x224 from the top-left, ``/ 256``,
    its ``normalize_img`` (centre, ``/ (std + 1e-5)``, ``x 0.1``, ``+ 0.5``, clip to ``[0, 1]``), then 60
    ascent steps of 0.01 on p(triceratops, class 51) with the RMS-normalised gradient. It reached 0.9966.

    ``units`` says how those ``[0, 1]`` pixels meet VGG16; the default reproduces the study exactly:

    * ``"study"``: as the study did it. It fed the ``[0, 1]`` pixels straight into Keras' VGG16, which has no
      preprocessing inside and whose ImageNet weights expect ``preprocess_input`` (BGR, ImageNet mean
      subtracted, 0..255 scale); the study never called it. jaxfool's ``vgg16(preprocess=False)`` is that same
      network, so the photo goes in as it is, with step 0.01 and no clipping (the study had none). This is the
      setting of the study's numbers (p(triceratops) 0.00016 at the start, 0.9966 printed last: the study
      printed p before each step, so that is ``curve[59]`` here; not checked offline, where neither the official
      weights nor the Mona Lisa are at hand). VGG16 then sees a low-contrast, nearly mean-coloured picture,
      not the photo it would see in deployment.
    * ``"rgb"``: the recipe in jaxfool's pixel units, as VGG16 is meant to be fed: the normalised photo ``x 255``
      into ``vgg16(preprocess=True)`` (RGB 0..255, caffe preprocessing inside), step ``0.01 x 255 = 2.55``
      (the same step relative to the picture's contrast), clipped to ``[0, 255]`` after every step, so every
      snapshot is a valid photo. Much larger in the network's units than the study's step: expect p to
      saturate in far fewer steps.

    Attributes:
        enabled: run the image-to-target sequence (it needs the 224x224 network with its classifier).
        image: a photo file, or the name of a scikit-image sample photo (default ``astronaut``: a portrait,
            like the Mona Lisa).
        target_class: the ImageNet class to push to (51: triceratops).
        units: ``"study"`` or ``"rgb"`` (above).
        steps: ascent steps (the study: two runs of 30).
        step: step size in units of the ``[0, 1]`` pixel range (``x 255`` with ``units="rgb"``).
        snapshots: pictures along the way, evenly spaced, the start and the end included (7: every 10 steps).
        unroll: the ascent's ``unroll`` for each stretch between snapshots; 0 unrolls it. Measured here (VGG16
            at 224x224, 2 shared CPU cores): 0.95 s per step unrolled against 2.0 s rolled (a while loop), and
            the default 60 steps in 10-step stretches took 48.5 s with compilation.
    """

    enabled: bool = True
    image: str = "astronaut"
    target_class: int = 51
    units: str = "study"
    steps: int = 60
    step: float = 0.01
    snapshots: int = 7
    unroll: int = 0

    def validate(self) -> None:
        if self.units not in ("study", "rgb"):
            raise ValueError(f"target.units={self.units!r} is unknown; use 'study' or 'rgb'")
        if not 0 <= self.target_class < 1000:
            raise ValueError(f"target.target_class={self.target_class} is out of range; use 0..999")
        if not 2 <= self.snapshots <= self.steps + 1:
            raise ValueError(f"target.snapshots={self.snapshots} must be in 2..steps + 1 ({self.steps + 1})")


@dataclasses.dataclass
class Config(Base):
    """VGG16: the study's filter, class and image-to-target recipes (the common fields: :class:`configs.common.Base`;
    ``seed`` seeds random weights, the filter choice and every start). Rolled step loops for the filters and the
    class image (``unroll=1``): unrolling many VGG16 steps costs long compilations on CPU.

    Attributes:
        weights: ``"auto"`` (the official Keras ImageNet weights if they are already on disk where
            ``jaxfool.weights`` looks, e.g. after ``python -m jaxfool.weights fetch vgg16``; else random weights
            with a logged warning), ``"imagenet"`` (official; fetched if missing, an error offline),
            ``"random"`` (every picture then says MEANINGLESS: a check that the code runs) or a weights
            file / checkpoint folder. Titles and ``metrics.json`` name the weights used.
        layers: the study's layers; ``filters_per_layer`` random filters of each at ``size`` x ``size``.
        filters_per_layer: filters drawn at random from each layer.
        size: the filter images' side in pixels.
        filters: the study's filter recipe (20 steps of 1 from its gray noise, which the blog fed to the conv
            stack: the raw start preprocesses to it, see ``jaxfool.visualize.VGG_NOISE``; unclipped).
        class_index: the study's sea snake; 30 steps of 7 from the same noise at 224x224 (``None``: skip).
        classes: the class recipe.
        target: a real photo pushed to a class (the Mona Lisa -> triceratops).
        thresholds: probabilities whose first crossing step is recorded.
    """

    weights: str = "auto"
    layers: tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
    filters_per_layer: int = 3
    size: int = 128
    filters: AscentConfig = dataclasses.field(default_factory=lambda: AscentConfig(steps=20, step_size=1.0, unroll=1))
    class_index: int | None = 65
    classes: AscentConfig = dataclasses.field(default_factory=lambda: AscentConfig(steps=30, step_size=7.0, unroll=1))
    target: VggTargetConfig = dataclasses.field(default_factory=VggTargetConfig)
    thresholds: tuple[float, ...] = (0.99, 0.999, 0.9999)

    def validate(self) -> None:
        if not 0 <= (self.class_index or 0) < 1000 or self.filters_per_layer < 1 or self.size < 32:
            raise ValueError("class_index must be in 0..999, filters_per_layer >= 1 and size >= 32 (VGG16's 5 pools)")


def get_config() -> Config:
    return Config()
