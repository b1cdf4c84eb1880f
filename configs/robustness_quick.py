"""The robustness evaluation in CPU minutes: attack_sweep_quick's 8-epoch PGD defence, 100 test digits and a
shorter C&W search; AutoAttack itself keeps the reference's settings.

Run:
    python -m experiments.robustness --config configs/robustness_quick.py
"""

from configs.attack_sweep_quick import get_config as quick_sweep
from configs.robustness import Config
from configs.robustness import get_config as base


def get_config() -> Config:
    config = base()
    config.defences = quick_sweep().defences
    e = config.eval
    e.n_test, e.batch_size = 100, 100
    e.cw_steps, e.cw_search_steps = 50, 6
    return config
