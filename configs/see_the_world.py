"""How the MNIST CNN sees the world: filter grids, class maximisation, a digit pushed to another class, fooling
images (VGG16: ``configs/see_the_world_vgg16.py``).

Run:
    python -m experiments.see_the_world --config configs/see_the_world.py
Overrides, e.g.:
    python -m experiments.see_the_world --config configs/see_the_world.py --config.classes.steps=60

Step sizes for the MNIST CNN (pixels in [0, 1]): the study's filter step of 1 grey level in 0..255 is 1/255 here,
and its noise spread of 20 grey levels is 20/255 around mid-grey 0.5. Class maximisation uses 0.05 (about 13
grey levels, the study used 7 for VGG16) and pushing a real digit uses the study's 0.01.
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase
from jaxfool.visualize import AscentConfig


def mnist_ascent(steps: int, step_size: float, **kw) -> AscentConfig:
    """An ascent in the MNIST CNN's pixel units: ``[0, 1]``, clipped after every step."""
    return AscentConfig(steps=steps, step_size=step_size, clip=True, bounds=(0.0, 1.0), **kw)


@dataclasses.dataclass
class TargetConfig:
    """A real test digit pushed towards another class (the study's Mona Lisa -> triceratops).

    Attributes:
        source_class: the first test digit of this class is the start.
        target_class: the class it is pushed to.
        snapshots: pictures taken along the way (evenly spaced, the start and the end included).
        ascent: the study's small steps of 0.01, without normalising the photo first (MNIST is already in [0, 1]).
    """

    source_class: int = 1
    target_class: int = 7
    snapshots: int = 7
    ascent: AscentConfig = dataclasses.field(default_factory=lambda: mnist_ascent(60, 0.01))

    def validate(self) -> None:
        if not (0 <= self.source_class < 10 and 0 <= self.target_class < 10):
            raise ValueError(f"target.source_class={self.source_class} and target.target_class={self.target_class} "
                             "must be MNIST classes 0..9")
        if not 2 <= self.snapshots <= self.ascent.steps + 1:
            raise ValueError(f"target.snapshots={self.snapshots} must be in 2..ascent.steps + 1 "
                             f"({self.ascent.steps + 1})")


@dataclasses.dataclass
class Config(MnistBase):
    """The see-the-world experiment on the MNIST CNN (the common fields: :class:`configs.common.MnistBase`;
    ``seed`` seeds every start).

    Attributes:
        noise_centre, noise_spread: the MNIST start ``(U(0, 1) - 0.5) * spread + centre``.
        filter_layers: layers whose filters are all visualised, one vmapped batch per layer.
        filters: the study's filter recipe in MNIST units (20 steps of 1/255).
        classes: class maximisation from noise for all 10 digits, one batch.
        target: a real digit pushed to another class.
        fooling: Nguyen et al.'s fooling images: ascent with L2 decay towards mid-grey and periodic blur.
        thresholds: probabilities whose first crossing step is recorded.
        speed_filters: filters of the first layer timed as one batch against one by one (0: skip).
    """

    noise_centre: float = 0.5
    noise_spread: float = 20.0 / 255.0
    filter_layers: tuple[str, ...] = ("conv0", "conv1")
    filters: AscentConfig = dataclasses.field(default_factory=lambda: mnist_ascent(20, 1.0 / 255.0))
    classes: AscentConfig = dataclasses.field(default_factory=lambda: mnist_ascent(30, 0.05))
    target: TargetConfig = dataclasses.field(default_factory=TargetConfig)
    # Rolled loop (unroll=1): XLA:CPU took over 4 minutes to compile these 100 steps fully unrolled.
    fooling: AscentConfig = dataclasses.field(default_factory=lambda: mnist_ascent(
        100, 0.02, decay=0.01, decay_centre=0.5, blur_every=4, blur_sigma=0.5, unroll=1))
    thresholds: tuple[float, ...] = (0.99, 0.999, 0.9999)
    speed_filters: int = 32


def get_config() -> Config:
    return Config()
