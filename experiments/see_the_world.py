"""How a CNN sees the world: filter grids, class maximisation, a digit pushed to another class, fooling images.

Run:
    python -m experiments.see_the_world --config configs/see_the_world.py

Writes into ``<workdir>/see_the_world/<run>/``: ``filters_<layer>.png`` (every filter of the layer, strongest
first, deprocessed as the study does), ``filters_<layer>_curves.png``, ``classes.png`` and
``classes_curves.png`` (1 - p per step, log scale), ``target.png`` and ``target_curve.png``, ``fooling.png``,
``metrics.json`` and ``config.json``; with ``vgg.enabled``, ``vgg_filters.png``, ``vgg_class.png``,
``vgg_target.png`` (a photo pushed to triceratops, snapshots with p(target)) and ``vgg_target_curve.png``,
every title naming the VGG16 weights used (MEANINGLESS with random weights).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, images, plots, runs, visualize, zoo
from jaxfool.data import load_mnist
from jaxfool.models import Network, mnist_cnn, predict_proba, vgg16
from jaxfool.models.network import Params
from jaxfool.models.vgg16 import CONV_LAYERS
from jaxfool.weights import load_vgg16, resolve_weights

log = logging.getLogger("see_the_world")


def run(config: Any) -> dict[str, Any]:
    """Runs the experiment described by ``config`` (see ``configs/see_the_world.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    root = jax.random.key(config.seed)
    # Before the run folder and the MNIST work: missing weights or a bad photo fail at once.
    vgg = load_vgg(config.vgg, key=jax.random.fold_in(root, 1)) if config.vgg.enabled else None
    run_dir = runs.start_run(config, "see_the_world")
    log.info("run folder: %s", run_dir)
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, info = zoo.load_or_train(net, data, config.train,
                                     cache_dir=pathlib.Path(config.workdir) / "models", progress=True)
    noise = visualize.Noise(config.noise_centre, config.noise_spread)
    keys = iter(jax.random.split(root, 16))

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

    metrics["target"] = mnist_target(net, params, data, config.target, run_dir, config.thresholds)

    r = visualize.maximize_classes(net, params, labels, config.fooling, noise, key=next(keys))
    metrics["fooling"] = class_report(r.values, config.thresholds)
    save_classes(r, labels, metrics["fooling"], run_dir / "fooling.png", run_dir / "fooling_curves.png",
                 title="fooling images (decay + blur), " + net.name)

    if vgg is not None:
        metrics["vgg16"] = vgg_section(config.vgg, vgg, run_dir, config.thresholds, key=next(keys))
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


def push_to_target(net: Network, params: Params, start: jax.Array, target: int, ascent: visualize.Ascent,
                   snapshots: int, thresholds) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Pushes one real image ``start [H, W, C]`` up p(``target``), taking ``snapshots`` pictures on the way.

    One deterministic ascent, run as ``snapshots - 1`` stretches that restart from the last image: without
    random transformations or periodic blur, stopping and restarting changes nothing.

    Returns:
        ``(report, images [snapshots, H, W, C], probs [snapshots, classes])``: the report has the curve
        ``[steps + 1]`` of p(target), its final value, the first step above 0.5 and at each threshold (-1:
        never), and the top-1 class before and after.
    """
    target = net.check_class(target)
    if ascent.random or ascent.blur_every:
        raise ValueError("push_to_target needs a deterministic ascent: turn off jitter/scale/rotate and blur_every")
    marks = np.unique(np.linspace(0, ascent.steps, snapshots).round().astype(int))
    x, shots, curve = jnp.asarray(start)[None], [np.asarray(start)], []
    key = jax.random.key(0)  # unused by a deterministic ascent, but maximize_classes takes one
    for n in np.diff(marks):
        r = visualize.maximize_classes(net, params, [target], dataclasses.replace(ascent, steps=int(n)), key=key,
                                       starts=x)
        x = r.image
        curve.extend(np.asarray(r.values[0, :-1]).tolist())
        shots.append(np.asarray(x[0]))
    curve.append(float(r.values[0, -1]))
    shots = np.stack(shots)
    probs = np.asarray(predict_proba(net, params, jnp.asarray(shots), batch_size=8))
    c = np.asarray(curve)
    report = {
        "target_class": target, "target_name": _class_name(net, target), "steps": int(marks[-1]),
        "step_size": ascent.step_size, "curve": curve, "final": curve[-1],
        "first_step_above_half": int(np.argmax(c > 0.5)) if (c > 0.5).any() else -1,
        "thresholds": list(thresholds),
        "crossing_steps": np.asarray(visualize.crossing_steps(jnp.asarray(c), thresholds)).tolist(),
        "snapshot_steps": marks.tolist(), "target_prob_at_snapshots": probs[:, target].tolist(),
        "top1_before": _top1(net, probs[0]), "top1_after": _top1(net, probs[-1]),
        "pixel_min": float(shots.min()), "pixel_max": float(shots.max()),
    }
    return report, shots, probs


def _class_name(net: Network, label: int) -> str:
    return net.class_names[label] if net.class_names else str(label)


def _top1(net: Network, probs: np.ndarray) -> dict[str, Any]:
    label = int(np.argmax(probs))
    return {"class": label, "name": _class_name(net, label), "probability": float(probs[label])}


def save_target(shown: np.ndarray, report: dict[str, Any], run_dir: pathlib.Path, stem: str, title: str, *,
                cell_inches: float = 1.1) -> None:
    """``<stem>.png``: the snapshots ``shown [snapshots, H, W, C]`` (in [0, 1]) captioned ``step: p(target)``;
    ``<stem>_curve.png``: p(target) at every step."""
    # Four significant digits below 0.99: the study's start (0.00016) must not read as 0.00000.
    caps = [[f"{s}: {plots.probability_caption(p) if p >= 0.99 else f'p={p:.4g}'}"
             for s, p in zip(report["snapshot_steps"], report["target_prob_at_snapshots"], strict=True)]]
    plots.image_grid(shown[None], run_dir / f"{stem}.png", captions=caps, cell_inches=cell_inches,
                     title=f"{title}; step: p({report['target_class']})")
    plots.curves({f"p({report['target_class']})": report["curve"]}, run_dir / f"{stem}_curve.png", xlabel="step",
                 ylabel="probability", title=title, x=np.arange(len(report["curve"])))


def mnist_target(net, params, data, cfg, run_dir: pathlib.Path, thresholds) -> dict[str, Any]:
    """The first test digit of ``cfg.source_class`` pushed to ``cfg.target_class``: ``target.png`` and
    ``target_curve.png``."""
    src = int(np.flatnonzero(data.test_labels == cfg.source_class)[0])
    report, shots, probs = push_to_target(net, params, data.test_images[src], cfg.target_class, cfg.ascent,
                                          cfg.snapshots, thresholds)
    save_target(shots, report, run_dir, "target",
                f"test digit {cfg.source_class} pushed to {cfg.target_class} (steps of {cfg.ascent.step_size})")
    return {"test_index": src, "source_class": cfg.source_class, **report,
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


class Vgg(NamedTuple):
    """VGG16 as the experiment uses it: the network (with its classifier when a part needs it), its
    parameters, the weights used (``"imagenet"``, ``"random"`` or a path), their label for titles, and the
    photo of the image-to-target sequence (``[224, 224, 3]`` in 0..255; ``None`` when that part is off)."""

    net: Network
    params: Params
    weights: str
    label: str
    photo: np.ndarray | None
    photo_path: str


def load_vgg(cfg, *, key: jax.Array) -> Vgg:
    """Loads VGG16 as ``cfg.weights`` says (``"auto"`` falls back to random weights with a warning) and the photo."""
    photo, path = None, ""
    if cfg.target.enabled:
        path = cfg.target.image if pathlib.Path(cfg.target.image).is_file() else images.sample_photo(cfg.target.image)
        photo = images.load_thumbnail_crop(path, (224, 224))
    top = cfg.class_index is not None or cfg.target.enabled
    weights = str(resolve_weights(cfg.weights, include_top=top))
    net, params = load_vgg16(weights, include_top=top, key=key)
    if weights == "random":
        label = "RANDOM weights (MEANINGLESS)"
        log.warning("VGG16 with RANDOM weights: its pictures and probabilities are MEANINGLESS; the pipeline is real")
    elif weights == "imagenet":
        label = "official ImageNet weights"
    else:
        label = f"weights {pathlib.Path(weights).name}"
    return Vgg(net, params, weights, label, photo, str(path))


def vgg_section(cfg, vgg: Vgg, run_dir: pathlib.Path, thresholds, *, key) -> dict[str, Any]:
    """The study's filter, class and image-to-target recipes on VGG16; every title names the weights."""
    k_f, k_c = jax.random.split(key)
    out: dict[str, Any] = {"weights": vgg.weights, "weights_requested": cfg.weights, "weights_label": vgg.label,
                           "meaningless": vgg.weights == "random", "filters": {}}
    net = vgg16(include_top=False, preprocess=vgg.net.module.preprocessing)
    params = {name: vgg.params[name] for name in CONV_LAYERS}
    shape = (cfg.size, cfg.size, 3)
    shown = []
    for layer, k in zip(cfg.layers, jax.random.split(k_f, len(cfg.layers)), strict=True):
        width = visualize.layer_width(net, params, layer, shape)
        k_choice, k_run = jax.random.split(k)
        idx = np.asarray(jax.random.choice(k_choice, width, (cfg.filters_per_layer,), replace=False))
        r = visualize.visualize_filters(net, params, layer, idx.tolist(), cfg.filters, visualize.VGG_NOISE,
                                        key=k_run, image_shape=shape)
        out["filters"][layer] = {"indices": idx.tolist(), **filter_report(r.values)}
        shown.append(_deprocessed(r.image))
    plots.image_grid(np.stack(shown), run_dir / "vgg_filters.png", row_labels=list(cfg.layers),
                     title=f"VGG16, {vgg.label}: filter visualisation")
    if cfg.class_index is not None:
        r = visualize.maximize_classes(vgg.net, vgg.params, [cfg.class_index], cfg.classes, visualize.VGG_NOISE,
                                       key=k_c)
        name = vgg.net.class_names[cfg.class_index]
        plots.image_grid(_deprocessed(r.image)[None], run_dir / "vgg_class.png", cell_inches=3.0,
                         title=f"VGG16, {vgg.label}: class {cfg.class_index} ({name}), "
                               f"p={float(r.values[0, -1]):.4f}")
        out["class"] = {"index": cfg.class_index, "name": name, "curve": np.asarray(r.values[0]).tolist()}
    if cfg.target.enabled:
        out["target"] = vgg_target(cfg.target, vgg, run_dir, thresholds)
    return out


def vgg_target(cfg, vgg: Vgg, run_dir: pathlib.Path, thresholds) -> dict[str, Any]:
    """The photo pushed to ``cfg.target_class`` as the study pushed the Mona Lisa to triceratops, in
    ``cfg.units`` (see ``configs/see_the_world.py``): ``vgg_target.png`` and ``vgg_target_curve.png``."""
    t0 = time.perf_counter()
    start = visualize.normalize_image(jnp.asarray(vgg.photo) / 256.0)
    if cfg.units == "study":
        # The study fed [0, 1] pixels to Keras' VGG16 without preprocess_input: the bare network, unclipped.
        net = vgg16(include_top=True, preprocess=False)
        ascent = visualize.Ascent(steps=cfg.steps, step_size=cfg.step, unroll=cfg.unroll)
    else:
        net, start = vgg.net, start * 255.0
        ascent = visualize.Ascent(steps=cfg.steps, step_size=cfg.step * 255.0, clip=True, bounds=net.bounds,
                                  unroll=cfg.unroll)
    report, shots, _ = push_to_target(net, vgg.params, start, cfg.target_class, ascent, cfg.snapshots, thresholds)
    # The study looked at its pictures through deprocess_image; in 0..255 units they are photos already.
    shown = _deprocessed(shots) if cfg.units == "study" else shots / 255.0
    name = pathlib.Path(vgg.photo_path).stem
    save_target(shown, report, run_dir, "vgg_target",
                f"VGG16, {vgg.label}: {name} pushed to {report['target_name']} ({cfg.units} units, "
                f"steps of {ascent.step_size:g})", cell_inches=1.8)
    log.info("VGG16 %s -> %s: p %.5f -> %.5f in %d steps; top-1 %s -> %s", name, report["target_name"],
             report["curve"][0], report["final"], report["steps"], report["top1_before"]["name"],
             report["top1_after"]["name"])
    return {"image": vgg.photo_path, "units": cfg.units, **report, "seconds": round(time.perf_counter() - t0, 1)}


def _deprocessed(x: jax.Array) -> np.ndarray:
    """The study's ``deprocess_image`` of each of ``x [n, H, W, C]``, as floats in [0, 1] for plotting."""
    return np.asarray(jax.vmap(visualize.deprocess_image)(jnp.asarray(x))).astype(np.float32) / 255.0


if __name__ == "__main__":
    cli.main(run)
