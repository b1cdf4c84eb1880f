"""Backwork over a prev_coeff x sim_coeff grid, all settings in one vmapped, jitted program.

Run:
    python -m experiments.backwork_mnist --config configs/backwork_mnist_sweep.py
"""

from configs.backwork_mnist import Config
from configs.backwork_mnist import get_config as base


def get_config() -> Config:
    config = base()
    config.sweep.prev_coeff = (0.1, 0.5, 2.0)
    config.sweep.sim_coeff = (0.1, 0.5, 2.0)
    return config
