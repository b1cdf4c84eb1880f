"""How VGG16 sees the world: the study's filters, its sea-snake class image and a photo pushed to triceratops.

Run:
    python -m experiments.see_the_world_vgg16 --config configs/see_the_world_vgg16.py

Writes into ``<workdir>/see_the_world_vgg16/<run>/``: ``vgg_filters.png``, ``vgg_class.png``, ``vgg_target.png``
(snapshots with p(target)) and ``vgg_target_curve.png``, ``metrics.json`` and ``config.json``; every title names
the VGG16 weights used (MEANINGLESS with random weights).
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, images, plots, runs, visualize
from jaxfool.models import vgg16
from jaxfool.models.vgg16 import CONV_LAYERS
from jaxfool.weights import load_vgg16, resolve_weights

log = logging.getLogger("see_the_world_vgg16")
WEIGHTS, FILTERS, CLASS = 0, 1, 2  # section ids folded into the root key


def run(config: Any) -> dict[str, Any]:
    """Runs the experiment described by ``config`` (see ``configs/see_the_world_vgg16.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    root = jax.random.key(config.seed)
    # Before the run folder: missing weights or a bad photo fail at once.
    photo, photo_path = load_photo(config.target) if config.target.enabled else (None, "")
    top = config.class_index is not None or config.target.enabled
    weights = str(resolve_weights(config.weights, include_top=top))
    net, params = load_vgg16(weights, include_top=top, key=jax.random.fold_in(root, WEIGHTS))
    label = weights_label(weights)
    run_dir = runs.start_run(config, "see_the_world_vgg16")
    out: dict[str, Any] = {"weights": weights, "weights_requested": config.weights, "weights_label": label,
                           "meaningless": weights == "random", "filters": {}}
    conv = vgg16(include_top=False, preprocess=net.module.preprocessing)
    conv_params = {name: params[name] for name in CONV_LAYERS}
    shape, shown = (config.size, config.size, 3), []
    for i, layer in enumerate(config.layers):
        k_choice, k_run = jax.random.split(jax.random.fold_in(jax.random.fold_in(root, FILTERS), i))
        width = visualize.layer_width(conv, conv_params, layer, shape)
        idx = np.asarray(jax.random.choice(k_choice, width, (config.filters_per_layer,), replace=False))
        r = visualize.visualize_filters(conv, conv_params, layer, idx.tolist(), config.filters, visualize.VGG_NOISE,
                                        key=k_run, image_shape=shape)
        out["filters"][layer] = {"indices": idx.tolist(), **visualize.filter_report(r.values)}
        shown.append(visualize.deprocessed(r.image))
    plots.image_grid(np.stack(shown), run_dir / "vgg_filters.png", row_labels=list(config.layers),
                     title=f"VGG16, {label}: filter visualisation")
    if config.class_index is not None:
        r = visualize.maximize_classes(net, params, [config.class_index], config.classes, visualize.VGG_NOISE,
                                       key=jax.random.fold_in(root, CLASS))
        name = net.class_name(config.class_index)
        plots.image_grid(visualize.deprocessed(r.image)[None], run_dir / "vgg_class.png", cell_inches=3.0,
                         title=f"VGG16, {label}: class {config.class_index} ({name}), p={float(r.values[0, -1]):.4f}")
        out["class"] = {"index": config.class_index, "name": name, "curve": np.asarray(r.values[0]).tolist()}
    if config.target.enabled:
        out["target"] = push_photo(config.target, net, params, photo, photo_path, label, run_dir, config.thresholds)
    out["seconds"] = round(time.perf_counter() - start, 1)
    runs.write_json(run_dir / "metrics.json", out)
    log.info("%.0f s; %s", out["seconds"], run_dir)
    return {**out, "run_dir": str(run_dir)}


def load_photo(cfg) -> tuple[np.ndarray, str]:
    """The study's photo recipe: ``cfg.image`` (a file or a scikit-image sample) thumbnailed and cropped to 224."""
    path = cfg.image if pathlib.Path(cfg.image).is_file() else images.sample_photo(cfg.image)
    return images.load_thumbnail_crop(path, (224, 224)), str(path)


def weights_label(weights: str) -> str:
    """The weights as every title names them; random weights are said to be MEANINGLESS, also in the log."""
    if weights == "random":
        log.warning("VGG16 with RANDOM weights: its pictures and probabilities are MEANINGLESS; the pipeline is real")
        return "RANDOM weights (MEANINGLESS)"
    return "official ImageNet weights" if weights == "imagenet" else f"weights {pathlib.Path(weights).name}"


def push_photo(cfg, net, params, photo, photo_path, label, run_dir: pathlib.Path, thresholds) -> dict[str, Any]:
    """The photo pushed to ``cfg.target_class`` as the study pushed the Mona Lisa to triceratops, in
    ``cfg.units`` (see ``configs/see_the_world_vgg16.py``): ``vgg_target.png`` and ``vgg_target_curve.png``."""
    t0 = time.perf_counter()
    start = visualize.normalize_image(jnp.asarray(photo) / 256.0)
    if cfg.units == "study":
        # The study fed [0, 1] pixels to Keras' VGG16 without preprocess_input: the bare network, unclipped.
        net = vgg16(include_top=True, preprocess=False)
        ascent = visualize.AscentConfig(steps=cfg.steps, step_size=cfg.step, unroll=cfg.unroll)
    else:
        start = start * 255.0
        ascent = visualize.AscentConfig(steps=cfg.steps, step_size=cfg.step * 255.0, clip=True, bounds=net.bounds,
                                        unroll=cfg.unroll)
    report, shots, _ = visualize.push_to_target(net, params, start, cfg.target_class, ascent, cfg.snapshots,
                                                thresholds)
    # The study looked at its pictures through deprocess_image; in 0..255 units they are photos already.
    shown = visualize.deprocessed(shots) if cfg.units == "study" else shots / 255.0
    name = pathlib.Path(photo_path).stem
    plots.snapshot_sequence(shown, report["snapshot_steps"], report["target_prob_at_snapshots"], report["curve"],
                            run_dir / "vgg_target.png", label=str(report["target_class"]), cell_inches=1.8,
                            title=f"VGG16, {label}: {name} pushed to {report['target_name']} ({cfg.units} units, "
                                  f"steps of {ascent.step_size:g})")
    log.info("VGG16 %s -> %s: p %.5f -> %.5f in %d steps; top-1 %s -> %s", name, report["target_name"],
             report["curve"][0], report["final"], report["steps"], report["top1_before"]["name"],
             report["top1_after"]["name"])
    return {"image": photo_path, "units": cfg.units, **report, "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    cli.main(run)
