"""VGG16 speed on this machine: jaxfool against PyTorch (same weights) and against the matmul peak.

``python -m experiments.bench_vgg16 --config configs/bench_vgg16.py`` times, for each batch size, the
forward pass (logits) and the forward+backward pass that attacks and Grad-CAM run (the gradient of a
cross-entropy with respect to the input pixels; parameters frozen), in float32 at 224x224. One run also
times a large jitted f32 matmul (and PyTorch's) as the machine's peak. Every case is timed once per round,
in turn, so all of them see the same load on a shared machine; the best round of each is reported.

Achieved GFLOP/s counts a multiply-add as two FLOPs, as the matmul peak's ``2 n^3`` does: the "15.5 GFLOPs"
usually quoted for VGG16 are 15.47 G multiply-adds, i.e. 30.9 GFLOPs per image forward, and twice that
forward+backward (each layer's input gradient costs what its forward does).

Writes ``metrics.json`` and ``config.json`` into ``<workdir>/bench_vgg16/<run>/``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, runs, torch_twins, xla
from jaxfool.benchmarking import matmul_cases, parse_compiler_options, rates, rates_table, round_robin
from jaxfool.models import forward
from jaxfool.models.vgg16 import BLOCKS, IMAGE_SIZE, NUM_CLASSES, vgg16
from jaxfool.weights import random_params, to_torchvision

log = logging.getLogger("bench_vgg16")


def vgg16_flops(size: int = IMAGE_SIZE, include_top: bool = True) -> int:
    """Forward FLOPs of VGG16 for one ``size x size`` image (multiply-add = 2 FLOPs; ReLU/pool/bias ignored)."""
    flops, channels = 0, 3
    for n, features in BLOCKS:
        for _ in range(n):
            flops += 2 * size * size * 9 * channels * features
            channels = features
        size //= 2
    if include_top:
        flops += 2 * (size * size * channels * 4096 + 4096 * 4096 + 4096 * NUM_CLASSES)
    return flops


def _jax_cases(
    params: Any, x: np.ndarray, labels: np.ndarray, options: dict[str, str]
) -> dict[str, Callable[[], Any]]:
    net = vgg16(include_top="fc1" in params, preprocess=False)
    x, labels = jnp.asarray(x), jnp.asarray(labels)

    def loss(v: jax.Array) -> jax.Array:
        out = forward(net, params, v)[0]
        if out.ndim > 2:  # without the classifier: a stand-in score over block5_pool's channels
            out = out.mean(axis=(1, 2))
        return -jnp.take_along_axis(jax.nn.log_softmax(out), labels[:, None], axis=1).sum()

    fwd = jax.jit(lambda v: forward(net, params, v)[0]).lower(x).compile(options)
    fwd_bwd = jax.jit(jax.value_and_grad(loss)).lower(x).compile(options)
    return {"forward": lambda: jax.block_until_ready(fwd(x)),
            "forward+backward": lambda: jax.block_until_ready(fwd_bwd(x))}


def _torch_cases(model: Any, x: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], Any]]:
    import torch

    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    lt = torch.from_numpy(labels.astype(np.int64))

    def fwd() -> Any:
        with torch.no_grad():
            return model(xt)

    def fwd_bwd() -> Any:
        v = xt.clone().requires_grad_(True)
        out = model(v)
        if out.ndim > 2:
            out = out.mean(dim=(2, 3))
        loss = torch.nn.functional.cross_entropy(out, lt, reduction="sum")
        loss.backward()
        return v.grad

    return {"forward": fwd, "forward+backward": fwd_bwd}


def _implementations(config: Any) -> dict[str, dict[str, str]]:
    """``{name: XLA options}``: jaxfool's own (:func:`jaxfool.xla.cnn_compiler_options`), then one variant per
    ``config.compiler_options`` entry (an empty entry is XLA's defaults, named ``xla_default``)."""
    impls = {"jaxfool": xla.cnn_compiler_options()}
    for i, text in enumerate(config.compiler_options, 1):
        impls["xla_default" if not text.strip() else f"jaxfool+opts{i}"] = parse_compiler_options(text)
    return impls


def run(config: Any) -> dict[str, Any]:
    """Times the cases of ``config``; returns the metrics (best seconds, GFLOP/s, ratios)."""
    cli.validate(config)
    impls = _implementations(config)
    run_dir = runs.start_run(config, "bench_vgg16")
    with_torch = config.torch and importlib.util.find_spec("torch") is not None
    if config.torch and not with_torch:
        log.warning("PyTorch is not installed: timing jaxfool alone")
    params = jax.device_put(random_params(config.include_top, key=jax.random.key(config.seed)))
    model = torch_twins.frozen(torch_twins.vgg16(to_torchvision(params), include_top=config.include_top)) \
        if with_torch else None
    rng = np.random.default_rng(config.seed)
    cases: dict[tuple[str, ...], Callable[[], Any]] = {}
    for batch in config.batch_sizes:
        # Caffe-preprocessed random pixels: the networks take preprocessed input (preprocessing is one
        # elementwise pass and would only blur the comparison).
        size = config.image_size
        x = (rng.uniform(0, 255, (batch, size, size, 3)) - 120.0).astype(np.float32)
        labels = rng.integers(0, NUM_CLASSES if config.include_top else BLOCKS[-1][1], batch)
        for impl, options in impls.items():
            for name, fn in _jax_cases(params, x, labels, options).items():
                cases[(name, str(batch), impl)] = fn
        if with_torch:
            for name, fn in _torch_cases(model, x, labels).items():
                cases[(name, str(batch), "pytorch")] = fn
    for lib, fn in matmul_cases(config.peak_size, torch=with_torch).items():
        cases[("peak", lib)] = fn

    load_before = os.getloadavg()
    wall, cpu = round_robin(cases, config.rounds)
    load_after = os.getloadavg()

    flops = vgg16_flops(config.image_size, config.include_top)
    gflop = {k: (2 if k[0] == "forward+backward" else 1) * flops * int(k[1]) / 1e9 for k in cases if k[0] != "peak"}
    metrics = {
        "model": f"vgg16{'' if config.include_top else '_notop'} at {config.image_size}x{config.image_size}",
        "device": jax.devices()[0].device_kind,
        "torch_threads": torch_twins.num_threads() if with_torch else None,
        "implementations": impls,
        "load_average_before_after": [load_before[0], load_after[0]],
        "rounds": config.rounds,
        **rates(wall, cpu, gflop, matmul_size=config.peak_size),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    print(rates_table(metrics))
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
