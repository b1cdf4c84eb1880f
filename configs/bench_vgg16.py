"""Benchmark VGG16 (224x224, with the classifier) against PyTorch CPU and the machine's matmul peak.

Run:
    python -m experiments.bench_vgg16 --config configs/bench_vgg16.py
Quicker, batch 1 only and fewer rounds:
    python -m experiments.bench_vgg16 --config configs/bench_vgg16.py --config.batch_sizes='(1,)' --config.rounds=2
"""

from __future__ import annotations

import dataclasses

from jaxfool.xla import PER_LAYER_YNNPACK

PER_LAYER_YNN = ";".join(f"{name}={value}" for name, value in PER_LAYER_YNNPACK.items())


@dataclasses.dataclass
class Config:
    """What to time.

    Attributes:
        workdir: the run folder is ``workdir/bench_vgg16/<run_name or timestamp>``.
        run_name: name of the run folder (default: a timestamp).
        batch_sizes: batches to time.
        include_top: with the classifier (then ``image_size`` must be 224) or the convolutional part only.
        image_size: input height and width.
        rounds: timing rounds; every case (jaxfool, PyTorch, the peak matmul) is timed once per round, in
            turn, so all see the same machine load; the best round of each is reported.
        peak_size: side of the square f32 matmul whose best rate is the machine's peak.
        torch: time PyTorch (if installed) with the same weights.
        compiler_options: variants timed beside jaxfool's own options (:data:`jaxfool.xla.YNNPACK_DOTS` on CPU),
            each a string of XLA options ``"xla_name=value;..."`` passed to ``jit(...).lower(...).compile``.
            The defaults: ``""``, XLA's own defaults (on CPU one YNNPACK graph for a forward pass), and
            :data:`jaxfool.xla.PER_LAYER_YNNPACK`, one YNNPACK call per convolution and dense layer.
        seed: seed of the random weights and images.
    """

    workdir: str = "runs"
    run_name: str = ""
    batch_sizes: tuple[int, ...] = (1, 8)
    include_top: bool = True
    image_size: int = 224
    rounds: int = 5
    peak_size: int = 4096
    torch: bool = True
    compiler_options: tuple[str, ...] = ("", PER_LAYER_YNN)
    seed: int = 0

    def validate(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes={self.batch_sizes} must be positive integers, e.g. (1, 8)")
        if self.include_top and self.image_size != 224:
            raise ValueError(f"image_size={self.image_size}: the classifier needs 224 (or set include_top=False)")
        if self.image_size < 32:
            raise ValueError(f"image_size={self.image_size} is too small for five 2x2 poolings; use 32 or more")
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds} must be at least 1")
        if self.peak_size < 256:
            raise ValueError(f"peak_size={self.peak_size} is too small to reach the peak; use 2048 or more")


def get_config() -> Config:
    return Config()
