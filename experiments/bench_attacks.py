"""PGD-40 on MNIST digits x several epsilons: jaxfool's one-call sweep against Foolbox 3 (JAX) and torchattacks
(PyTorch, same weights, on the GPU when JAX runs on one) in one run (``configs/bench_attacks.py`` has the command).

Also measured: the sweep's GFLOP/s against a float32 matmul's; the CNN's input gradient alone (XLA's or jaxfool's
options, flax or canonical-gradient convolutions, at the top level or in a ``fori_loop``; PyTorch); and the
"gradient floor", the time of the batch gradients every PGD sweep must compute. Writes ``metrics.json``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks, cli, runs, torch_twins, xla, zoo
from jaxfool.benchmarking import best_time, compiled_flops, input_gradient_ms, label_log_likelihood, matmul_peak, sync
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn

log = logging.getLogger("bench_attacks")


def run(config: Any) -> dict[str, Any]:
    """Times every contender on the same digits and weights; returns the metrics."""
    cli.validate(config)
    b = config.bench
    run_dir = runs.start_run(config, "bench_attacks")
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, _ = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models",
                                  progress=True)
    pick = np.linspace(0, len(data.test_images) - 1, b.n_images).astype(int)
    x, y = jnp.asarray(data.test_images[pick]), jnp.asarray(data.test_labels[pick])
    eps = tuple(float(e) for e in b.epsilons)
    pgd, model = attacks.get_attack("pgd", steps=b.steps), attacks.network_model(net, params)
    sec: dict[str, Any] = {}
    metrics = {"device": jax.devices()[0].device_kind, "n_images": b.n_images, "epsilons": eps, "steps": b.steps,
               "seconds": sec}

    sweep_params = pgd.params(jnp.asarray(eps))
    sweep = lambda: attacks.sweep(pgd, model, x, y, sweep_params, key=jax.random.key(0), bounds=net.bounds)
    start, adv = time.perf_counter(), sync(sweep())
    sec["jaxfool_first_call_incl_compile"] = time.perf_counter() - start
    sec["jaxfool_sweep"] = best_time(sweep, b.repeats)
    metrics["jaxfool_robust_accuracy"] = [float(np.mean(attacks.predict_labels(model, a) == y)) for a in adv]
    log.info("jaxfool sweep %.2f s (first call %.1f s)", sec["jaxfool_sweep"], sec["jaxfool_first_call_incl_compile"])

    # Throughput: XLA's FLOP count of one PGD step on the batch, times steps and epsilons.
    flops = compiled_flops(jax.grad(label_log_likelihood(model, y)), x) * b.steps * len(eps)
    peak = matmul_peak(b.matmul_size)["jax"]
    metrics["gflops"] = {"jaxfool_sweep": flops / sec["jaxfool_sweep"] / 1e9, "matmul_peak": peak}
    metrics["gflops"]["fraction_of_peak"] = metrics["gflops"]["jaxfool_sweep"] / peak

    grads = metrics["input_gradient_ms"] = input_gradient_ms(net, params, x, y, b.repeats)
    for peer in b.peers:
        sec[peer] = {"torchattacks": _torchattacks, "foolbox": _foolbox}[peer](net, params, x, y, eps, b, metrics)
    # The input gradients any PGD-k sweep must compute, each timed alone at its fastest (top level or PyTorch):
    # an attack loop that adds nothing costs about this, so it shows how much of each time is loop overhead.
    best_grad = min(v for k, v in grads.items() if k == "torch" or k.endswith("top_level"))
    floor = metrics["gradient_floor_seconds"] = 1e-3 * best_grad * b.steps * len(eps)
    metrics["seconds_over_gradient_floor"] = {k: v / floor for k, v in sec.items() if v and "first" not in k}
    metrics["ratio_jaxfool_over"] = {p: sec["jaxfool_sweep"] / sec[p] for p in ("foolbox", "torchattacks") if sec.get(p)}
    runs.write_json(run_dir / "metrics.json", metrics)
    print(f"PGD-{b.steps}, {b.n_images} digits x {len(eps)} epsilons on {metrics['device']}")
    for peer, ratio in metrics["ratio_jaxfool_over"].items():
        print(f"jaxfool / {peer} time: {ratio:.3f}x  ({sec['jaxfool_sweep']:.2f} s vs {sec[peer]:.2f} s)")
    print(f"gradient floor ({b.steps * len(eps)} top-level input gradients of the batch): {floor:.2f} s; "
          + ", ".join(f"{k} {v:.2f}x" for k, v in metrics["seconds_over_gradient_floor"].items()))
    print(f"achieved {metrics['gflops']['jaxfool_sweep']:.1f} GFLOP/s = "
          f"{100 * metrics['gflops']['fraction_of_peak']:.0f}% of matmul peak {peak:.1f} GFLOP/s")
    return {**metrics, "run_dir": str(run_dir)}


def _torch_inputs(params, x, y):
    on = torch_twins.device()
    return (torch_twins.mnist_cnn(params, on=on), *torch_twins.batch(x, y, on=on))


def _torchattacks(net, params, x, y, eps, b, metrics) -> float | None:
    try:
        import torch
        import torchattacks
    except ImportError as e:
        log.warning("torchattacks skipped: %s", e)
        return None
    tnet, xt, yt = _torch_inputs(params, x, y)
    with torch.no_grad():
        reference = np.asarray(attacks.network_model(net, params)(x))
        diff = np.abs(tnet(xt).cpu().numpy() - reference).max() / np.abs(reference).max()
    metrics["torch_logit_max_rel_diff"] = float(diff)
    # Relative, and loose enough for GPUs, where both libraries run float32 convolutions in TF32 by default.
    if diff > 2e-3:
        raise RuntimeError(f"the PyTorch copy of the CNN disagrees with the flax model (relative logit difference "
                           f"{diff:.2g})")
    attack_all = lambda: [torchattacks.PGD(tnet, eps=e, alpha=2.5 * e / b.steps, steps=b.steps, random_start=True)(xt, yt)
                          for e in eps]
    best = best_time(attack_all, b.repeats)
    advs = attack_all()  # outside no_grad: the attack needs gradients
    with torch.no_grad():
        metrics["torchattacks_robust_accuracy"] = [float((tnet(a).argmax(1) == yt).float().mean()) for a in advs]
    metrics["torch_threads"], metrics["torch_device"] = torch.get_num_threads(), torch_twins.device()
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
    best = best_time(run_once, b.repeats)
    metrics["foolbox_robust_accuracy"] = [float(np.mean(attacks.predict_labels(attacks.network_model(net, params),
                                                                          getattr(c, "raw", c)) == y)) for c in run_once()]
    return best


if __name__ == "__main__":
    cli.main(run)
