"""Robust accuracy against epsilon for each attack, on the plain and the defended MNIST CNNs.

Run:
    python -m experiments.attack_sweep --config configs/attack_sweep.py
Fewer images or another grid, e.g.:
    python -m experiments.attack_sweep --config configs/attack_sweep.py --config.sweep.n_test=200 \\
        --config.sweep.epsilons='(0.0, 0.1, 0.3)'
"""

from __future__ import annotations

import dataclasses

from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class DefenceConfig:
    """Which defended models to train (each cached as its own checkpoint) and how.

    Attributes:
        fgsm_training: Goodfellow et al.'s training on an even mix of clean and FGSM examples.
        pgd_training: Madry et al.'s training on PGD examples only.
        distillation: Papernot et al.'s defensive distillation.
        eps: the training attacks' L-inf radius.
        pgd_steps: PGD steps per training minibatch (Madry et al. use 40; fewer keeps CPU training in minutes).
        adv_train: optimisation of the adversarially trained models, warm-started from the plain model.
        temperature: distillation temperature ``T``.
        distill_train: optimisation of the distillation teacher and student (each).
    """

    fgsm_training: bool = True
    pgd_training: bool = True
    distillation: bool = True
    eps: float = 0.3
    pgd_steps: int = 7
    adv_train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=10, seed=1))
    temperature: float = 20.0
    distill_train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=8, learning_rate=3e-3, seed=2)
    )

    def validate(self) -> None:
        if self.eps <= 0 or self.pgd_steps < 1 or self.temperature <= 0:
            raise ValueError("defences.eps and defences.temperature must be > 0 and defences.pgd_steps >= 1")


@dataclasses.dataclass
class SweepConfig:
    """The attacks and the epsilon grid.

    Attributes:
        attacks: registry names (see ``jaxfool.attacks.attack_names()``); ``NAME+margin`` uses the C&W margin loss.
        epsilons: L-inf radii, in pixel units of ``[0, 1]``; each attack runs all of them as one vmapped program.
        steps: steps of the iterative attacks (``pgd`` keeps 40 by default: PGD-40).
        pgd_steps: steps of ``pgd``.
        restarts: PGD restarts.
        n_test: test digits attacked (stratified, the first of each class).
        batch_size: digits per compiled call.
    """

    attacks: tuple[str, ...] = ("fgsm", "ifgsm", "mifgsm", "pgd", "pgd+margin")
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    steps: int = 10
    pgd_steps: int = 40
    restarts: int = 1
    n_test: int = 500
    batch_size: int = 250

    def validate(self) -> None:
        if not self.attacks or not self.epsilons or min(self.epsilons) < 0:
            raise ValueError("sweep.attacks and sweep.epsilons must be non-empty and epsilons >= 0")
        if min(self.steps, self.pgd_steps, self.restarts, self.n_test, self.batch_size) < 1:
            raise ValueError("sweep.steps, pgd_steps, restarts, n_test and batch_size must be >= 1")


@dataclasses.dataclass
class Config:
    """The attack sweep.

    Attributes:
        workdir: run folders go to ``workdir/attack_sweep/<run_name or timestamp>``; models are cached in
            ``workdir/models``.
        run_name: name of the run folder (default: a timestamp).
        seed: seeds the attacks' randomness.
        data: where MNIST comes from.
        train: how the plain CNN is trained (shared with the other MNIST experiments' cache).
        defences: the defended models.
        sweep: the attacks and epsilons.
    """

    workdir: str = "runs"
    run_name: str = ""
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    defences: DefenceConfig = dataclasses.field(default_factory=DefenceConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)


def get_config() -> Config:
    return Config()
