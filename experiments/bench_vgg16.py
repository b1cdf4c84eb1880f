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

import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, runs, xla
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


def torch_vgg16(state_dict: dict[str, np.ndarray] | None = None, *, include_top: bool = True) -> Any:
    """A plain PyTorch VGG16 laid out as torchvision's (``features`` / ``classifier`` indices), in eval mode,
    loaded with ``state_dict`` (numpy arrays, e.g. from :func:`jaxfool.weights.to_torchvision`) if given.
    Without the top it returns the ``features`` output (NCHW)."""
    import torch
    from torch import nn

    layers: list[Any] = []
    channels = 3
    for n, features in BLOCKS:
        for _ in range(n):
            layers += [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
            channels = features
        layers.append(nn.MaxPool2d(2, 2))

    class VGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            if include_top:
                self.classifier = nn.Sequential(
                    nn.Linear(channels * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                    nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                    nn.Linear(4096, NUM_CLASSES),
                )

        def forward(self, x: Any) -> Any:
            x = self.features(x)
            return self.classifier(torch.flatten(x, 1)) if include_top else x

    model = VGG().eval()
    if state_dict is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})  # writable copies
    return model


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


def _peak_cases(n: int, with_torch: bool) -> dict[str, Callable[[], Any]]:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    cases = {"jax": lambda: jax.block_until_ready(matmul(a, b))}
    if with_torch:
        import torch

        at, bt = torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b))
        cases["torch"] = lambda: at @ bt
    return cases


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _seconds(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one call; CPU time counts all threads of this process."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return time.perf_counter() - start, _cpu_seconds() - cpu


def compiler_options(text: str) -> dict[str, str | bool | int]:
    """``"name=value;name=value"`` -> XLA compiler options for ``jit(...).lower(...).compile``
    (``true``/``false`` become booleans and digits integers, as XLA's typed options need)."""
    options: dict[str, str | bool | int] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name.startswith("xla_"):
            raise ValueError(f"compiler option {item!r} is not 'xla_name=value'")
        if value.lower() in ("true", "false"):
            options[name] = value.lower() == "true"
        else:
            options[name] = int(value) if value.lstrip("-").isdigit() else value
    return options


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _implementations(config: Any) -> dict[str, dict[str, str]]:
    """``{name: XLA options}``: jaxfool's own (:func:`jaxfool.xla.cnn_compiler_options`), then one variant per
    ``config.compiler_options`` entry (an empty entry is XLA's defaults, named ``xla_default``)."""
    impls = {"jaxfool": xla.cnn_compiler_options()}
    for i, text in enumerate(config.compiler_options, 1):
        impls["xla_default" if not text.strip() else f"jaxfool+opts{i}"] = compiler_options(text)
    return impls


def run(config: Any) -> dict[str, Any]:
    """Times the cases of ``config``; returns the metrics (best seconds, GFLOP/s, ratios)."""
    cli.validate(config)
    impls = _implementations(config)
    run_dir = runs.new_run_dir(config.workdir, "bench_vgg16", config.run_name)
    runs.write_json(run_dir / "config.json", config)
    with_torch = config.torch and _has_torch()
    if config.torch and not with_torch:
        log.warning("PyTorch is not installed: timing jaxfool alone")
    params = jax.device_put(random_params(config.include_top, key=jax.random.key(config.seed)))
    model = torch_vgg16(to_torchvision(params), include_top=config.include_top) if with_torch else None
    if with_torch:
        for p in model.parameters():
            p.requires_grad_(False)
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
    for lib, fn in _peak_cases(config.peak_size, with_torch).items():
        cases[("peak", lib)] = fn

    load_before = os.getloadavg()
    for key, fn in cases.items():  # compile and warm up
        log.info("warming up %s", " ".join(key))
        fn()
    wall = dict.fromkeys(cases, float("inf"))
    cpu = dict.fromkeys(cases, float("inf"))
    for r in range(config.rounds):
        for key, fn in cases.items():
            w, c = _seconds(fn)
            wall[key], cpu[key] = min(wall[key], w), min(cpu[key], c)
        log.info("round %d/%d done", r + 1, config.rounds)
    load_after = os.getloadavg()

    # Two views of the same runs. Wall clock is what a user waits. CPU time (all threads, divided by the
    # cores) is what the run would take with the machine to itself: on a shared machine it is far less
    # noisy, though threads spin-waiting for work count in it too.
    cores = os.cpu_count() or 1
    n = config.peak_size
    libs = [key[1] for key in cases if key[0] == "peak"]
    peaks = {lib: 2 * n**3 / wall[("peak", lib)] / 1e9 for lib in libs}
    cpu_peaks = {lib: 2 * n**3 / (cpu[("peak", lib)] / cores) / 1e9 for lib in libs}
    peak, cpu_peak = max(peaks.values()), max(cpu_peaks.values())
    flops = vgg16_flops(config.image_size, config.include_top)
    results = []
    for key, seconds in wall.items():
        if key[0] == "peak":
            continue
        name, batch, impl = key
        gflop = (2 if name == "forward+backward" else 1) * flops * int(batch) / 1e9
        cpu_s = cpu[(name, batch, impl)]
        row = {
            "case": name, "batch": int(batch), "implementation": impl, "gflop": gflop,
            "ms": 1e3 * seconds, "gflops": gflop / seconds, "peak_fraction": gflop / seconds / peak,
            "cpu_s": cpu_s, "cpu_gflops": gflop / (cpu_s / cores), "cpu_peak_fraction": gflop / (cpu_s / cores) / cpu_peak,
        }
        torch_key = (name, batch, "pytorch")
        if torch_key in wall:
            row["time_vs_pytorch"] = seconds / wall[torch_key]
            row["cpu_vs_pytorch"] = cpu_s / cpu[torch_key]
        results.append(row)
    metrics = {
        "model": f"vgg16{'' if config.include_top else '_notop'} at {config.image_size}x{config.image_size}",
        "device": jax.devices()[0].device_kind,
        "cpu_count": cores,
        "torch_threads": _torch_threads() if with_torch else None,
        "implementations": {name: options for name, options in impls.items()},
        "peak_gflops": peak,
        "peak_gflops_by_library": peaks,
        "cpu_peak_gflops": cpu_peak,
        "cpu_peak_gflops_by_library": cpu_peaks,
        "load_average_before_after": [load_before[0], load_after[0]],
        "rounds": config.rounds,
        "results": results,
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    print(_table(metrics))
    return {**metrics, "run_dir": str(run_dir)}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _table(metrics: dict[str, Any]) -> str:
    load = metrics["load_average_before_after"]
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in metrics["peak_gflops_by_library"].items())
    cpu_peaks = ", ".join(f"{k} {v:.0f}" for k, v in metrics["cpu_peak_gflops_by_library"].items())
    lines = [
        (f"{metrics['model']}, f32, on {metrics['device']}: {metrics['cpu_count']} cores, load average "
         f"{load[0]:.1f} -> {load[1]:.1f}, best of {metrics['rounds']} rounds"),
        (f"matmul peak: wall clock {metrics['peak_gflops']:.0f} GFLOP/s ({peaks}); "
         f"CPU time / cores {metrics['cpu_peak_gflops']:.0f} GFLOP/s ({cpu_peaks})"),
    ]
    lines += [f"{name}: XLA options {opts}" for name, opts in metrics["implementations"].items() if opts]
    lines += [
        "",
        ("| case | batch | implementation | ms | GFLOP/s | % peak | time vs PyTorch "
         "| CPU s | GFLOP/s (CPU) | % peak (CPU) | CPU vs PyTorch |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in metrics["results"]:
        ratio = f"{r['time_vs_pytorch']:.2f}x" if "time_vs_pytorch" in r else "-"
        cpu_ratio = f"{r['cpu_vs_pytorch']:.2f}x" if "cpu_vs_pytorch" in r else "-"
        lines.append(
            f"| {r['case']} | {r['batch']} | {r['implementation']} | {r['ms']:.0f} | {r['gflops']:.0f} | "
            f"{100 * r['peak_fraction']:.0f}% | {ratio} | {r['cpu_s']:.2f} | {r['cpu_gflops']:.0f} | "
            f"{100 * r['cpu_peak_fraction']:.0f}% | {cpu_ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    cli.main(run)
