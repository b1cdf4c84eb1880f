"""Adversarial examples crafted on one MNIST architecture, evaluated on all of them (Xie et al. 2019, Table 1).

``python -m experiments.transfer_table --config configs/transfer_table.py``. Trains (or restores) the backwork
CNN, an MLP and a residual GroupNorm CNN, crafts FGSM, I-FGSM, MI-FGSM, DI2-FGSM and M-DI2-FGSM examples on each
and reports the success rate (misclassification rate) on every model: ``transfer_table.md``, ``metrics.json`` and
``config.json`` in ``<workdir>/transfer_table/<run>/``. Diagonal (white-box) cells are marked ``*``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxfool import attacks, cli, runs, zoo
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.models import mnist_cnn
from jaxfool.models.mnist_zoo import mnist_mlp, mnist_resnet

log = logging.getLogger("transfer_table")
ARCHITECTURES = {"mnist_cnn": mnist_cnn, "mnist_mlp": mnist_mlp, "mnist_resnet": mnist_resnet}
_TITLES = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "mifgsm": "MI-FGSM", "di2fgsm": "DI2-FGSM", "mdi2fgsm": "M-DI2-FGSM"}


def markdown(success: dict[str, dict[str, dict[str, float]]], models: list[str], clean_error: dict[str, float]) -> str:
    """Rows ``source x attack``, columns target models, success rates in percent, white-box cells starred."""
    lines = ["| Model | Attack | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for source in models:
        for i, (attack, row) in enumerate(success[source].items()):
            cells = [f"{100 * row[t]:.1f}{'*' if t == source else ''}" for t in models]
            lines.append(f"| {source if i == 0 else ''} | {_TITLES.get(attack, attack)} | " + " | ".join(cells) + " |")
    lines.append("| clean | (no attack) | " + " | ".join(f"{100 * clean_error[t]:.1f}" for t in models) + " |")
    return "\n".join(lines) + "\n"


def run(config: Any) -> dict[str, Any]:
    """Trains or restores the models, crafts on each, evaluates on all; returns the metrics."""
    cli.validate(config)
    t = config.transfer
    unknown = [m for m in t.models if m not in ARCHITECTURES]
    if unknown:
        raise cli.ConfigError(f"unknown transfer.models {unknown}; valid: {', '.join(ARCHITECTURES)}")
    start = time.perf_counter()
    run_dir = runs.start_run(config, "transfer_table")
    data = load_mnist(config.data)
    cache = pathlib.Path(config.workdir) / "models"
    nets, models, info = {}, {}, {}
    for name in t.models:
        nets[name] = ARCHITECTURES[name]()
        params, meta = zoo.load_or_train(nets[name], data, config.train, cache_dir=cache)
        models[name] = attacks.network_model(nets[name], params)
        info[name] = {"checkpoint": meta["checkpoint"], "test_accuracy": meta["test_accuracy"]}
    keep = stratified_indices(data.test_labels, t.n_test)
    x, y = data.test_images[keep], data.test_labels[keep]
    error = lambda model, images: float(np.mean(attacks.predict_labels(model, images, batch_size=t.batch_size) != y))
    clean_error = {name: error(model, x) for name, model in models.items()}
    key = jax.random.key(config.seed)  # the one random section: crafting
    success: dict[str, dict[str, dict[str, float]]] = {}
    for source in t.models:
        success[source] = {}
        bounds = nets[source].bounds
        for name in tqdm(t.attacks, desc=f"craft on {source}", leave=False):
            base = attacks.get_attack(name)
            attack = attacks.get_attack(name, steps=t.steps) if base.steps > 1 else base
            params = attack.params(t.eps, decay=t.decay, diversity_prob=t.diversity_prob)
            adv = np.concatenate([
                np.asarray(attacks.perturb(attack, models[source], x[i : i + t.batch_size], y[i : i + t.batch_size],
                                           params, key=jax.random.fold_in(key, i), bounds=bounds))
                for i in range(0, len(x), t.batch_size)
            ])
            success[source][name] = {target: error(models[target], adv) for target in t.models}
            log.info("%s on %s: %s", name, source, {k: round(v, 3) for k, v in success[source][name].items()})
    table = markdown(success, list(t.models), clean_error)
    (run_dir / "transfer_table.md").write_text(table)
    transfer_mean = {
        name: float(np.mean([success[s][name][d] for s in t.models for d in t.models if d != s]))
        for name in t.attacks
    } if len(t.models) > 1 else {}
    metrics = {
        "data_source": data.source,
        "n_attacked": len(x),
        "eps": t.eps,
        "models": info,
        "clean_error": clean_error,
        "success": success,
        "white_box": {name: {s: success[s][name][s] for s in t.models} for name in t.attacks},
        "mean_black_box_transfer": transfer_mean,
        "seconds": round(time.perf_counter() - start, 1),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("\n%s\nmean black-box transfer: %s; run folder %s", table, transfer_mean, run_dir)
    return {**metrics, "table": table, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
