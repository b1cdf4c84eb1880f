"""Benchmark ResNet50 (224x224, with the classifier) against a plain PyTorch ResNet50 with the same weights.

Run (on a quiet machine):
    python -m experiments.bench_imagenet --config configs/bench_imagenet.py
Smoke run, batch 1, one round:
    python -m experiments.bench_imagenet --config configs/bench_imagenet.py --config.batch_sizes='(1,)' --config.rounds=1
"""

from __future__ import annotations

import dataclasses

IMPLEMENTATIONS = ("jaxfool_folded", "jaxfool_separate", "jaxfool_keras_v1_folded")


@dataclasses.dataclass
class Config:
    """What to time.

    Attributes:
        workdir: the run folder is ``workdir/bench_imagenet/<run_name or timestamp>``.
        run_name: name of the run folder (default: a timestamp).
        batch_sizes: batches to time.
        implementations: jaxfool's variants to time, among ``jaxfool_folded`` (batch-norm folded into the
            convolutions), ``jaxfool_separate`` and ``jaxfool_keras_v1_folded`` (Keras' stride on the 1x1).
        image_size: input height and width (global pooling: any size of at least 32).
        rounds: timing rounds; every case is timed once per round, in turn; the best round is reported.
        torch: time the plain PyTorch ResNet50 (needs PyTorch) with the same weights.
        seed: seed of the random weights, batch-norm statistics and images.
    """

    workdir: str = "runs"
    run_name: str = ""
    batch_sizes: tuple[int, ...] = (1, 8)
    implementations: tuple[str, ...] = IMPLEMENTATIONS
    image_size: int = 224
    rounds: int = 5
    torch: bool = True
    seed: int = 0

    def validate(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes={self.batch_sizes} must be positive integers, e.g. (1, 8)")
        if not self.implementations or set(self.implementations) - set(IMPLEMENTATIONS):
            raise ValueError(f"implementations={self.implementations} must be a non-empty subset of {IMPLEMENTATIONS}")
        if self.image_size < 32:
            raise ValueError(f"image_size={self.image_size} is too small for ResNet's five stride-2 steps; use 32+")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds} must be at least 1")


def get_config() -> Config:
    return Config()
