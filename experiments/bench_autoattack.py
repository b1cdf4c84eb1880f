"""AutoAttack standard, DeepFool and C&W: jaxfool against torchattacks 3.5.1 on identical weights and digits,
in one run: robust accuracy after each attack (parity) and wall-clock time (the bench).

``python -m experiments.bench_autoattack --config configs/bench_autoattack.py``. torchattacks' attacks run in
AutoAttack's cascade (each on the points every earlier one failed on, success = misclassified inside the ball),
configured like the authors' standard version (100 steps, 9 targets, 5,000 queries); torchattacks' own
``AutoAttack`` class defaults to 10 steps. C&W is compared at one fixed constant (torchattacks has no search)
with torchattacks' tanh mapping (``box_scale=1``); DeepFool with torchattacks' clipped step (``box_aware=False``),
and jaxfool's default box-aware DeepFool beside it. Minimum norms: found counts, medians over the digits both
fooled and overall medians (``inf`` when under half were fooled). Writes ``metrics.json`` and ``config.json`` into
``<workdir>/bench_autoattack/<run>/``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import numpy as np

from jaxfool import attacks, cli, defended, runs, torch_twins
from jaxfool.attacks import autoattack
from jaxfool.attacks.minimum_norm import minimum_norm
from jaxfool.data import load_mnist

log = logging.getLogger("bench_autoattack")


def torch_cascade(tnet, x, y, b: Any) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """torchattacks' APGD-CE, APGD-T, FAB-T, Square as AutoAttack runs them.

    Returns:
        ``(robust accuracy after each, seconds of each, robust [N])``.
    """
    import torch
    import torchattacks

    xt, yt = torch_twins.batch(x, y)
    with torch.no_grad():
        robust = (tnet(xt).argmax(1) == yt).numpy()
    accs = {"clean": float(robust.mean())}
    steps = dict(steps=b.steps)
    cascade = {
        "apgd-ce": torchattacks.APGD(tnet, norm="Linf", eps=b.eps, loss="ce", n_restarts=1, seed=b.seed, **steps),
        "apgd-t": torchattacks.APGDT(tnet, norm="Linf", eps=b.eps, n_restarts=1, n_classes=10, seed=b.seed, **steps),
        "fab-t": torchattacks.FAB(tnet, norm="Linf", eps=b.eps, multi_targeted=True, n_classes=10, n_restarts=1,
                                  seed=b.seed, **steps),
        "square": torchattacks.Square(tnet, norm="Linf", eps=b.eps, n_queries=b.n_queries, n_restarts=1, seed=b.seed),
    }
    seconds = {}
    for name, attack in cascade.items():
        start = time.perf_counter()
        idx = np.flatnonzero(robust)
        if idx.size:
            adv = attack(xt[idx], yt[idx]).detach()
            with torch.no_grad():
                wrong = (tnet(adv).argmax(1) != yt[idx]).numpy()
            inside = (adv - xt[idx]).abs().flatten(1).max(1)[0].numpy() <= b.eps + 1e-5
            robust[idx[wrong & inside]] = False
        accs[name] = float(robust.mean())
        seconds[name] = round(time.perf_counter() - start, 2)
    return accs, seconds, robust


def torch_min_norm(tnet, x, y, b: Any) -> dict[str, np.ndarray]:
    """torchattacks' DeepFool and CW L2 distances (``inf`` where the returned point is not misclassified)."""
    import torch
    import torchattacks

    xt, yt = torch_twins.batch(x, y)
    out = {}
    for name, attack in (("deepfool_l2", torchattacks.DeepFool(tnet, steps=b.deepfool_steps, overshoot=0.02)),
                         ("cw_l2", torchattacks.CW(tnet, c=b.cw_const, kappa=0, steps=b.cw_steps, lr=0.01))):
        adv = attack(xt, yt).detach()
        with torch.no_grad():
            wrong = (tnet(adv).argmax(1) != yt).numpy()
        d = (adv - xt).flatten(1).norm(dim=1).numpy()
        out[name] = np.where(wrong, d, np.inf)
    return out


