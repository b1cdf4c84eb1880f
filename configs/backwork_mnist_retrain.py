"""Backwork, then retrain with the generated images as uniform soft labels (the study's second question).

Run:
    python -m experiments.backwork_mnist --config configs/backwork_mnist_retrain.py
As an 11th "fooling" class (Nguyen et al. 2015) instead:
    python -m experiments.backwork_mnist --config configs/backwork_mnist_retrain.py --config.retrain.mode=extra_class
"""

from configs.backwork_mnist import Config
from configs.backwork_mnist import get_config as base


def get_config() -> Config:
    config = base()
    config.retrain.mode = "soft"
    return config
