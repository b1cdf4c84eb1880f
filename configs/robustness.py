"""AutoAttack, PGD-40 and minimum-norm attacks on the plain and defended MNIST CNNs of attack_sweep.

Run (the models are attack_sweep's and share its cache in ``<workdir>/models``; the default's 100-epoch PGD
defence trains about an hour on 2 CPU cores, see ``configs/robustness_quick.py`` for CPU minutes):
    python -m experiments.robustness --config configs/robustness.py
"""

from __future__ import annotations

import dataclasses

from configs.attack_sweep import DefenceConfig
from configs.common import MnistBase


@dataclasses.dataclass
class EvalConfig:
    """What to attack and how.

    Attributes:
        models: which of ``plain``, ``fgsm_trained``, ``pgd_trained``, ``distilled`` to evaluate.
        eps: the L-inf radius of AutoAttack and of the headline PGD figure (pixels in [0, 1]).
        version: AutoAttack version: ``standard``, ``plus`` or ``rand``.
        steps: steps of each APGD / FAB run (the reference's 100).
        n_queries: Square's query budget (the reference's 5,000).
        pgd_steps: steps of the PGD baseline (PGD-40).
        linf_epsilons: L-inf radii of the PGD curve (also the monotonicity check).
        l2_epsilons: L2 radii of the PGD-L2 curve; the minimum-norm curves are read at the same radii.
        deepfool_steps: DeepFool's step limit.
        cw_steps: Adam steps per C&W constant.
        cw_search_steps: constants tried per example (binary search).
        cw_initial_const: the first constant.
        n_test: test digits attacked (stratified: the first of each class).
        batch_size: digits per compiled call.
    """

    models: tuple[str, ...] = ("plain", "fgsm_trained", "pgd_trained", "distilled")
    eps: float = 0.3
    version: str = "standard"
    steps: int = 100
    n_queries: int = 5000
    pgd_steps: int = 40
    linf_epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
    l2_epsilons: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
    deepfool_steps: int = 50
    cw_steps: int = 100
    cw_search_steps: int = 9
    cw_initial_const: float = 0.1
    n_test: int = 1000
    batch_size: int = 250

    def validate(self) -> None:
        known = {"plain", "fgsm_trained", "pgd_trained", "distilled"}
        if not self.models or set(self.models) - known:
            raise ValueError(f"eval.models must be a non-empty subset of {sorted(known)}, got {self.models}")
        if self.version not in ("standard", "plus", "rand"):
            raise ValueError(f"eval.version must be standard, plus or rand, got {self.version!r}")
        if not 0 < self.eps <= 1 or min(self.linf_epsilons + self.l2_epsilons) < 0:
            raise ValueError("eval.eps must be in (0, 1] and the epsilon grids >= 0")
        if min(self.steps, self.n_queries, self.pgd_steps, self.deepfool_steps, self.cw_steps,
               self.cw_search_steps, self.n_test, self.batch_size) < 1 or self.cw_initial_const <= 0:
            raise ValueError("eval step counts, n_test and batch_size must be >= 1 and cw_initial_const > 0")


@dataclasses.dataclass
class Config(MnistBase):
    """The robustness evaluation (the common fields: :class:`configs.common.MnistBase`; ``seed`` seeds the attacks,
    ``train`` is the plain CNN's, attack_sweep's, and the models share its cache in ``workdir/models``).

    Attributes:
        defences: the defended models (attack_sweep's).
        eval: the attacks.
    """

    defences: DefenceConfig = dataclasses.field(default_factory=DefenceConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


def get_config() -> Config:
    return Config()
