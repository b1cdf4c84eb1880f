"""Robust accuracy against epsilon for each attack on the plain and defended MNIST CNNs.

``python -m experiments.attack_sweep --config configs/attack_sweep.py``. Trains (or restores from
``<workdir>/models``) the plain CNN and each enabled defence -- FGSM and PGD adversarial training, defensive
distillation -- then runs every attack over the whole epsilon grid as one vmapped, jitted sweep per batch. Writes
``robust_accuracy.png`` (one panel per model), ``metrics.json`` and ``config.json`` into
``<workdir>/attack_sweep/<run>/``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import jax

from jaxfool import attacks, cli, defended, plots, runs
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.progress import bar as progress_bar
from jaxfool.train import accuracy

log = logging.getLogger("attack_sweep")


def parse_attack(spec: str, *, steps: int, pgd_steps: int, restarts: int) -> attacks.Attack:
    """``"pgd"`` or ``"pgd+margin"`` -> the registry attack with the sweep's steps (and the margin loss)."""
    name, _, loss = spec.partition("+")
    base = attacks.get_attack(name)
    overrides: dict[str, Any] = {"loss": loss or "ce"}
    if base.steps > 1:
        overrides["steps"] = pgd_steps if base.random_start else steps
    if base.random_start:
        overrides["restarts"] = restarts
    attack = attacks.get_attack(name, **overrides)
    return dataclasses.replace(attack, name=spec)


def run(config: Any) -> dict[str, Any]:
    """Trains or restores the models, sweeps every attack over the epsilons; returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "attack_sweep")
    data = load_mnist(config.data)
    net, models, details = defended.mnist_models(config, data, progress=True)
    s = config.sweep
    keep = stratified_indices(data.test_labels, s.n_test)
    x, y = data.test_images[keep], data.test_labels[keep]
    specs = [parse_attack(a, steps=s.steps, pgd_steps=s.pgd_steps, restarts=s.restarts) for a in s.attacks]
    results: dict[str, Any] = {}
    key = jax.random.key(config.seed)  # the one random section; every model faces the same attack noise
    for name, params in models.items():
        model = attacks.network_model(net, params)
        results[name] = {**details[name], "robust_accuracy": {},
                         "test_accuracy": accuracy(net, params, data.test_images, data.test_labels)}
        for attack in progress_bar(specs, progress=True, desc=f"attacks on {name}"):
            accs = attacks.robust_accuracy(attack, model, x, y, s.epsilons, key=key, bounds=net.bounds,
                                           batch_size=s.batch_size)
            results[name]["robust_accuracy"][attack.name] = accs
            log.info("%s / %s: %s", name, attack.name, ", ".join(f"{e:g}:{a:.3f}" for e, a in zip(s.epsilons, accs)))
    plots.curve_panels({m: r["robust_accuracy"] for m, r in results.items()}, run_dir / "robust_accuracy.png",
                       x=s.epsilons, xlabel="eps (L-inf, pixels in [0, 1])", ylabel="robust accuracy")
    metrics = {"data_source": data.source, "n_attacked": len(x), "epsilons": list(s.epsilons),
               "attacks": {a.name: runs.to_jsonable(a) for a in specs}, "models": results,
               "headline": _headline(results, s.epsilons), "seconds": round(time.perf_counter() - start, 1)}
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("headline %s; run folder %s", metrics["headline"], run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def _headline(results: dict[str, Any], epsilons: tuple[float, ...]) -> dict[str, float]:
    """The issue's must-show figures, where the sweep measured them (eps 0.3)."""
    out: dict[str, float] = {}
    if 0.3 not in epsilons:
        return out
    i = list(epsilons).index(0.3)
    for model, result in results.items():
        for attack, accs in result["robust_accuracy"].items():
            if attack in ("pgd", "fgsm"):
                out[f"{model}/{attack}@0.3 robust accuracy"] = accs[i]
    return out


if __name__ == "__main__":
    cli.main(run)
