"""Backwork on the MNIST CNN: strongly classified inputs that look like no training digit.

Run:
    python -m experiments.backwork_mnist --config configs/backwork_mnist.py
Overrides, e.g.:
    python -m experiments.backwork_mnist --config configs/backwork_mnist.py --config.backwork.max_steps=100
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase
from jaxfool.backwork import BackworkConfig, BackworkSweepConfig
from jaxfool.models import mnist_cnn


@dataclasses.dataclass
class RetrainConfig:
    """The study's second question: add the generated images to the training set and retrain.

    Attributes:
        mode: ``"none"``; ``"soft"`` (generated images get uniform soft labels, as the study did); or
            ``"extra_class"`` (an 11th "fooling" class, as Nguyen et al. 2015 did).
        rounds: backwork searches (each with its own seed) that produce the added images.
        repeat: how many times each generated image is repeated in the training set (it is a small set).
    """

    mode: str = "none"
    rounds: int = 5
    repeat: int = 4

    def validate(self) -> None:
        if self.mode not in ("none", "soft", "extra_class"):
            raise ValueError(f"retrain.mode={self.mode!r} is not one of none, soft, extra_class")
        if self.rounds < 1 or self.repeat < 1:
            raise ValueError("retrain.rounds and retrain.repeat must be >= 1")


@dataclasses.dataclass
class Config(MnistBase):
    """The backwork experiment (the common fields: :class:`configs.common.MnistBase`; ``seed`` seeds the search).

    Attributes:
        backwork: the search.
        sweep: optional hyperparameter grid, run as one vmapped program.
        retrain: optional retraining on the generated images.
        nn_layers_max_train: training digits used for the nearest-neighbour report (0: all; its time grows as
            their square, most of it in the wide conv layers).
        nn_layers: the layers the nearest-neighbour report compares on (empty: every reference layer); its summary
            reads the first.
    """

    backwork: BackworkConfig = dataclasses.field(default_factory=BackworkConfig)
    sweep: BackworkSweepConfig = dataclasses.field(default_factory=BackworkSweepConfig)
    retrain: RetrainConfig = dataclasses.field(default_factory=RetrainConfig)
    nn_layers_max_train: int = 10000
    nn_layers: tuple[str, ...] = ()

    def validate(self) -> None:
        valid = mnist_cnn().layer_names[:-1]
        if any(name not in valid for name in self.nn_layers):
            raise ValueError(f"nn_layers={self.nn_layers!r}: each must be one of {', '.join(valid)}")


def get_config() -> Config:
    return Config()
