"""How the MNIST CNN sees the world: filter grids, class maximisation, a digit pushed to another class, fooling
images; then VGG16 filters and class images (random weights offline, labelled meaningless).

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

from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig
from jaxfool.visualize import Ascent


def mnist_ascent(steps: int, step_size: float, **kw) -> Ascent:
    """An ascent in the MNIST CNN's pixel units: ``[0, 1]``, clipped after every step."""
    return Ascent(steps=steps, step_size=step_size, clip=True, bounds=(0.0, 1.0), **kw)


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
    ascent: Ascent = dataclasses.field(default_factory=lambda: mnist_ascent(60, 0.01))


@dataclasses.dataclass
class VggConfig:
    """VGG16 with random weights (meaningless pictures: a check that the code runs on it). Needs
    ``jaxfool.models.vgg16``. Rolled step loops: unrolling VGG16's steps would compile for minutes on CPU.

    Attributes:
        enabled: run the VGG16 part.
        layers: the study's layers; ``filters_per_layer`` random filters of each at ``size`` x ``size``.
        class_index: the study's sea snake; 30 steps of 7 from gray noise at 224x224 (``None``: skip).
    """

    enabled: bool = True
    layers: tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
    filters_per_layer: int = 3
    size: int = 128
    filters: Ascent = dataclasses.field(default_factory=lambda: Ascent(steps=20, step_size=1.0, unroll=1))
    class_index: int | None = 65
    classes: Ascent = dataclasses.field(default_factory=lambda: Ascent(steps=30, step_size=7.0, unroll=1))


@dataclasses.dataclass
class Config:
    """The see-the-world experiment.

    Attributes:
        workdir: run folders go to ``workdir/see_the_world/<run_name or timestamp>``; the trained CNN is cached
            in ``workdir/models`` (shared with the other MNIST experiments).
        run_name: name of the run folder (default: a timestamp).
        data: where MNIST comes from.
        train: how the CNN is trained if no cached checkpoint matches.
        seed: seeds every start.
        noise_centre, noise_spread: the MNIST start ``(U(0, 1) - 0.5) * spread + centre``.
        filter_layers: layers whose filters are all visualised, one vmapped batch per layer.
        filters: the study's filter recipe in MNIST units (20 steps of 1/255).
        classes: class maximisation from noise for all 10 digits, one batch.
        target: a real digit pushed to another class.
        fooling: Nguyen et al.'s fooling images: ascent with L2 decay towards mid-grey and periodic blur.
        thresholds: probabilities whose first crossing step is recorded.
        speed_filters: filters of the first layer timed as one batch against one by one (0: skip).
        vgg: the VGG16 part.
    """

    workdir: str = "runs"
    run_name: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    seed: int = 0
    noise_centre: float = 0.5
    noise_spread: float = 20.0 / 255.0
    filter_layers: tuple[str, ...] = ("conv0", "conv1")
    filters: Ascent = dataclasses.field(default_factory=lambda: mnist_ascent(20, 1.0 / 255.0))
    classes: Ascent = dataclasses.field(default_factory=lambda: mnist_ascent(30, 0.05))
    target: TargetConfig = dataclasses.field(default_factory=TargetConfig)
    # Rolled loop (unroll=1): XLA:CPU took over 4 minutes to compile these 100 steps fully unrolled.
    fooling: Ascent = dataclasses.field(default_factory=lambda: mnist_ascent(
        100, 0.02, decay=0.01, decay_centre=0.5, blur_every=4, blur_sigma=0.5, unroll=1))
    thresholds: tuple[float, ...] = (0.99, 0.999, 0.9999)
    speed_filters: int = 32
    vgg: VggConfig = dataclasses.field(default_factory=VggConfig)


def get_config() -> Config:
    return Config()
