"""The attack sweep with a quickly trained PGD defence: minutes on a CPU instead of an hour.

Run:
    python -m experiments.attack_sweep --config configs/attack_sweep_quick.py

8 epochs of PGD-7 training without shifts (measured: PGD-40 robust accuracy at eps 0.3 about 30% on the embedded
test digits, against 90% with the default's 100 epochs); the plain, FGSM-trained and distilled models are the
default's (and share its model cache).
"""

from configs.attack_sweep import Config
from configs.attack_sweep import get_config as base
from jaxfool.train import TrainConfig


def get_config() -> Config:
    config = base()
    d = config.defences
    d.pgd_steps, d.ramp_epochs = 7, 2
    d.pgd_train = TrainConfig(epochs=8, learning_rate=5e-4, seed=1)
    return config
