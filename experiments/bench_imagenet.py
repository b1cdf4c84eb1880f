"""ResNet50 speed on this machine: jaxfool (batch-norm folded and separate) against a plain PyTorch ResNet50
holding the same weights, forward and forward+backward (the input gradient attacks and Grad-CAM need).

``python -m experiments.bench_imagenet --config configs/bench_imagenet.py``. Both run torchvision's ResNet50 (v1.5:
stride on the 3x3) on preprocessed random pixels; the Keras variant (stride on the 1x1) is timed too; VGG16's
numbers come from ``experiments.bench_vgg16``. Cases are timed in turn each round, the best round reported, into
``<workdir>/bench_imagenet/<run>/metrics.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, runs, torch_twins, xla
from jaxfool.benchmarking import round_robin
from jaxfool.models import forward
from jaxfool.models.resnet import TORCH_EPSILON, fold_batch_norm, resnet
from jaxfool.weights import random_params, to_torchvision

log = logging.getLogger("bench_imagenet")


def _jax_cases(net: Any, params: Any, x: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], Any]]:
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    options = xla.cnn_compiler_options()

    def loss(v: jax.Array) -> jax.Array:
        out = forward(net, params, v)[0]
        return -jnp.take_along_axis(jax.nn.log_softmax(out), labels[:, None], axis=1).sum()

    fns = {"forward": lambda v: forward(net, params, v)[0], "forward+backward": jax.grad(loss)}
    compiled = {case: jax.jit(f).lower(x).compile(options) for case, f in fns.items()}
    return {case: (lambda f=f: jax.block_until_ready(f(x))) for case, f in compiled.items()}


def _torch_cases(model: Any, x: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], Any]]:
    import torch

    xt, lt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels.astype(np.int64))

    def fwd_bwd() -> Any:
        v = xt.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(v), lt, reduction="sum").backward()
        return v.grad

    return {"forward": torch.no_grad()(lambda: model(xt)), "forward+backward": fwd_bwd}


def run(config: Any) -> dict[str, Any]:
    """Times the cases of ``config``; returns the metrics (best milliseconds, ratios to PyTorch)."""
    cli.validate(config)
    run_dir = runs.start_run(config, "bench_imagenet")
    params = random_params(True, key=jax.random.key(config.seed), model="resnet50")
    rng = np.random.default_rng(config.seed)
    for p in (p for name, p in params.items() if name.endswith("_bn")):  # statistics for folding to fold
        p["moving_mean"], p["moving_variance"] = (rng.uniform(a, b, p["gamma"].shape).astype(np.float32)
                                                  for a, b in ((-0.2, 0.2), (0.5, 2.0)))
    nets = {
        "jaxfool_folded": (resnet(50, preprocess=False, stride_on="3x3", batch_norm="folded"),
                           fold_batch_norm(params, epsilon=TORCH_EPSILON)),
        "jaxfool_separate": (resnet(50, preprocess=False, stride_on="3x3"), params),
        "jaxfool_keras_v1_folded": (resnet(50, preprocess=False, batch_norm="folded"), fold_batch_norm(params)),
    }
    nets = {impl: nets[impl] for impl in config.implementations}
    model = torch_twins.resnet(50, to_torchvision(params, model="resnet50")).requires_grad_(False) if config.torch else None
    cases: dict[tuple[str, int, str], Any] = {}
    for batch in config.batch_sizes:
        x = rng.normal(0, 1, (batch, config.image_size, config.image_size, 3)).astype(np.float32)
        labels = rng.integers(0, 1000, batch)
        for impl, (net, p) in nets.items():
            for case, fn in _jax_cases(net, jax.device_put(p), x, labels).items():
                cases[(case, batch, impl)] = fn
        if model is not None:
            for case, fn in _torch_cases(model, x, labels).items():
                cases[(case, batch, "pytorch")] = fn
    best, _ = round_robin(cases, config.rounds)
    results = []
    for (case, batch, impl), seconds in best.items():
        row = {"case": case, "batch": batch, "implementation": impl, "ms": 1e3 * seconds}
        row |= {"time_vs_pytorch": seconds / best[(case, batch, "pytorch")]} if model is not None else {}
        results.append(row)
        log.info("%-17s batch %d %-24s %8.1f ms%s", case, batch, impl, row["ms"],
                 f"  {row['time_vs_pytorch']:.2f}x PyTorch" if "time_vs_pytorch" in row else "")
    metrics = {"model": f"resnet50 at {config.image_size}px", "results": results, "run_dir": str(run_dir)}
    runs.write_json(run_dir / "metrics.json", metrics)
    return metrics


if __name__ == "__main__":
    cli.main(run)
