"""The fields every experiment config shares, big_vision style: each ``configs/NAME.py`` subclasses one of these.

Field order in a subclass: these come first, then the experiment's own.
"""

from __future__ import annotations

import dataclasses

from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class Base:
    """What every run has.

    Attributes:
        workdir: run folders go to ``workdir/<experiment>/<run_name or timestamp>``; trained models are cached in
            ``workdir/models`` (shared by the MNIST experiments).
        run_name: name of the run folder (default: a timestamp).
        seed: the root PRNG seed; each random part of an experiment folds its own section id into it
            (``jax.random.fold_in``), so adding a part does not reseed the others.
    """

    workdir: str = "runs"
    run_name: str = ""
    seed: int = 0


@dataclasses.dataclass
class MnistBase(Base):
    """A run on MNIST with the backwork CNN (trained here, or restored from the cache).

    Attributes:
        data: where MNIST comes from.
        train: how the CNN is trained if no cached checkpoint matches.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
