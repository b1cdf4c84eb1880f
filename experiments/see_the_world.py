"""How a CNN sees the world: filter grids, class maximisation, a digit pushed to another class, fooling images.

Run:
    python -m experiments.see_the_world --config configs/see_the_world.py

Writes into ``<workdir>/see_the_world/<run>/``: ``filters_<layer>.png`` (every filter of the layer, strongest
first, deprocessed as the study does), ``filters_<layer>_curves.png``, ``classes.png`` and
``classes_curves.png`` (1 - p per step, log scale), ``target.png`` and ``target_curve.png``, ``fooling.png``,
``metrics.json`` and ``config.json``; with ``vgg.enabled``, ``vgg_filters.png`` and ``vgg_class.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, plots, runs, visualize, zoo
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn, predict_proba, vgg16

log = logging.getLogger("see_the_world")


def run(config: Any) -> dict[str, Any]:
    """Runs the experiment described by ``config`` (see ``configs/see_the_world.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "see_the_world")
    log.info("run folder: %s", run_dir)
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, info = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models")
    noise = visualize.Noise(config.noise_centre, config.noise_spread)
    keys = iter(jax.random.split(jax.random.key(config.seed), 16))

    metrics: dict[str, Any] = {"data_source": data.source, "model_checkpoint": info["checkpoint"],
                               "test_accuracy": info["test_accuracy"], "filters": {}}
    for layer in config.filter_layers:
        width = visualize.layer_width(net, params, layer)
        r = visualize.visualize_filters(net, params, layer, range(width), config.filters, noise, key=next(keys))
        metrics["filters"][layer] = filter_report(r.values)
        save_filters(r, run_dir, f"{net.name} {layer}", f"filters_{layer}")

    if config.speed_filters:
        metrics["speed"] = batch_vs_one_by_one(net, params, config.filter_layers[0], config.speed_filters,
                                               config.filters, noise, key=next(keys))

    labels = list(range(net.num_classes))
    r = visualize.maximize_classes(net, params, labels, config.classes, noise, key=next(keys))
    metrics["classes"] = class_report(r.values, config.thresholds)
    save_classes(r, labels, metrics["classes"], run_dir / "classes.png", run_dir / "classes_curves.png",
                 title=f"class maximisation from noise, {net.name}")

    metrics["target"] = push_to_target(net, params, data, config.target, run_dir, config.thresholds)

    r = visualize.maximize_classes(net, params, labels, config.fooling, noise, key=next(keys))
    metrics["fooling"] = class_report(r.values, config.thresholds)
    save_classes(r, labels, metrics["fooling"], run_dir / "fooling.png", run_dir / "fooling_curves.png",
                 title="fooling images (decay + blur), " + net.name)

    if config.vgg.enabled:
        metrics["vgg16"] = vgg_section(config.vgg, run_dir, key=next(keys))
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("classes: min final p %.6f, steps to 0.9999 %s; %.0f s; %s", metrics["classes"]["min_final"],
             metrics["classes"]["crossing_steps"], metrics["seconds"], run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def filter_report(values: jax.Array) -> dict[str, Any]:
    """Monotonicity of the mean activations ``values [filters, steps + 1]``."""
    v = np.asarray(values)
    d = np.diff(v, axis=1)
    active = v[:, 0] > 0
    return {
        "filters": len(v),
        "non_decreasing": int((d >= 0).all(axis=1).sum()),
        "strictly_increasing": int((d > 0).all(axis=1).sum()),
        "silent_at_start": int((~active).sum()),
        "strictly_increasing_of_active": int((d[active] > 0).all(axis=1).sum()),
        "start_mean_activation": v[:, 0].tolist(),
        "final_mean_activation": v[:, -1].tolist(),
    }


def class_report(values: jax.Array, thresholds: tuple[float, ...]) -> dict[str, Any]:
    """Probabilities ``values [classes, steps + 1]``: finals, first crossing of each threshold, the curves."""
    cross = np.asarray(jax.vmap(lambda v: visualize.crossing_steps(v, thresholds))(values))
    v = np.asarray(values)
    return {"thresholds": list(thresholds), "final": v[:, -1].tolist(), "min_final": float(v[:, -1].min()),
            "crossing_steps": cross.tolist(), "curves": v.tolist()}


def save_filters(r: visualize.AscentResult, run_dir: pathlib.Path, title: str, stem: str) -> None:
    final = np.asarray(r.values[:, -1])
    order = np.argsort(-final, kind="stable")
    cols = 8
    rows = -(-len(order) // cols)
    shown = np.asarray(jax.vmap(visualize.deprocess_image)(r.image)).astype(np.float32) / 255.0
    cells = np.ones((rows * cols, *shown.shape[1:]), np.float32)
    cells[: len(order)] = shown[order]
    caps = [f"#{i} {final[i]:.2f}" for i in order] + [""] * (rows * cols - len(order))
    plots.image_grid(cells.reshape(rows, cols, *shown.shape[1:]), run_dir / f"{stem}.png",
                     captions=[caps[i * cols:(i + 1) * cols] for i in range(rows)],
                     title=f"{title}: filters by final mean activation")
    plots.curves({f"#{i}": np.asarray(r.values[i]) for i in order[:8]}, run_dir / f"{stem}_curves.png",
                 xlabel="step", ylabel="mean activation", title=f"{title}: the 8 strongest filters",
                 x=np.arange(r.values.shape[1]))


def save_classes(r, labels, report, image_path, curve_path, *, title: str) -> None:
    caps = [[f"{lab}: {plots.probability_caption(p)}" for lab, p in zip(labels, report["final"], strict=True)]]
    plots.image_grid(np.asarray(r.image)[None], image_path, captions=caps, title=title)
    plots.curves({str(lab): np.maximum(1.0 - np.asarray(c), 1e-8) for lab, c in zip(labels, report["curves"],
                                                                                     strict=True)},
                 curve_path, xlabel="step", ylabel="1 - p(class)", title=title, logy=True,
                 x=np.arange(len(report["curves"][0])))


def push_to_target(net, params, data, cfg, run_dir: pathlib.Path, thresholds) -> dict[str, Any]:
    """The first test digit of ``cfg.source_class`` pushed to ``cfg.target_class`` in snapshot segments."""
    src = int(np.flatnonzero(data.test_labels == cfg.source_class)[0])
    x = jnp.asarray(data.test_images[src : src + 1])
    target = net.check_class(cfg.target_class)
    # Segments of one deterministic ascent: no random transformation, so stopping and restarting changes nothing.
    segments = max(1, cfg.snapshots - 1)
    per = max(1, cfg.ascent.steps // segments)
    ascent = dataclasses.replace(cfg.ascent, steps=per)
    images, curve = [np.asarray(x[0])], []
    key = jax.random.key(0)
    for _ in range(segments):
        r = visualize.maximize_classes(net, params, [target], ascent, key=key, starts=x)
        x = r.image
        curve.extend(np.asarray(r.values[0, :-1]).tolist())
        images.append(np.asarray(x[0]))
    curve.append(float(r.values[0, -1]))
    probs = np.asarray(predict_proba(net, params, jnp.asarray(np.stack(images))))
    dominate = int(np.argmax(np.asarray(curve) > 0.5)) if max(curve) > 0.5 else -1
    plots.image_grid(np.stack(images)[None], run_dir / "target.png",
                     captions=[[f"{i * per}: {p[target]:.4f}" for i, p in enumerate(probs)]],
                     title=f"test digit {cfg.source_class} pushed to {target}: step: p({target}) "
                           f"(steps of {cfg.ascent.step_size})")
    plots.curves({f"p({target})": curve},
                 run_dir / "target_curve.png", xlabel="step", ylabel="probability", x=np.arange(len(curve)))
    return {"test_index": src, "source_class": cfg.source_class, "target_class": target, "steps": per * segments,
            "curve": curve, "final": curve[-1], "first_step_above_half": dominate,
            "crossing_steps": np.asarray(visualize.crossing_steps(jnp.asarray(curve), thresholds)).tolist(),
            "source_prob_at_snapshots": probs[:, cfg.source_class].tolist()}


def batch_vs_one_by_one(net, params, layer, n, ascent, noise, *, key) -> dict[str, Any]:
    """Times ``n`` filters as one vmapped program against ``n`` calls of one filter (compiled once each)."""
    idx = list(range(min(n, visualize.layer_width(net, params, layer))))
    starts = visualize.starts_for(net, len(idx), ascent, noise, key=key)

    def batch():
        return visualize.visualize_filters(net, params, layer, idx, ascent, key=key, starts=starts)

    def singles():
        return [visualize.visualize_filters(net, params, layer, [i], ascent, key=key, starts=starts[j:j + 1])
                for j, i in enumerate(idx)]

    jax.block_until_ready(batch())
    jax.block_until_ready(visualize.visualize_filters(net, params, layer, idx[:1], ascent, key=key,
                                                      starts=starts[:1]))  # compiles the one-filter program
    t0 = time.perf_counter()
    b = jax.block_until_ready(batch())
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = jax.block_until_ready(singles())
    t_single = time.perf_counter() - t0
    diff = max(float(jnp.abs(one.image[0] - b.image[j]).max()) for j, one in enumerate(s))
    return {"layer": layer, "filters": len(idx), "batch_seconds": t_batch, "one_by_one_seconds": t_single,
            "speedup": t_single / t_batch, "max_abs_image_difference": diff}


def vgg_section(cfg, run_dir: pathlib.Path, *, key) -> dict[str, Any]:
    """VGG16 with RANDOM weights (pictures mean nothing): the study's filter and class recipes run on it."""
    k_f, k_p, k_c, k_p2 = jax.random.split(key, 4)
    out: dict[str, Any] = {"weights": "random (meaningless)", "filters": {}}
    net = vgg16(include_top=False, preprocess=True)
    shape = (cfg.size, cfg.size, 3)
    params = net.init(key=k_p, input_shape=shape)
    ascent = cfg.filters
    images = []
    for layer, k in zip(cfg.layers, jax.random.split(k_f, len(cfg.layers)), strict=True):
        width = visualize.layer_width(net, params, layer, shape)
        k_choice, k_run = jax.random.split(k)
        idx = np.asarray(jax.random.choice(k_choice, width, (cfg.filters_per_layer,), replace=False))
        r = visualize.visualize_filters(net, params, layer, idx.tolist(), ascent, visualize.VGG_NOISE, key=k_run,
                                        image_shape=shape)
        out["filters"][layer] = {"indices": idx.tolist(), **filter_report(r.values)}
        images.append(np.asarray(jax.vmap(visualize.deprocess_image)(r.image)).astype(np.float32) / 255.0)
    plots.image_grid(np.stack(images), run_dir / "vgg_filters.png", row_labels=list(cfg.layers),
                     title="VGG16, RANDOM weights: filter visualisation (meaningless)")
    if cfg.class_index is None:
        return out
    top = vgg16(include_top=True, preprocess=True)
    top_params = top.init(key=k_p2)
    r = visualize.maximize_classes(top, top_params, [cfg.class_index], cfg.classes,
                                   visualize.VGG_NOISE, key=k_c)
    plots.image_grid(np.asarray(jax.vmap(visualize.deprocess_image)(r.image))[None].astype(np.float32) / 255.0,
                     run_dir / "vgg_class.png", title=f"VGG16, RANDOM weights: class {cfg.class_index} "
                           f"({top.class_names[cfg.class_index]}), p={float(r.values[0, -1]):.4f}")
    out["class"] = {"index": cfg.class_index, "name": top.class_names[cfg.class_index],
                    "curve": np.asarray(r.values[0]).tolist()}
    return out


if __name__ == "__main__":
    cli.main(run)
