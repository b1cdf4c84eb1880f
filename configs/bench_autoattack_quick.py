"""The AutoAttack bench on attack_sweep_quick's defences: the 8-epoch PGD-7 defence (minutes on a CPU) stands in
for the default's 100-epoch one (about an hour); the plain and distilled models are the default's.

Run (the PGD-trained CNN, 1,000 test digits):
    python -m experiments.bench_autoattack --config configs/bench_autoattack_quick.py --config.bench.model=pgd_trained
"""

from configs.attack_sweep_quick import get_config as quick_sweep
from configs.bench_autoattack import Config
from configs.bench_autoattack import get_config as base


def get_config() -> Config:
    config = base()
    config.defences = quick_sweep().defences
    return config
