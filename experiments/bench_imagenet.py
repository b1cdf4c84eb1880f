"""ResNet50 speed on this machine: jaxfool (batch-norm folded and separate) against a plain PyTorch ResNet50
holding the same weights, forward and forward+backward (the input gradient attacks and Grad-CAM need).

``python -m experiments.bench_imagenet --config configs/bench_imagenet.py``. Both run torchvision's ResNet50 (v1.5:
stride on the 3x3) on preprocessed random pixels; the Keras variant (stride on the 1x1) is timed too; VGG16's
numbers come from ``experiments.bench_vgg16``. Cases are timed in turn each round, the best round reported, into
``<workdir>/bench_imagenet/<run>/metrics.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, runs, xla
from jaxfool.models import forward
from jaxfool.models.resnet import DEPTHS, FILTERS, fold_batch_norm, resnet, TORCH_EPSILON
from jaxfool.weights import random_params, to_torchvision

log = logging.getLogger("bench_imagenet")


def torch_resnet(depth: int = 50, state_dict: dict[str, np.ndarray] | None = None, *, include_top: bool = True) -> Any:
    """A plain PyTorch ResNet laid out as torchvision's (``conv1``, ``bn1``, ``layerN.B.convK``/``bnK``,
    ``downsample``, ``fc``; v1.5 bottleneck), in eval mode, loaded with ``state_dict`` (numpy) if given.
    Without the top it returns ``layer4``'s output (NCHW)."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, n_in: int, width: int, stride: int) -> None:
            super().__init__()
            for k, (a, b, size, s) in enumerate(((n_in, width, 1, 1), (width, width, 3, stride),
                                                 (width, 4 * width, 1, 1)), 1):
                setattr(self, f"conv{k}", nn.Conv2d(a, b, size, stride=s, padding=size // 2, bias=False))
                setattr(self, f"bn{k}", nn.BatchNorm2d(b, eps=TORCH_EPSILON))
            self.downsample = None
            if stride != 1 or n_in != 4 * width:
                self.downsample = nn.Sequential(nn.Conv2d(n_in, 4 * width, 1, stride=stride, bias=False),
                                                nn.BatchNorm2d(4 * width, eps=TORCH_EPSILON))

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=TORCH_EPSILON)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            n_in = 64
            for s, (n, width) in enumerate(zip(DEPTHS[f"resnet{depth}"], FILTERS, strict=True), 1):
                blocks = [Bottleneck(n_in if b == 0 else 4 * width, width, 2 if b == 0 and s > 1 else 1)
                          for b in range(n)]
                setattr(self, f"layer{s}", nn.Sequential(*blocks))
                n_in = 4 * width
            self.fc = nn.Linear(n_in, 1000) if include_top else None

        def forward(self, x: Any) -> Any:
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean(dim=(2, 3))) if include_top else x

    model = ResNet().eval()
    if state_dict is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, strict=False)
    return model


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
    run_dir = runs.new_run_dir(config.workdir, "bench_imagenet", config.run_name)
    runs.write_json(run_dir / "config.json", config)
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
    model = torch_resnet(50, to_torchvision(params, model="resnet50")).requires_grad_(False) if config.torch else None
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
    for fn in cases.values():  # warm up
        fn()
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(config.rounds):
        for key, fn in cases.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
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
