"""Timers, FLOP counts and the machine's matmul peak, shared by the benchmarks (``experiments/bench_*.py``).

Every timer blocks on JAX results and synchronises CUDA when PyTorch has initialised it, so a time covers the
work and not its dispatch. Benchmarks time all contenders in the same process, in turn, so they see the same
machine load; ratios between them are what a benchmark reports.
"""

from __future__ import annotations

import os
import importlib.util
import resource
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import torch_twins, xla
from jaxfool.attacks import network_model


def sync(result: Any = None) -> Any:
    """Waits for ``result`` (JAX arrays) and for queued CUDA work if PyTorch has started CUDA; returns ``result``."""
    jax.block_until_ready(result)
    torch = sys.modules.get("torch")  # never import torch here: JAX-only benchmarks stay torch-free
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return result


def seconds(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one synchronised call; CPU time counts every thread of this process."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    sync(fn())
    return time.perf_counter() - start, _cpu_seconds() - cpu


def best_time(fn: Callable[[], Any], repeats: int, *, warmup: bool = False) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls, after one untimed call if ``warmup``."""
    if warmup:
        sync(fn())
    return min(seconds(fn)[0] for _ in range(repeats))


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one untimed warm-up call (compilation)."""
    sync(fn())
    return statistics.median(seconds(fn)[0] for _ in range(repeats))


def round_robin(
    cases: Mapping[Hashable, Callable[[], Any]], rounds: int
) -> tuple[dict[Hashable, float], dict[Hashable, float]]:
    """Warms every case up, then times each once per round, in turn; the best ``(wall, cpu)`` of each case.

    Interleaving the cases gives each the same share of a shared machine's load, where timing them one after
    the other would hand a burst of load to whichever case ran during it.
    """
    for fn in cases.values():
        sync(fn())
    wall = dict.fromkeys(cases, float("inf"))
    cpu = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for key, fn in cases.items():
            w, c = seconds(fn)
            wall[key], cpu[key] = min(wall[key], w), min(cpu[key], c)
    return wall, cpu


def compiled_flops(fn: Callable[..., Any], *args: Any) -> float:
    """XLA's FLOP count of ``jax.jit(fn)(*args)`` (what the compiled program computes, fusions included)."""
    return float(jax.jit(fn).lower(*args).compile().cost_analysis()["flops"])


def matmul_cases(n: int, *, torch: bool = False) -> dict[str, Callable[[], Any]]:
    """A float32 ``[n, n] @ [n, n]`` per library (JAX, and PyTorch if asked): each does ``2 n^3`` FLOPs."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    cases: dict[str, Callable[[], Any]] = {"jax": lambda: matmul(a, b)}
    if torch:
        import torch as pt

        at, bt = pt.from_numpy(np.asarray(a)), pt.from_numpy(np.asarray(b))
        cases["torch"] = lambda: at @ bt
    return cases


def matmul_peak(n: int, *, repeats: int = 3, torch: bool = False) -> dict[str, float]:
    """GFLOP/s of the float32 matmul of :func:`matmul_cases` per library: the machine's practical peak."""
    return {lib: 2 * n**3 / best_time(fn, repeats, warmup=True) / 1e9 for lib, fn in matmul_cases(n, torch=torch).items()}


def parse_compiler_options(text: str) -> dict[str, str | bool | int]:
    """``"xla_name=value;xla_name=value"`` -> XLA compiler options for ``jit(...).lower(...).compile``.

    ``true``/``false`` become booleans and integers ints, as XLA's typed options need.
    """
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def he_params(net: Any, *, seed: int) -> Any:
    """Random parameters for ``net`` (a :class:`~jaxfool.models.Network`): He-normal kernels, biases ~ N(0, 0.01).

    Activations keep their scale through VGG16's 16 layers (flax's LeCun default shrinks them until biases decide
    the logits), so random-weight maps and timings mean something. Drawn by NumPy: no JAX compilation.
    """
    shapes = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    rng = np.random.default_rng(seed)

    def draw(path: Any, s: Any) -> jax.Array:
        if path[-1].key == "bias":
            return jnp.asarray(rng.normal(0, 0.01, s.shape), jnp.float32)
        return jnp.asarray(rng.normal(0, np.sqrt(2 / int(np.prod(s.shape[:-1]))), s.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table of ``rows`` (cells formatted with ``str``) under ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def rates(
    wall: Mapping[Hashable, float],
    cpu: Mapping[Hashable, float],
    gflop: Mapping[tuple[str, str, str], float],
    *,
    matmul_size: int,
    baseline: str = "pytorch",
) -> dict[str, Any]:
    """Achieved GFLOP/s of each timed case against the matmul peak and the ``baseline`` implementation.

    Args:
        wall: best wall seconds per case, as :func:`round_robin` returns; keys ``(case, batch, implementation)``
            and ``("peak", library)`` for the :func:`matmul_cases` of side ``matmul_size``.
        cpu: best CPU seconds per case (all threads).
        gflop: the work of each ``(case, batch, implementation)`` key, in GFLOP (multiply-add = 2 FLOPs).
        matmul_size: side of the peak matmul.
        baseline: the implementation whose time every other is divided by (``time_vs_<baseline>``).

    Returns:
        Peaks by library (wall clock, and CPU time divided by the cores: what the run would take with the
        machine to itself, far less noisy on a shared machine, though spin-waiting threads count in it) and one
        result row per case.
    """
    cores = os.cpu_count() or 1
    libs = [k[1] for k in wall if k[0] == "peak"]
    peaks = {lib: 2 * matmul_size**3 / wall[("peak", lib)] / 1e9 for lib in libs}
    cpu_peaks = {lib: 2 * matmul_size**3 / (cpu[("peak", lib)] / cores) / 1e9 for lib in libs}
    peak, cpu_peak = max(peaks.values()), max(cpu_peaks.values())
    results = []
    for key, work in gflop.items():
        name, batch, impl = key
        w, c = wall[key], cpu[key]
        row = {"case": name, "batch": int(batch), "implementation": impl, "gflop": work, "ms": 1e3 * w,
               "gflops": work / w, "peak_fraction": work / w / peak, "cpu_s": c, "cpu_gflops": work / (c / cores),
               "cpu_peak_fraction": work / (c / cores) / cpu_peak}
        if (name, batch, baseline) in wall:
            row[f"time_vs_{baseline}"] = w / wall[(name, batch, baseline)]
            row[f"cpu_vs_{baseline}"] = c / cpu[(name, batch, baseline)]
        results.append(row)
    return {"cpu_count": cores, "peak_gflops": peak, "peak_gflops_by_library": peaks, "cpu_peak_gflops": cpu_peak,
            "cpu_peak_gflops_by_library": cpu_peaks, "results": results}


def rates_table(metrics: Mapping[str, Any], baseline: str = "pytorch") -> str:
    """The header lines and markdown table of a benchmark's :func:`rates` (plus ``model``, ``device``,
    ``load_average_before_after``, ``rounds`` and ``implementations``)."""
    load = metrics["load_average_before_after"]
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in metrics["peak_gflops_by_library"].items())
    cpu_peaks = ", ".join(f"{k} {v:.0f}" for k, v in metrics["cpu_peak_gflops_by_library"].items())
    lines = [
        (f"{metrics['model']}, f32, on {metrics['device']}: {metrics['cpu_count']} cores, load average "
         f"{load[0]:.1f} -> {load[1]:.1f}, best of {metrics['rounds']} rounds"),
        (f"matmul peak: wall clock {metrics['peak_gflops']:.0f} GFLOP/s ({peaks}); "
         f"CPU time / cores {metrics['cpu_peak_gflops']:.0f} GFLOP/s ({cpu_peaks})"),
        *(f"{name}: XLA options {opts}" for name, opts in metrics["implementations"].items() if opts),
        "",
    ]
    ratio = lambda r, k: f"{r[k]:.2f}x" if k in r else "-"
    rows = [(r["case"], r["batch"], r["implementation"], f"{r['ms']:.0f}", f"{r['gflops']:.0f}",
             f"{100 * r['peak_fraction']:.0f}%", ratio(r, f"time_vs_{baseline}"), f"{r['cpu_s']:.2f}",
             f"{r['cpu_gflops']:.0f}", f"{100 * r['cpu_peak_fraction']:.0f}%", ratio(r, f"cpu_vs_{baseline}"))
            for r in metrics["results"]]
    header = ["case", "batch", "implementation", "ms", "GFLOP/s", "% peak", f"time vs {baseline}", "CPU s",
              "GFLOP/s (CPU)", "% peak (CPU)", f"CPU vs {baseline}"]
    return "\n".join(lines) + markdown_table(header, rows)


def label_log_likelihood(model: Any, y: Any) -> Callable[[jax.Array], jax.Array]:
    """``x [N, H, W, C] -> sum_i log p(y_i | x_i)`` under ``model``: the objective whose gradient PGD takes."""
    return lambda u: jnp.sum(jax.nn.log_softmax(model(u))[jnp.arange(len(y)), y])


def input_gradient_ms(net: Any, params: Any, x: jax.Array, y: jax.Array, repeats: int) -> dict[str, float]:
    """The MNIST CNN's input gradient on the batch, in milliseconds per gradient: JAX with XLA's default options and
    with jaxfool's (:func:`jaxfool.xla.jit`), flax or canonical-gradient convolutions, at the top level or inside
    a 4-step ``fori_loop``; and PyTorch if installed."""
    out = {}
    for opts, jit in (("xla_default", jax.jit), ("jaxfool", xla.jit)):
        for name, canonical in (("flax_conv", False), ("canonical_conv", True)):
            m = network_model(net, params, canonical_convs=canonical)
            top = jit(lambda mm, v: jax.grad(label_log_likelihood(mm, y))(v))
            step = lambda mm: lambda i, u: u + 1e-6 * jax.grad(label_log_likelihood(mm, y))(u)
            loop = jit(lambda mm, v: jax.lax.fori_loop(0, 4, step(mm), v))
            out[f"{opts}_{name}_top_level"] = 1e3 * best_time(lambda: top(m, x), repeats + 2, warmup=True)
            out[f"{opts}_{name}_in_loop"] = 1e3 * best_time(lambda: loop(m, x), repeats, warmup=True) / 4
    if importlib.util.find_spec("torch") is None:  # PyTorch's time only where it is installed
        return out
    import torch

    on = torch_twins.device()
    tnet, (xt, yt) = torch_twins.mnist_cnn(params, on=on), torch_twins.batch(x, y, on=on)

    def torch_grad():
        v = xt.clone().requires_grad_(True)
        return torch.autograd.grad(torch.nn.functional.cross_entropy(tnet(v), yt, reduction="sum"), v)[0]

    out["torch"] = 1e3 * best_time(torch_grad, repeats + 2, warmup=True)
    return out
