"""How the MNIST CNN sees the world: filter grids, class maximisation, a digit pushed to another class, fooling images.

Run:
    python -m experiments.see_the_world --config configs/see_the_world.py
VGG16's filters, sea snake and photo pushed to triceratops: ``experiments/see_the_world_vgg16.py``.

Writes into ``<workdir>/see_the_world/<run>/``: ``filters_<layer>.png`` (every filter of the layer, strongest
first, deprocessed as the study does), ``filters_<layer>_curves.png``, ``classes.png`` and
``classes_curves.png`` (1 - p per step, log scale), ``target.png`` and ``target_curve.png``, ``fooling.png``,
``metrics.json`` and ``config.json``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, plots, runs, visualize, zoo
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn

log = logging.getLogger("see_the_world")
FILTERS, SPEED, CLASSES, FOOLING = 0, 1, 2, 3  # section ids folded into the root key


def run(config: Any) -> dict[str, Any]:
    """Runs the experiment described by ``config`` (see ``configs/see_the_world.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    root = jax.random.key(config.seed)
    run_dir = runs.start_run(config, "see_the_world")
    log.info("run folder: %s", run_dir)
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, info = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models")
    noise = visualize.Noise(config.noise_centre, config.noise_spread)

    metrics: dict[str, Any] = {"data_source": data.source, "model_checkpoint": info["checkpoint"],
                               "test_accuracy": info["test_accuracy"], "filters": {}}
    for i, layer in enumerate(config.filter_layers):
        width = visualize.layer_width(net, params, layer)
        r = visualize.visualize_filters(net, params, layer, range(width), config.filters, noise,
                                        key=jax.random.fold_in(jax.random.fold_in(root, FILTERS), i))
        metrics["filters"][layer] = visualize.filter_report(r.values)
        plots.filter_grid(visualize.deprocessed(r.image), np.asarray(r.values), run_dir / f"filters_{layer}.png",
                          title=f"{net.name} {layer}")

    if config.speed_filters:
        metrics["speed"] = batch_vs_one_by_one(net, params, config.filter_layers[0], config.speed_filters,
                                               config.filters, noise, key=jax.random.fold_in(root, SPEED))

    labels = list(range(net.num_classes))
    for name, ascent, section, title in (("classes", config.classes, CLASSES, "class maximisation from noise"),
                                          ("fooling", config.fooling, FOOLING, "fooling images (decay + blur)")):
        r = visualize.maximize_classes(net, params, labels, ascent, noise, key=jax.random.fold_in(root, section))
        metrics[name] = visualize.class_report(r.values, config.thresholds)
        plots.class_grid(r.image, labels, np.asarray(r.values), run_dir / f"{name}.png",
                         run_dir / f"{name}_curves.png", title=f"{title}, {net.name}")
    metrics["target"] = mnist_target(net, params, data, config.target, run_dir, config.thresholds)

    metrics["seconds"] = round(time.perf_counter() - start, 1)
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("classes: min final p %.6f, steps to 0.9999 %s; %.0f s; %s", metrics["classes"]["min_final"],
             metrics["classes"]["crossing_steps"], metrics["seconds"], run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def mnist_target(net, params, data, cfg, run_dir: pathlib.Path, thresholds) -> dict[str, Any]:
    """The first test digit of ``cfg.source_class`` pushed to ``cfg.target_class``: ``target.png`` and
    ``target_curve.png``."""
    src = int(np.flatnonzero(data.test_labels == cfg.source_class)[0])
    report, shots, probs = visualize.push_to_target(net, params, data.test_images[src], cfg.target_class,
                                                    cfg.ascent, cfg.snapshots, thresholds)
    plots.snapshot_sequence(shots, report["snapshot_steps"], report["target_prob_at_snapshots"], report["curve"],
                            run_dir / "target.png", label=str(cfg.target_class),
                            title=f"test digit {cfg.source_class} pushed to {cfg.target_class} "
                                  f"(steps of {cfg.ascent.step_size})")
    return {"test_index": src, "source_class": cfg.source_class, **report,
            "source_prob_at_snapshots": probs[:, cfg.source_class].tolist()}


def batch_vs_one_by_one(net, params, layer, n, ascent, noise, *, key) -> dict[str, Any]:
    """Times ``n`` filters as one vmapped program against ``n`` calls of one filter (compiled once each)."""
    idx = list(range(min(n, visualize.layer_width(net, params, layer))))
    starts = visualize.starts_for(net, len(idx), ascent, noise, key=key)
    one = lambda i, j: visualize.visualize_filters(net, params, layer, [i], ascent, key=key, starts=starts[j:j + 1])
    batch = lambda: visualize.visualize_filters(net, params, layer, idx, ascent, key=key, starts=starts)
    jax.block_until_ready((batch(), one(idx[0], 0)))  # compiles both programs
    t0 = time.perf_counter()
    b = jax.block_until_ready(batch())
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = jax.block_until_ready([one(i, j) for j, i in enumerate(idx)])
    t_single = time.perf_counter() - t0
    diff = max(float(jnp.abs(o.image[0] - b.image[j]).max()) for j, o in enumerate(s))
    return {"layer": layer, "filters": len(idx), "batch_seconds": t_batch, "one_by_one_seconds": t_single,
            "speedup": t_single / t_batch, "max_abs_image_difference": diff}


if __name__ == "__main__":
    cli.main(run)
