"""AutoAttack standard (L-inf, eps 0.3), DeepFool and C&W on 1,000 MNIST digits: jaxfool against torchattacks 3.5.1
on identical weights, parity and time in one run (``pip install --no-deps torchattacks==3.5.1``).

Run (on a quiet machine for the times; the first jaxfool call includes compilation, the steady figure is the
best of ``bench.repeats``):
    python -m experiments.bench_autoattack --config configs/bench_autoattack.py
The PGD-trained CNN (attack_sweep's 100-epoch defence, about an hour to train on 2 CPU cores):
    python -m experiments.bench_autoattack --config configs/bench_autoattack.py --config.bench.model=pgd_trained
Smoke run in about two minutes:
    python -m experiments.bench_autoattack --config configs/bench_autoattack.py --config.bench.n_images=20 \\
        --config.bench.steps=10 --config.bench.n_queries=100 --config.bench.repeats=1
"""

from __future__ import annotations

import dataclasses

from configs.attack_sweep import DefenceConfig
from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class BenchConfig:
    """What is compared and timed.

    Attributes:
        model: ``plain``, ``fgsm_trained``, ``pgd_trained`` or ``distilled`` (attack_sweep's cached models).
        n_images: test digits (stratified).
        eps: L-inf radius.
        steps: APGD / FAB steps (the authors' 100).
        n_queries: Square's budget (the authors' 5,000).
        seed: both libraries' seed.
        repeats: jaxfool runs (the first compiles); the best is reported.
        batch_size: jaxfool's points per compiled call.
        min_norm: also compare DeepFool-L2 and C&W-L2 median distances.
        deepfool_steps: DeepFool's step limit (torchattacks' 50).
        cw_steps: C&W Adam steps (torchattacks' 50).
        cw_const: C&W's fixed constant (torchattacks' c=1).
    """

    model: str = "plain"
    n_images: int = 1000
    eps: float = 0.3
    steps: int = 100
    n_queries: int = 5000
    seed: int = 0
    repeats: int = 2
    batch_size: int = 500
    min_norm: bool = True
    deepfool_steps: int = 50
    cw_steps: int = 50
    cw_const: float = 1.0

    def validate(self) -> None:
        if self.model not in ("plain", "fgsm_trained", "pgd_trained", "distilled"):
            raise ValueError(f"bench.model must be plain, fgsm_trained, pgd_trained or distilled, got {self.model!r}")
        if min(self.n_images, self.steps, self.n_queries, self.repeats, self.batch_size, self.deepfool_steps,
               self.cw_steps) < 1 or not 0 < self.eps <= 1 or self.cw_const <= 0:
            raise ValueError("bench counts must be >= 1, eps in (0, 1] and cw_const > 0")


@dataclasses.dataclass
class Config:
    """The benchmark (``train`` and ``defences`` are attack_sweep's, so its cached models are reused)."""

    workdir: str = "runs"
    run_name: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    defences: DefenceConfig = dataclasses.field(default_factory=DefenceConfig)
    bench: BenchConfig = dataclasses.field(default_factory=BenchConfig)


def get_config() -> Config:
    return Config()
