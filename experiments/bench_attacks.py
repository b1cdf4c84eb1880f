"""Times PGD-40 on MNIST digits x several epsilons: jaxfool's one-call sweep against Foolbox 3 (JAX backend) and
torchattacks (PyTorch with the same weights copied in, on the GPU when JAX runs on one), all in the same run, and
prints the time ratios.

``python -m experiments.bench_attacks --config configs/bench_attacks.py``. Also measured in the same run: the
achieved GFLOP/s of the sweep (XLA's FLOP count of one step) against a float32 matmul's; the input gradient of
the CNN alone in JAX (XLA's default options or jaxfool's, flax or canonical-gradient convolutions, at the top
level or inside a ``lax.fori_loop``) and in PyTorch, to show where time goes; and the "gradient floor", the time of
the batch gradients every PGD sweep must compute. Writes ``metrics.json`` and ``config.json``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks, cli, runs, xla, zoo
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn

log = logging.getLogger("bench_attacks")


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls (JAX results blocked on, CUDA streams synchronised)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        _torch_sync()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_device() -> str:
    """Where the PyTorch peers run: the GPU when JAX runs on one (a like-for-like race), else the CPU."""
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def _torch_sync() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def matmul_gflops(n: int, repeats: int = 5) -> float:
    """Float32 ``[n, n] @ [n, n]`` GFLOP/s: the machine's practical peak for XLA:CPU."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    return 2 * n**3 / best_time(lambda: f(a), repeats) / 1e9


