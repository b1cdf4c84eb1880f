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
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
from tqdm.auto import tqdm

from jaxfool import attacks, checkpoints, cli, defences, plots, runs, zoo
from jaxfool.data import Mnist, load_mnist, stratified_indices
from jaxfool.models import Network, mnist_cnn
from jaxfool.models.network import Params
from jaxfool.train import TrainConfig, accuracy, one_hot, train

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


def _cached(path: pathlib.Path, like: Params, make: Callable[[], Params], meta: dict[str, Any]) -> Params:
    """Restores the parameters at ``path`` or makes and saves them (a checkpoint per defended model)."""
    if checkpoints.exists(path):
        log.info("restored %s", path)
        return checkpoints.restore(path, like)[0]
    params = make()
    checkpoints.save(path, params, meta)
    return params


def train_models(config: Any, data: Mnist) -> tuple[Network, dict[str, Params], dict[str, Any]]:
    """The plain CNN and each enabled defence, trained or restored; returns ``(net, {name: params}, info)``."""
    cache = pathlib.Path(config.workdir) / "models"
    net = mnist_cnn()
    plain, info = zoo.load_or_train(net, data, config.train, cache_dir=cache)
    models, details = {"plain": plain}, {"plain": {"checkpoint": info["checkpoint"]}}
    d = config.defences
    like = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    onehot = one_hot(data.train_labels, net.num_classes)

    def adversarial(name: str, attack: attacks.Attack, fraction: float, ramp: int, config: TrainConfig) -> None:
        tag = f"{name}-eps{d.eps:g}-steps{attack.steps}-ramp{ramp}-from-{pathlib.Path(info['checkpoint']).name}"
        path = cache / zoo.model_key(net, data, config, tag)
        # (radius, epochs) phases, each warm-started from the previous parameters.
        phases = [(d.eps * (i + 1) / (ramp + 1), 1) for i in range(ramp)] + [(d.eps, config.epochs - ramp)]

        def make() -> Params:
            params = plain
            for i, (eps, epochs) in enumerate(phases):
                batch_fn = defences.adversarial_batch_fn(net, attack, attack.params(eps), fraction=fraction)
                phase = dataclasses.replace(config, epochs=epochs, seed=config.seed + i)
                params = train(net, data.train_images, onehot, phase, params=params, batch_fn=batch_fn,
                               desc=f"{name} training at eps {eps:.3g}")[0]
            return params

        meta = {"defence": name, "phases": phases, "train": runs.to_jsonable(config)}
        models[name] = _cached(path, like, make, meta)
        details[name] = {"checkpoint": str(path), "phases": phases}

    if d.fgsm_training:
        adversarial("fgsm_trained", attacks.get_attack("fgsm"), 0.5, 0, d.fgsm_train)
    if d.pgd_training:
        adversarial("pgd_trained", attacks.get_attack("pgd", steps=d.pgd_steps), 1.0, d.ramp_epochs, d.pgd_train)
    if d.distillation:
        path = cache / zoo.model_key(net, data, d.distill_train, f"distilled-T{d.temperature:g}")
        make = lambda: defences.defensive_distillation(
            net, data.train_images, data.train_labels, d.distill_train, temperature=d.temperature)[1]
        models["distilled"] = _cached(path, like, make, {"defence": "distillation", "temperature": d.temperature})
        details["distilled"] = {"checkpoint": str(path)}
    return net, models, details


def run(config: Any) -> dict[str, Any]:
    """Trains or restores the models, sweeps every attack over the epsilons; returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "attack_sweep")
    data = load_mnist(config.data)
    net, models, details = train_models(config, data)
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
        for attack in tqdm(specs, desc=f"attacks on {name}", leave=False):
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
