"""Transfer of adversarial examples between three MNIST architectures, laid out like Table 1 of Xie et al. 2019.

Run:
    python -m experiments.transfer_table --config configs/transfer_table.py
Another radius or more steps, e.g.:
    python -m experiments.transfer_table --config configs/transfer_table.py --config.transfer.eps=0.3
"""

from __future__ import annotations

import dataclasses

from configs.common import MnistBase


@dataclasses.dataclass
class TransferConfig:
    """What is crafted on which model.

    Attributes:
        models: source and target architectures: ``mnist_cnn`` (the backwork CNN), ``mnist_mlp``, ``mnist_resnet``.
        attacks: registry names; Xie et al. compare fgsm, ifgsm, mifgsm, di2fgsm and mdi2fgsm.
        eps: L-inf radius in pixel units of ``[0, 1]``.
        steps: steps of the iterative attacks (each of size ``eps / steps``).
        decay: MI-FGSM momentum decay (Dong et al.: 1.0).
        diversity_prob: DI2-FGSM transformation probability (Xie et al.: 0.5).
        n_test: test digits attacked (stratified).
        batch_size: digits per compiled call.
    """

    models: tuple[str, ...] = ("mnist_cnn", "mnist_mlp", "mnist_resnet")
    attacks: tuple[str, ...] = ("fgsm", "ifgsm", "mifgsm", "di2fgsm", "mdi2fgsm")
    eps: float = 0.3
    steps: int = 10
    decay: float = 1.0
    diversity_prob: float = 0.5
    n_test: int = 500
    batch_size: int = 250

    def validate(self) -> None:
        if not self.models or not self.attacks or self.eps <= 0 or self.steps < 1:
            raise ValueError("transfer.models and transfer.attacks must be non-empty, eps > 0 and steps >= 1")
        if not 0 <= self.diversity_prob <= 1 or self.decay < 0 or self.n_test < 10 or self.batch_size < 1:
            raise ValueError("transfer needs 0 <= diversity_prob <= 1, decay >= 0, n_test >= 10, batch_size >= 1")


@dataclasses.dataclass
class Config(MnistBase):
    """The transfer table (the common fields: :class:`configs.common.MnistBase`; ``train`` trains each architecture).

    Attributes:
        transfer: the attacks.
    """

    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)


def get_config() -> Config:
    return Config()