def torch_cnn(params: Any):
    """The backwork CNN in PyTorch (NCHW) with ``params`` copied in; logits equal the flax model's."""
    import torch

    class NhwcFlatten(torch.nn.Module):
        """Flattens NCHW activations in flax's NHWC order, so the dense weights carry over unchanged."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    p = jax.tree.map(lambda v: torch.from_numpy(np.array(v)), params)
    conv = lambda k: torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding="same")
    net = torch.nn.Sequential(
        conv(p["conv0"]["kernel"]), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        conv(p["conv1"]["kernel"]), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        NhwcFlatten(), torch.nn.Linear(3136, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10),
    )
    with torch.no_grad():
        for i, name in ((0, "conv0"), (3, "conv1")):
            net[i].weight.copy_(p[name]["kernel"].permute(3, 2, 0, 1))  # HWIO -> OIHW
            net[i].bias.copy_(p[name]["bias"])
        for i, name in ((7, "fc"), (9, "logits")):
            net[i].weight.copy_(p[name]["kernel"].T)
            net[i].bias.copy_(p[name]["bias"])
    return net.eval().to(torch_device())


def _torch_batch(x: Any, y: Any):
    """``x [n, 28, 28, 1]``, ``y [n]`` as NCHW float and long tensors on :func:`torch_device`."""
    import torch

    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous().to(torch_device())
    return xt, torch.from_numpy(np.array(y)).long().to(torch_device())


def run(config: Any) -> dict[str, Any]:
    """Times every contender on the same digits and weights; returns the metrics."""
    cli.validate(config)
    b = config.bench
    run_dir = runs.new_run_dir(config.workdir, "bench_attacks", config.run_name)
    runs.write_json(run_dir / "config.json", config)
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, _ = zoo.load_or_train(net, data, config.train,
                                  cache_dir=pathlib.Path(config.workdir) / "models", progress=True)
    x = jnp.asarray(data.test_images[np.linspace(0, len(data.test_images) - 1, b.n_images).astype(int)])
    y = jnp.asarray(data.test_labels[np.linspace(0, len(data.test_labels) - 1, b.n_images).astype(int)])
    eps = tuple(float(e) for e in b.epsilons)
    pgd = attacks.get_attack("pgd", steps=b.steps)
    model = attacks.network_model(net, params)
    metrics: dict[str, Any] = {"device": jax.devices()[0].device_kind, "n_images": b.n_images,
                               "epsilons": list(eps), "steps": b.steps, "seconds": {}}
    sec = metrics["seconds"]

    sweep_params = pgd.params(jnp.asarray(eps))
    sweep = lambda: attacks.sweep(pgd, model, x, y, sweep_params, key=jax.random.key(0), bounds=net.bounds)
    start = time.perf_counter()
    adv = jax.block_until_ready(sweep())
    sec["jaxfool_first_call_incl_compile"] = time.perf_counter() - start
    sec["jaxfool_sweep"] = best_time(sweep, b.repeats)
    predict = jax.jit(lambda m, v: m(v).argmax(-1))
    metrics["jaxfool_robust_accuracy"] = [float(jnp.mean(predict(model, a) == y)) for a in adv]
    log.info("jaxfool sweep %.2f s (first call %.1f s)", sec["jaxfool_sweep"], sec["jaxfool_first_call_incl_compile"])

    # Throughput: XLA's FLOP count of one PGD step on the batch, times steps and epsilons.
    grad_step = jax.jit(lambda m, v: jax.grad(lambda u: jnp.sum(jax.nn.log_softmax(m(u))[jnp.arange(len(y)), y]))(v))
    flops_step = grad_step.lower(model, x).compile().cost_analysis()["flops"]
    total_flops = flops_step * b.steps * len(eps)
    peak = matmul_gflops(b.matmul_size)
    metrics["gflops"] = {"jaxfool_sweep": total_flops / sec["jaxfool_sweep"] / 1e9, "matmul_peak": peak}
    metrics["gflops"]["fraction_of_peak"] = metrics["gflops"]["jaxfool_sweep"] / peak
    log.info("%.1f GFLOP/s achieved, matmul peak %.1f GFLOP/s", metrics["gflops"]["jaxfool_sweep"], peak)

    metrics["input_gradient_ms"] = _input_gradient_times(net, params, model, x, y, b.repeats)
    if "torchattacks" in b.peers:
        sec["torchattacks"] = _torchattacks(params, x, y, eps, b, metrics)
    if "foolbox" in b.peers:
        sec["foolbox"] = _foolbox(net, params, x, y, eps, b, metrics)
    # The input gradients any PGD-k sweep must compute, each timed alone at its fastest (top level or PyTorch):
    # an attack loop that adds nothing costs about this, so it shows how much of each time is loop overhead.
    grads = metrics["input_gradient_ms"]
    best_grad = min(v for k, v in grads.items() if k == "torch" or k.endswith("top_level"))
    floor = 1e-3 * best_grad * b.steps * len(eps)
    metrics["gradient_floor_seconds"] = floor
    metrics["seconds_over_gradient_floor"] = {
        k: v / floor for k, v in sec.items() if v and k != "jaxfool_first_call_incl_compile"}
    metrics["ratio_jaxfool_over"] = {
        peer: sec["jaxfool_sweep"] / sec[peer] for peer in ("foolbox", "torchattacks") if sec.get(peer)
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    print(f"PGD-{b.steps}, {b.n_images} digits x {len(eps)} epsilons on {metrics['device']}")
    for peer, ratio in metrics["ratio_jaxfool_over"].items():
        print(f"jaxfool / {peer} time: {ratio:.3f}x  ({sec['jaxfool_sweep']:.2f} s vs {sec[peer]:.2f} s)")
    print(f"gradient floor ({b.steps * len(eps)} top-level input gradients of the batch): {floor:.2f} s; "
          + ", ".join(f"{k} {v:.2f}x" for k, v in metrics["seconds_over_gradient_floor"].items()))
    print(f"achieved {metrics['gflops']['jaxfool_sweep']:.1f} GFLOP/s = "
          f"{100 * metrics['gflops']['fraction_of_peak']:.0f}% of matmul peak {peak:.1f} GFLOP/s")
    return {**metrics, "run_dir": str(run_dir)}


def _input_gradient_times(net, params, model, x, y, repeats) -> dict[str, float]:
    """The CNN's input gradient on the batch, in milliseconds per gradient: JAX with XLA's default options and
    with jaxfool's (:func:`jaxfool.xla.jit`), flax or canonical-gradient convolutions, at the top level or inside
    a 4-step ``fori_loop``; and PyTorch."""
    plain = attacks.network_model(net, params, canonical_convs=False)
    loss = lambda m: lambda u: jnp.sum(jax.nn.log_softmax(m(u))[jnp.arange(len(y)), y])
    out = {}
    for opts, jit in (("xla_default", jax.jit), ("jaxfool", xla.jit)):
        for name, m in (("flax_conv", plain), ("canonical_conv", model)):
            top = jit(lambda mm, v: jax.grad(loss(mm))(v))
            loop = jit(lambda mm, v: jax.lax.fori_loop(0, 4, lambda i, u: u + 1e-6 * jax.grad(loss(mm))(u), v))
            jax.block_until_ready((top(m, x), loop(m, x)))
            out[f"{opts}_{name}_top_level"] = 1e3 * best_time(lambda: top(m, x), repeats + 2)
            out[f"{opts}_{name}_in_loop"] = 1e3 * best_time(lambda: loop(m, x), repeats) / 4
    try:
        import torch
    except ImportError:
        return out
    tnet = torch_cnn(params)
    xt, yt = _torch_batch(x, y)

    def torch_grad():
        v = xt.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(tnet(v), yt, reduction="sum"), v)
        return g

    torch_grad()
    out["torch"] = 1e3 * best_time(torch_grad, repeats + 2)
    log.info("input gradient ms: %s", {k: round(v, 1) for k, v in out.items()})
    return out


def _torchattacks(params, x, y, eps, b, metrics) -> float | None:
    try:
        import torch
        import torchattacks
    except ImportError as e:
        log.warning("torchattacks skipped: %s", e)
        return None
    tnet = torch_cnn(params)
    xt, yt = _torch_batch(x, y)
    with torch.no_grad():
        reference = np.asarray(attacks.network_model(mnist_cnn(), params)(x))
        diff = np.abs(tnet(xt).cpu().numpy() - reference).max() / np.abs(reference).max()
    metrics["torch_logit_max_rel_diff"] = float(diff)
    # Relative, and loose enough for GPUs, where both libraries run float32 convolutions in TF32 by default.
    if diff > 2e-3:
        raise RuntimeError(f"the PyTorch copy of the CNN disagrees with the flax model (relative logit difference "
                           f"{diff:.2g})")

    def attack_all():
        out = []
        for e in eps:
            atk = torchattacks.PGD(tnet, eps=e, alpha=2.5 * e / b.steps, steps=b.steps, random_start=True)
            out.append(atk(xt, yt))
        return out

    start = time.perf_counter()
    advs = attack_all()
    _torch_sync()
    first = time.perf_counter() - start
    best = min([first] + [best_time(attack_all, 1) for _ in range(b.repeats - 1)])
    with torch.no_grad():
        metrics["torchattacks_robust_accuracy"] = [float((tnet(a).argmax(1) == yt).float().mean()) for a in advs]
    metrics["torch_threads"] = torch.get_num_threads()
    metrics["torch_device"] = torch_device()
    log.info("torchattacks %.2f s", best)
    return best


def _foolbox(net, params, x, y, eps, b, metrics) -> float | None:
    try:
        import foolbox as fb
    except ImportError as e:
        log.warning("foolbox skipped: %s", e)
        return None
    # The model as jaxfool compiles it (its XLA options, canonical convolutions): the comparison is the attack loop.
    fmodel = fb.JAXModel(xla.jit(attacks.network_model(net, params)), bounds=net.bounds)
    attack = fb.attacks.LinfPGD(steps=b.steps, rel_stepsize=2.5 / b.steps, random_start=True)
    run_once = lambda: attack(fmodel, x, y, epsilons=list(eps))[1]
    start = time.perf_counter()
    clipped = run_once()
    first = time.perf_counter() - start
    best = min([first] + [best_time(run_once, 1) for _ in range(b.repeats - 1)])
    predict = jax.jit(lambda v: attacks.network_model(net, params)(v).argmax(-1))
    metrics["foolbox_robust_accuracy"] = [float(jnp.mean(predict(c.raw if hasattr(c, "raw") else c) == y))
                                          for c in clipped]
    log.info("foolbox %.2f s", best)
    return best


if __name__ == "__main__":
    cli.main(run)
