"""Backwork on MNIST: train (or restore) the CNN, find strongly classified spurious inputs, optionally retrain.

Run:
    python -m experiments.backwork_mnist --config configs/backwork_mnist.py

Writes into ``<workdir>/backwork_mnist/<run>/``: ``grid.png`` (10 labels x 8 generated images with their
probabilities), ``worst_train.png``, ``metrics.json``, ``config.json``, and with a sweep one grid per setting;
with retraining, the retrained model's checkpoint and ``grid_retrained.png``.
"""

from __future__ import annotations

import logging
import pathlib
import resource
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import backwork, checkpoints, cli, plots, runs, zoo
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn, predict_proba
from jaxfool.train import accuracy, one_hot, train

log = logging.getLogger("backwork_mnist")
# The search takes the root key itself, as when the README's figures were measured; it splits it in two, which
# are fold_in(root, 0) and fold_in(root, 1), so the other sections' ids start at 2.
RETRAIN = 2


def run(config: Any) -> dict[str, Any]:
    """Runs the experiment described by ``config`` (see ``configs/backwork_mnist.py``); returns the metrics."""
    cli.validate(config)
    for label in config.backwork.labels:  # before anything is written
        mnist_cnn().check_class(label)
    start, run_dir = time.perf_counter(), runs.start_run(config, "backwork_mnist")
    log.info("run folder: %s", run_dir)

    data = load_mnist(config.data)
    net = mnist_cnn()
    params, model_info = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models",
                                           progress=True)
    root, bw = jax.random.key(config.seed), config.backwork
    refs = backwork.config_references(net, params, data.train_images, data.train_labels, bw)  # shared by every search
    result = backwork.run_backwork(net, params, data.train_images, data.train_labels, bw, config.sweep, key=root,
                                   references=refs, progress=True)

    metrics: dict[str, Any] = {
        "data_source": data.source, "data_files": list(data.files),
        "model_checkpoint": model_info["checkpoint"], "model_trained_now": model_info["trained_now"],
        "test_accuracy": model_info["test_accuracy"],
        "references_per_label": [int((data.train_labels == t).sum()) for t in result.labels],
        "reference_scale": {k: np.asarray(v).tolist() for k, v in refs.scale.items()},  # 1 but under dense_gap_refs
        **result.summary(0, bw.prob_cap_min),
        "nearest_neighbour": backwork.nearest_neighbour_report(
            net, params, result.images[0], result.labels, data.train_images, data.train_labels,
            max_train=config.nn_layers_max_train, layers=config.nn_layers),
    }
    save_grid(result, 0, run_dir / "grid.png", title=f"backwork on {net.name} ({data.source})")
    save_worst_train(net, params, data.train_images, data.train_labels, run_dir / "worst_train.png")
    if len(result.settings) > 1:
        metrics["sweep"] = []
        for s, setting in enumerate(result.settings):
            save_grid(result, s, run_dir / f"grid_setting{s}.png", title=str(setting))
            metrics["sweep"].append({"setting": setting, **result.summary(s, bw.prob_cap_min)})
    if config.retrain.mode != "none":
        metrics["retrain"] = retrain(net, params, data, result, config, run_dir, metrics["test_accuracy"], refs,
                                     key=jax.random.fold_in(root, RETRAIN))
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info(
        "%d/%d generated images reach p >= %.4g (median p = %.6f) in %s updates; test accuracy %.4f; %.0f s, "
        "peak memory %d MB; %s; %s",
        metrics["n_at_least_cap"], len(metrics["confidences"]), bw.prob_cap_min,
        metrics["median_confidence"], metrics["steps"], metrics["test_accuracy"], metrics["seconds"],
        metrics["peak_rss_mb"], data.describe(), run_dir,
    )
    return {**metrics, "run_dir": str(run_dir)}


def save_grid(result: backwork.BackworkResult, setting: int, path: pathlib.Path, *, title: str) -> None:
    probs = result.probs[setting]
    plots.image_grid(
        result.images[setting], path,
        captions=[[plots.probability_caption(p) for p in row] for row in probs],
        row_labels=[str(lab) for lab in result.labels], title=title,
    )


def save_worst_train(net, params, images: np.ndarray, labels: np.ndarray, path: pathlib.Path, n: int = 8) -> None:
    """The ``n`` training images whose correct-class probability is lowest, captioned with it."""
    probs = np.asarray(predict_proba(net, params, jnp.asarray(images)))[np.arange(len(labels)), labels]
    worst = np.argsort(probs)[:n]
    plots.image_grid(
        images[worst][None], path,
        captions=[[f"{labels[i]}: {plots.probability_caption(probs[i])}" for i in worst]],
        title="training digits the net is least sure of",
    )


def retrain(net, params, data, result, config, run_dir: pathlib.Path, accuracy_before: float, refs, *,
            key: jax.Array) -> dict[str, Any]:
    """Adds generated images to the training set (soft labels or an 11th class), retrains from scratch and
    measures clean accuracy and what a fresh backwork search reaches on the retrained model."""
    mode, bw = config.retrain.mode, config.backwork
    generated = [result.images[0]]
    for r in range(1, config.retrain.rounds):  # round r's key folds r in; the fresh search below folds in 0
        extra = backwork.run_backwork(net, params, data.train_images, data.train_labels, bw, references=refs,
                                      key=jax.random.fold_in(key, r), desc=f"backwork round {r + 1}", progress=True)
        generated.append(extra.images[0])
    gen = np.concatenate([g.reshape(-1, *g.shape[2:]) for g in generated])
    gen = np.repeat(gen, config.retrain.repeat, axis=0)
    if mode == "soft":
        new_net = mnist_cnn()
        gen_targets = np.full((len(gen), 10), 0.1, np.float32)
    else:
        new_net = mnist_cnn(num_classes=11)
        gen_targets = one_hot(np.full(len(gen), 10), 11)
    images = np.concatenate([data.train_images, gen])
    targets = np.concatenate([one_hot(data.train_labels, new_net.num_classes), gen_targets])
    new_params, _ = train(new_net, images, targets, config.train, desc=f"retrain ({mode})", progress=True)
    checkpoints.save(run_dir / "retrained_checkpoint", new_params, {"mode": mode, "added_images": len(gen)})
    acc_after = accuracy(new_net, new_params, data.test_images, data.test_labels)

    # How the retrained model sees the images it was trained against, and what a fresh search now reaches.
    old = result.images[0].reshape(-1, *result.images.shape[3:])
    old_probs = np.asarray(predict_proba(new_net, new_params, jnp.asarray(old)))
    old_labels = np.repeat(result.labels, result.images.shape[2])
    fresh = backwork.run_backwork(new_net, new_params, data.train_images, data.train_labels, bw,
                                  key=jax.random.fold_in(key, 0), desc="backwork on retrained", progress=True)
    save_grid(fresh, 0, run_dir / "grid_retrained.png", title=f"fresh backwork after retraining ({mode})")
    return {
        "mode": mode,
        "added_images": len(gen),
        "test_accuracy_before": accuracy_before,
        "test_accuracy_after": acc_after,
        "old_generated_confidence_after": float(np.median(old_probs[np.arange(len(old)), old_labels])),
        "old_generated_fooling_class_prob": (float(np.median(old_probs[:, 10])) if mode == "extra_class" else None),
        "fresh_backwork": fresh.summary(0, bw.prob_cap_min),
    }


if __name__ == "__main__":
    cli.main(run)
