"""Benchmark of jaxfool's explanations against Captum and pytorch-grad-cam on VGG16 and the MNIST CNN.

Run: ``python -m experiments.bench_explain`` (several minutes on 2 CPU cores);
``python -m experiments.bench_explain --repeats 1 --models mnist_cnn`` for a quick look.
"""

from __future__ import annotations

import dataclasses

from jaxfool.explain import OcclusionConfig


@dataclasses.dataclass
class ModelBench:
    """One model's share of the benchmark.

    Attributes:
        name: ``"vgg16"`` (13 conv layers, 224x224x3) or ``"mnist_cnn"``.
        occlusion: occlusion settings, used identically by jaxfool and Captum (``batch_size`` is Captum's
            ``perturbations_per_eval``).
        repeats: timed calls per measurement after one warm-up call (the median is reported).
        per_layer_calls: also time one jaxfool Grad-CAM call per layer (one compilation per layer: slow on
            VGG16, so off there; the flop-count test covers it).
    """

    name: str
    occlusion: OcclusionConfig
    repeats: int = 2
    per_layer_calls: bool = False


@dataclasses.dataclass
class BenchExplainConfig:
    """Benchmark settings.

    Attributes:
        models: which models to time.
        pytorch_grad_cam_site: a folder holding pytorch-grad-cam (``pip install --no-deps --target DIR
            grad-cam ttach opencv-python-headless``), prepended to ``sys.path``; skipped if it is absent.
        seed: seeds weights and inputs.
        out_dir: parent of the run folder that receives ``metrics.json``.
    """

    models: tuple[ModelBench, ...] = (
        ModelBench("mnist_cnn", OcclusionConfig(window=4, stride=1, baseline=0.0, batch_size=128), repeats=20,
                   per_layer_calls=True),
        ModelBench("vgg16", OcclusionConfig(window=64, stride=32, baseline=0.0, batch_size=12)),
    )
    pytorch_grad_cam_site: str | None = "/tmp/pgc_site"
    seed: int = 0
    out_dir: str = "runs/bench_explain"


def get_config() -> BenchExplainConfig:
    return BenchExplainConfig()
