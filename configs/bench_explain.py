"""Benchmark of jaxfool's explanations against Captum and pytorch-grad-cam on VGG16 and the MNIST CNN.

Run (several minutes on 2 CPU cores):
    python -m experiments.bench_explain --config configs/bench_explain.py
A quick look, MNIST only:
    python -m experiments.bench_explain --config configs/bench_explain.py --config.vgg16.enabled=false
"""

from __future__ import annotations

import dataclasses

from jaxfool.explain import OcclusionConfig


@dataclasses.dataclass
class ModelBench:
    """One model's share of the benchmark.

    Attributes:
        enabled: time this model.
        occlusion: occlusion settings, used identically by jaxfool and Captum (``batch_size`` is Captum's
            ``perturbations_per_eval``).
        repeats: timed calls per measurement after one warm-up call (the median is reported).
        per_layer_calls: also time one jaxfool Grad-CAM call per layer (one compilation per layer: slow on
            VGG16, so off there; the flop-count test covers it).
        score_cam_batch: also time Score-CAM at the last conv layer against pytorch-grad-cam's ``ScoreCAM`` with
            this many masked inputs per forward pass for both (0: skip).
    """

    enabled: bool = True
    occlusion: OcclusionConfig = dataclasses.field(default_factory=OcclusionConfig)
    repeats: int = 2
    per_layer_calls: bool = False
    score_cam_batch: int = 0

    def validate(self) -> None:
        if self.repeats < 1 or self.score_cam_batch < 0:
            raise ValueError(f"repeats must be >= 1 and score_cam_batch >= 0, got {self.repeats}, "
                             f"{self.score_cam_batch}")


@dataclasses.dataclass
class Config:
    """Benchmark settings.

    Attributes:
        workdir: ``metrics.json`` goes to ``workdir/bench_explain/<run_name or timestamp>``.
        run_name: name of the run folder (default: a timestamp).
        mnist: the MNIST CNN (2 conv layers, 28x28x1).
        vgg16: VGG16 (13 conv layers, 224x224x3, batch 1).
        pytorch_grad_cam_site: a folder holding pytorch-grad-cam (``pip install --no-deps --target DIR
            grad-cam ttach opencv-python-headless``), prepended to ``sys.path``; default: the environment's (as
            ``.ci/run`` installs it). It is skipped if not importable.
        seed: seeds the shared random weights and the input.
    """

    workdir: str = "runs"
    run_name: str = ""
    mnist: ModelBench = dataclasses.field(default_factory=lambda: ModelBench(
        occlusion=OcclusionConfig(window=4, stride=1, baseline=0.0, batch_size=128), repeats=20,
        per_layer_calls=True, score_cam_batch=64))
    vgg16: ModelBench = dataclasses.field(default_factory=lambda: ModelBench(
        occlusion=OcclusionConfig(window=64, stride=32, baseline=0.0, batch_size=12), repeats=2, score_cam_batch=32))
    pytorch_grad_cam_site: str | None = None
    seed: int = 0


def get_config() -> Config:
    return Config()
