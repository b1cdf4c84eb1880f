"""The robustness evaluation in CPU minutes: attack_sweep_quick's 8-epoch PGD defence, 100 test digits and a
shorter C&W search; AutoAttack itself keeps the reference's settings.

C&W: 4 constants of 300 Adam steps from c = 10 (10, 5, then halving towards success). Pixels at 0 start at tanh
coordinate -7.25 and Adam moves it about 0.01 per step, so few steps fool almost nothing: measured on 50 plain-CNN
digits at c = 10, 14% fooled after 50 steps, 45% after 100, 92% after 200, 95% after about 255, all after 300. The
previous 6 x 50 steps left C&W's medians ``inf``; this costs 1,200 Adam steps per digit instead of 300. Measured
with this setting on those 50 digits: all 49 correct ones fooled, median L2 1.72, every one at the last constant
tried (1.25), so the search had not yet bracketed: more constants would lower the medians.

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
    e.cw_steps, e.cw_search_steps, e.cw_initial_const = 300, 4, 10.0
    return config
