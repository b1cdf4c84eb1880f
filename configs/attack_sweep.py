"""Robust accuracy against epsilon for each attack, on the plain and the defended MNIST CNNs.

Run (about 3 minutes on one GPU; the 100-epoch PGD training takes about an hour on 2 CPU cores, see
``configs/attack_sweep_quick.py`` for minutes):
    python -m experiments.attack_sweep --config configs/attack_sweep.py
Fewer images or another grid, e.g.:
    python -m experiments.attack_sweep --config configs/attack_sweep.py --config.sweep.n_test=200 \\
        --config.sweep.epsilons='(0.0, 0.1, 0.3)'
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class DefenceConfig:
    """Which defended models to train (each cached as its own checkpoint) and how.

    Attributes:
        fgsm_training: Goodfellow et al.'s training on an even mix of clean and FGSM examples.
        pgd_training: Madry et al.'s training on PGD examples only.
        distillation: Papernot et al.'s defensive distillation.
        eps: the training attacks' L-inf radius.
        pgd_steps: PGD steps per training minibatch, of size ``2.5 * eps / pgd_steps``. Madry et al. use 40; on
            the embedded subset 10 steps gave the same robustness (PGD-40 at 0.3: 89.7% vs 89.9%) in a quarter of
            the time.
        ramp_epochs: the first epochs of PGD training use a growing radius ``eps * (i + 1) / (ramp_epochs + 1)``:
            at full radius from the start the CNN collapses to the uniform prediction (loss ln 10) on this data.
        fgsm_train: optimisation of the FGSM-trained model, warm-started from the plain model.
        pgd_train: optimisation of the PGD-trained model, warm-started from the plain model. 4,000 digits need
            many epochs and small random shifts (``max_shift``) to generalise robustly: measured PGD-40 robust
            accuracy at 0.3 on the 1,000 test digits: 8 epochs 30%, 100 epochs 83%, 100 epochs with shifts of up
            to 2 pixels 90% (Madry et al.: 89-93% on full MNIST). That is about 2 minutes on one GPU and about an
            hour on 2 CPU cores: ``configs/attack_sweep_quick.py`` trains for 8 epochs instead.
        temperature: distillation temperature ``T``.
        distill_train: optimisation of the distillation teacher and student (each).
    """

    fgsm_training: bool = True
    pgd_training: bool = True
    distillation: bool = True
    eps: float = 0.3
    pgd_steps: int = 10
    ramp_epochs: int = 10
    fgsm_train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=8, learning_rate=5e-4, seed=1)
    )
    pgd_train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=100, learning_rate=1e-3, seed=1, max_shift=2)
    )
    temperature: float = 20.0
    distill_train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=8, learning_rate=3e-3, seed=2)
    )

    def validate(self) -> None:
        if self.eps <= 0 or self.pgd_steps < 1 or self.temperature <= 0:
            raise ValueError("defences.eps and defences.temperature must be > 0 and defences.pgd_steps >= 1")
        if not 0 <= self.ramp_epochs < self.pgd_train.epochs:
            raise ValueError("defences.ramp_epochs must be >= 0 and fewer than defences.pgd_train.epochs")


@dataclasses.dataclass
class AttackGridConfig:
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
        from jaxfool.attacks import get_attack  # checked here, before any model is trained

        for spec in self.attacks:
            name, _, loss = spec.partition("+")
            get_attack(name)  # a one-line error naming the valid attacks (and aliases)
            if loss not in ("", "ce", "margin"):
                raise ValueError(f"sweep.attacks entry {spec!r}: the loss after '+' must be 'margin' (or 'ce')")


@dataclasses.dataclass
class Config(MnistBase):
    """The attack sweep (the common fields: :class:`configs.common.MnistBase`; ``train`` is the plain CNN's).

    Attributes:
        defences: the defended models.
        sweep: the attacks and epsilons.
    """

    defences: DefenceConfig = dataclasses.field(default_factory=DefenceConfig)
    sweep: AttackGridConfig = dataclasses.field(default_factory=AttackGridConfig)


def get_config() -> Config:
    return Config()