def _summary(mine: np.ndarray, theirs: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Found counts, the median over the digits both libraries fooled, and each overall median (``inf`` when
    under half of the correctly classified digits were fooled)."""
    both = correct & np.isfinite(mine) & np.isfinite(theirs)
    med = lambda d: float(np.median(d)) if d.size else None
    return {"found_jaxfool": int((correct & np.isfinite(mine)).sum()),
            "found_torchattacks": int((correct & np.isfinite(theirs)).sum()), "n_correct": int(correct.sum()),
            "both_found": int(both.sum()), "median_both_jaxfool": med(mine[both]),
            "median_both_torchattacks": med(theirs[both]),
            "median_jaxfool": med(mine[correct]), "median_torchattacks": med(theirs[correct])}


def run(config: Any) -> dict[str, Any]:
    """Parity and timing of AutoAttack standard, DeepFool and C&W; returns the metrics."""
    cli.validate(config)
    run_dir = runs.new_run_dir(config.workdir, "bench_autoattack", config.run_name)
    runs.write_json(run_dir / "config.json", config)
    b = config.bench
    data = load_mnist(config.data)
    net, models, _ = defended.mnist_models(config, data, (b.model,))
    keep = np.concatenate([np.flatnonzero(data.test_labels == c)[: max(1, b.n_images // 10)] for c in range(10)])
    x, y = data.test_images[keep], data.test_labels[keep]
    model = attacks.network_model(net, models[b.model])
    tnet = torch_twins.mnist_cnn(models[b.model])
    import torch

    with torch.no_grad():
        logit_diff = float(np.abs(tnet(torch_twins.batch(x[:64], y[:64])[0]).numpy() - np.asarray(model(x[:64]))).max())
    load_start = [round(v, 2) for v in os.getloadavg()]
    comps = autoattack.components("standard", "linf", steps=b.steps, n_queries=b.n_queries)
    jax_seconds, result = [], None
    for repeat in range(b.repeats):  # the first call compiles
        start = time.perf_counter()
        result = autoattack.auto_attack(model, x, y, eps=b.eps, key=jax.random.key(b.seed + repeat), bounds=net.bounds,
                                        attacks=comps, batch_size=b.batch_size, run_checks=False)
        jax_seconds.append(round(time.perf_counter() - start, 2))
    torch_accs, torch_parts, _ = torch_cascade(tnet, x, y, b)
    torch_seconds = sum(torch_parts.values())
    metrics: dict[str, Any] = {
        "model": b.model, "n_images": len(x), "eps": b.eps, "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_start,  # os.getloadavg(): the times are only benchmarks on a quiet machine
        "logit_max_abs_diff": logit_diff,
        "robust_accuracy": {"jaxfool": result.robust_accuracy, "torchattacks": torch_accs},
        "difference_pp": {k: round(100 * (result.robust_accuracy[k] - torch_accs[k]), 2) for k in torch_accs},
        "seconds": {"jaxfool_first_call": jax_seconds[0], "jaxfool_steady": min(jax_seconds),
                    "torchattacks": round(torch_seconds, 2)},
        "jaxfool_over_torchattacks": round(min(jax_seconds) / torch_seconds, 3),
        "per_attack_seconds_jaxfool": result.seconds,
        "per_attack_seconds_torchattacks": torch_parts,
    }
    if b.min_norm:
        correct = result.clean_correct
        mine = {
            "deepfool_l2": minimum_norm(model, x, y, method="deepfool", norm="l2", bounds=net.bounds,
                                        steps=b.deepfool_steps, box_aware=False).distance,  # torchattacks' step
            "cw_l2": minimum_norm(model, x, y, method="cw", bounds=net.bounds, steps=b.cw_steps,
                                               search_steps=1, initial_const=b.cw_const, box_scale=1.0).distance,
        }
        theirs = torch_min_norm(tnet, x, y, b)
        metrics["median_l2"] = {k: _summary(mine[k], theirs[k], correct) for k in mine}
        own = minimum_norm(model, x, y, method="deepfool", norm="l2", bounds=net.bounds, steps=b.deepfool_steps)
        metrics["median_l2"]["deepfool_l2_box_aware"] = _summary(own.distance, theirs["deepfool_l2"], correct)
    metrics["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("%s", {k: metrics[k] for k in ("robust_accuracy", "difference_pp", "seconds", "jaxfool_over_torchattacks")})
    log.info("minimum norm: %s; run folder %s", metrics.get("median_l2"), run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
