"""Can the explanations of the MNIST CNN be trusted? Eight heatmap methods scored on faithfulness (deletion and
insertion AUC, Petsiuk et al. 2018) and on Adebayo et al.'s sanity checks (cascading randomisation of the weights,
and a twin trained on shuffled labels). ``configs/explanation_quality.py`` states the command.

Writes ``metrics.json``, ``faithfulness.png`` (AUCs per method, random map as chance), ``sanity.png`` (rank
correlation of each method's maps with the trained model's as the layers are randomised, top first) and
``maps.png`` (the first digits under every method) into ``<workdir>/explanation_quality/<run>/``.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, plots, runs, zoo
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.explain import evaluation, render, sanity
from jaxfool.models import mnist_cnn, predict_proba

log = logging.getLogger("explanation_quality")


def run(config: Any) -> dict[str, Any]:
    """Scores the methods of ``config`` (see ``configs/explanation_quality.py``); returns the metrics."""
    cli.validate(config)
    run_dir = runs.start_run(config, "explanation_quality")
    data = load_mnist(config.data)
    net, cache = mnist_cnn(), pathlib.Path(config.workdir) / "models"
    params, info = zoo.load_or_train(net, data, config.train, cache_dir=cache)
    x = jnp.asarray(data.test_images[stratified_indices(data.test_labels, config.num_images, interleave=True)])
    labels = jnp.asarray(predict_proba(net, params, x).argmax(-1))
    root = jax.random.key(config.seed)
    layer = evaluation.default_layer(net, params, x[0])
    batched = {name: evaluation.batch_heatmaps(evaluation.heatmap_method(net, name, layer=layer),
                                               key=jax.random.fold_in(root, i))
               for i, name in enumerate(sorted(set(config.methods) | set(config.sanity_methods)))}
    metrics: dict[str, Any] = {"data_source": data.source, "test_accuracy": info["test_accuracy"],
                               "num_images": len(x), "cam_layer": layer}

    faith = evaluation.faithfulness_scores(net, params, x, labels, {m: batched[m] for m in config.methods},
                                           steps=config.steps, blur_sigma=config.blur_sigma)
    metrics["faithfulness"] = faith
    chance = faith.get("random")
    for name, f in faith.items():
        beats = "" if chance is None else (f"; beats random on deletion {np.mean(f['deletion'] < chance['deletion']):.0%}"
                                           f", insertion {np.mean(f['insertion'] > chance['insertion']):.0%} of digits")
        log.info("%-22s deletion AUC %.3f  insertion AUC %.3f%s", name, f["deletion_auc"], f["insertion_auc"], beats)

    curves = evaluation.sanity_curves(net, params, x, labels, {m: batched[m] for m in config.sanity_methods},
                                      key=jax.random.fold_in(root, 100))
    metrics["cascading_randomization"] = curves
    for name, c in curves.items():
        log.info("%-16s rank correlation (abs) after randomising %s: %s", name, ", ".join(c["layers"]),
                 ", ".join(f"{v:.2f}" for v in c["spearman_abs"]))
    if config.data_randomization:
        metrics["data_randomization"] = _data_randomization(net, params, data, config, cache, batched, x, labels)
    _figures(metrics, config, run_dir, x, labels, batched, params)
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def _data_randomization(net, params, data, config, cache, batched, x, labels) -> dict[str, dict[str, float]]:
    """Adebayo's data test: the same CNN trained on permuted labels, its maps against the real model's."""
    perm = np.random.default_rng(config.seed).permutation(len(data.train_labels))
    shuffled, _ = zoo.load_or_train(net, data._replace(train_labels=data.train_labels[perm]), config.train,
                                    cache_dir=cache, tag="shuffled_labels")
    out = {}
    for name in config.sanity_methods:
        ours, theirs = np.asarray(batched[name](params, x, labels)), np.asarray(batched[name](shuffled, x, labels))
        scores = [sanity.similarity(a, b) for a, b in zip(ours, theirs, strict=True)]
        out[name] = {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}
        log.info("%-16s shuffled-label model: rank correlation (abs) %.2f", name, out[name]["spearman_abs"])
    return out


def _figures(metrics, config, run_dir, x, labels, batched, params) -> None:
    faith = metrics["faithfulness"]
    plots.curves({"deletion AUC (lower is better)": [f["deletion_auc"] for f in faith.values()],
                  "insertion AUC (higher is better)": [f["insertion_auc"] for f in faith.values()]},
                 run_dir / "faithfulness.png", x=list(range(len(faith))), ylabel="AUC of p(class)",
                 xlabel=" | ".join(f"{i}: {m}" for i, m in enumerate(faith)),
                 title=f"Faithfulness on {len(x)} MNIST test digits")
    curves = metrics["cascading_randomization"]
    stages = ["original", *next(iter(curves.values()))["layers"]]
    plots.curves({m: [1.0, *c["spearman_abs"]] for m, c in curves.items()}, run_dir / "sanity.png",
                 x=list(range(len(stages))), xlabel="randomised down to: " + " > ".join(stages),
                 ylabel="rank correlation |map|", title="Cascading randomisation (Adebayo et al. 2018)")
    panels = []
    for i in range(min(6, len(x))):
        panels.append((f"digit, class {int(labels[i])}", render.to_rgb(np.asarray(x[i]), scale=4)))
        panels += [(m, render.overlay(np.asarray(x[i]), np.asarray(batched[m](params, x[i : i + 1], labels[i : i + 1])[0]),
                                      scale=4)) for m in config.methods]
    render.save_panels(panels, run_dir / "maps.png", columns=1 + len(config.methods), title="heatmaps by method")


if __name__ == "__main__":
    cli.main(run)
