"""Xie et al.'s Table 1 on ImageNet: FGSM, I-FGSM, MI-FGSM, DI2-FGSM and M-DI2-FGSM crafted on VGG16, ResNet50 and
ResNet101, each judged by all three, on a folder of photos (a cell: the share of photos whose top-1 the attack
changes; no labels, so each network's clean top-1 is its reference). eps 15 pixels of 0-255, as Xie et al.

Run (official weights when on disk -- `python -m jaxfool.weights fetch vgg16|resnet50|resnet101` -- else random
weights, labelled MEANINGLESS in every file):
    python -m experiments.transfer_table --config configs/transfer_table_imagenet.py
On your own photos, or with the ResNets only at a smaller size:
    python -m experiments.transfer_table --config configs/transfer_table_imagenet.py --config.transfer.image_dir=photos/
    ... --config.transfer.models=resnet50,resnet101 --config.transfer.image_size=112
"""

from __future__ import annotations

from configs.transfer_table import Config
from configs.transfer_table import get_config as base


def get_config() -> Config:
    config = base()
    t = config.transfer
    t.models, t.weights, t.image_dir, t.image_size = ("vgg16", "resnet50", "resnet101"), "auto", "", 224
    t.eps, t.steps, t.n_test, t.batch_size = 15.0, 10, 100, 4  # batch 4: VGG16's gradients at 224 fit in memory
    return config
