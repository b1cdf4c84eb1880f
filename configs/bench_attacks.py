"""PGD-40 on 256 MNIST digits x 5 epsilons: jaxfool against Foolbox 3 (JAX) and torchattacks (PyTorch, on the
GPU when JAX runs on one).

Run (the peers are benchmark-only: ``pip install foolbox==3.3.4`` and ``pip install --no-deps torchattacks==3.5.1``):
    python -m experiments.bench_attacks --config configs/bench_attacks.py
Quicker, without a peer:
    python -m experiments.bench_attacks --config configs/bench_attacks.py --config.bench.peers='("torchattacks",)'
"""

from __future__ import annotations

import dataclasses

from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class BenchConfig:
    """What is timed.

    Attributes:
        n_images: test digits attacked.
        epsilons: L-inf radii; jaxfool runs them as one sweep, the peers as their own loops.
        steps: PGD steps.
        peers: among ``foolbox`` and ``torchattacks``; a peer that is not installed is reported and skipped.
        repeats: timed repetitions of each (the minimum is reported).
        matmul_size: side of the square float32 matmul that measures the machine's peak.
    """

    n_images: int = 256
    epsilons: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)
    steps: int = 40
    peers: tuple[str, ...] = ("foolbox", "torchattacks")
    repeats: int = 2
    matmul_size: int = 2048

    def validate(self) -> None:
        if self.n_images < 1 or not self.epsilons or self.steps < 1 or self.repeats < 1 or self.matmul_size < 64:
            raise ValueError("bench needs n_images, steps, repeats >= 1, some epsilons and matmul_size >= 64")
        unknown = set(self.peers) - {"foolbox", "torchattacks"}
        if unknown:
            raise ValueError(f"unknown bench.peers {sorted(unknown)}; valid: foolbox, torchattacks")


@dataclasses.dataclass
class Config:
    """The benchmark.

    Attributes:
        workdir: run folders go to ``workdir/bench_attacks/<run_name or timestamp>``; the CNN is cached in
            ``workdir/models``.
        run_name: name of the run folder (default: a timestamp).
        data: where MNIST comes from.
        train: how the CNN is trained (if no cached checkpoint matches).
        bench: what is timed.
    """

    workdir: str = "runs"
    run_name: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    bench: BenchConfig = dataclasses.field(default_factory=BenchConfig)


def get_config() -> Config:
    return Config()
