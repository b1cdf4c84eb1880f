"""Train the backwork MNIST CNN on its own and save an orbax checkpoint.

Run:
    python -m experiments.train_mnist --config configs/train_mnist.py
Full MNIST through TFDS (needs a network the first time):
    python -m experiments.train_mnist --config configs/train_mnist.py --config.data.source=tfds
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase


@dataclasses.dataclass
class Config(MnistBase):
    """Training on its own: the common fields only (:class:`configs.common.MnistBase`); the checkpoint is also
    cached in ``workdir/models`` where the other MNIST experiments look for it."""


def get_config() -> Config:
    return Config()
