"""Transfer of adversarial examples between three MNIST architectures, laid out like Table 1 of Xie et al. 2019.
The ImageNet variant (VGG16, ResNet50, ResNet101 on photos): configs/transfer_table_imagenet.py.

Run:
    python -m experiments.transfer_table --config configs/transfer_table.py
Another radius or more steps, e.g.:
    python -m experiments.transfer_table --config configs/transfer_table.py --config.transfer.eps=0.3
"""

from __future__ import annotations

import dataclasses
import pathlib

from configs.common import MnistBase

from jaxfool.transfer import IMAGENET_MODELS

MNIST_MODELS = ("mnist_cnn", "mnist_mlp", "mnist_resnet")
WEIGHTS = ("auto", "imagenet", "random")


@dataclasses.dataclass
class TransferConfig:
    """What is crafted on which model.

    Attributes:
        models: source and target networks, all MNIST -- ``mnist_cnn`` (the backwork CNN), ``mnist_mlp``,
            ``mnist_resnet``, trained here or restored -- or all ImageNet: ``vgg16``, ``resnet50``, ``resnet101``.
        attacks: registry names; Xie et al. compare fgsm, ifgsm, mifgsm, di2fgsm and mdi2fgsm.
        eps: L-inf radius in the networks' pixel units: ``[0, 1]`` on MNIST, ``[0, 255]`` on ImageNet.
        steps: steps of the iterative attacks (each of size ``eps / steps``).
        decay: MI-FGSM momentum decay (Dong et al.: 1.0).
        diversity_prob: DI2-FGSM transformation probability (Xie et al.: 0.5).
        n_test: images attacked: MNIST test digits (stratified, at least 10), or at most this many photos.
        batch_size: images per compiled call.
        weights: ImageNet only, every network's: ``"auto"`` (official if on disk -- a converted checkpoint or the
            Keras file -- else random, MEANINGLESS), ``"imagenet"`` (fetched if needed) or ``"random"``.
        image_dir: ImageNet only: a folder of photos (sorted by name); empty: scikit-image's sample photos.
        image_size: ImageNet only: photos are resized to ``image_size`` squared (VGG16's classifier needs 224;
            the ResNets pool globally and take any size of at least 32).
    """

    models: tuple[str, ...] = ("mnist_cnn", "mnist_mlp", "mnist_resnet")
    attacks: tuple[str, ...] = ("fgsm", "ifgsm", "mifgsm", "di2fgsm", "mdi2fgsm")
    eps: float = 0.3
    steps: int = 10
    decay: float = 1.0
    diversity_prob: float = 0.5
    n_test: int = 500
    batch_size: int = 250
    weights: str = "auto"
    image_dir: str = ""
    image_size: int = 224

    @property
    def imagenet(self) -> bool:
        """Whether the networks are the ImageNet ones (else MNIST's)."""
        return bool(self.models) and self.models[0] in IMAGENET_MODELS

    def validate(self) -> None:
        if not self.models or not self.attacks or self.eps <= 0 or self.steps < 1:
            raise ValueError("transfer.models and transfer.attacks must be non-empty, eps > 0 and steps >= 1")
        family = IMAGENET_MODELS if self.imagenet else MNIST_MODELS
        if unknown := [m for m in self.models if m not in family]:
            raise ValueError(f"unknown transfer.models {unknown} beside {self.models[0]}; valid: {', '.join(family)}")
        if not 0 <= self.diversity_prob <= 1 or self.decay < 0 or self.batch_size < 1:
            raise ValueError("transfer needs 0 <= diversity_prob <= 1, decay >= 0 and batch_size >= 1")
        if not self.imagenet and self.n_test < 10:
            raise ValueError(f"transfer.n_test={self.n_test}: MNIST digits are taken from every class, use >= 10")
        if self.weights not in WEIGHTS:
            raise ValueError(f"transfer.weights={self.weights!r} is not one of {', '.join(WEIGHTS)}")
        if self.imagenet and "vgg16" in self.models and self.image_size != 224:
            raise ValueError(f"transfer.image_size={self.image_size}: VGG16's classifier needs 224; drop vgg16 "
                             "from transfer.models to use another size")
        if self.image_dir and not pathlib.Path(self.image_dir).is_dir():
            raise ValueError(f"transfer.image_dir={self.image_dir!r} is not a folder; give a folder of photos")


@dataclasses.dataclass
class Config(MnistBase):
    """The transfer table (the common fields: :class:`configs.common.MnistBase`; ``train`` trains each architecture).

    Attributes:
        transfer: the attacks.
    """

    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)


def get_config() -> Config:
    return Config()
