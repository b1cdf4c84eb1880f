"""Train the backwork MNIST CNN on its own and save an orbax checkpoint.

Run:
    python -m experiments.train_mnist --config configs/train_mnist.py
Full MNIST through TFDS (needs a network the first time):
    python -m experiments.train_mnist --config configs/train_mnist.py --config.data.source=tfds
"""

from __future__ import annotations

import dataclasses

from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class Config:
    """Training on its own.

    Attributes:
        workdir: the run folder is ``workdir/train_mnist/<run_name or timestamp>``; the checkpoint is also
            cached in ``workdir/models`` where the other MNIST experiments look for it.
        run_name: name of the run folder (default: a timestamp).
        data: where MNIST comes from.
        train: optimisation settings.
    """

    workdir: str = "runs"
    run_name: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def get_config() -> Config:
    return Config()
