"""Occlusion on the trained MNIST CNN: does its high region overlap the digit's ink, more than chance?

Run:
    python -m experiments.ink_overlap --config configs/ink_overlap.py

For test digits taken evenly from every class, the IoU of the top-``fraction`` region of the occlusion map (and of the
last conv layer's Grad-CAM, and of a uniformly random map) with the ink mask. Writes ``metrics.json`` (means,
standard deviations, per-image IoUs), ``config.json`` and ``examples.png`` (the first digits with their maps)
into ``<workdir>/ink_overlap/<run>/``.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np

from jaxfool import cli, explain, runs, zoo
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.explain import render
from jaxfool.models import mnist_cnn, predict_proba

log = logging.getLogger("ink_overlap")


def run(config: Any) -> dict[str, Any]:
    """Measures the overlaps for ``config`` (see ``configs/ink_overlap.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "ink_overlap")
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, info = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models")
    images = data.test_images[stratified_indices(data.test_labels, config.num_images, interleave=True)]

    metrics: dict[str, Any] = {"data_source": data.source, "test_accuracy": info["test_accuracy"],
                               "num_images": len(images), "fraction": config.fraction}
    for baseline in (config.occlusion.baseline, *config.other_baselines):
        occ = dataclasses.replace(config.occlusion, baseline=baseline)
        key = jax.random.key(config.seed)  # the one random section: the same random maps for each baseline
        out = explain.ink_overlap(net, params, images, key=key, fraction=config.fraction,
                                  occlusion_config=occ, threshold=config.ink_threshold)
        metrics[f"baseline_{baseline:g}"] = {
            **out.summary(),
            **{f"{k}_std": float(getattr(out, k).std()) for k in ("occlusion", "grad_cam", "random")},
            "per_image": {k: getattr(out, k) for k in ("occlusion", "grad_cam", "random")},
        }
        log.info("occluding with %g: mean IoU with the ink: occlusion %.3f, grad-cam %.3f, random %.3f", baseline,
                 *(out.summary()[k] for k in ("occlusion_iou", "grad_cam_iou", "random_iou")))
    metrics["ink_fraction"] = float(np.mean(jax.vmap(lambda x: explain.ink_mask(x, threshold=config.ink_threshold))(
        images)))
    save_examples(net, params, images[:8], config, run_dir / "examples.png")
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def save_examples(net, params, images: np.ndarray, config: Any, path: pathlib.Path) -> None:
    """One row per digit: the digit, its occlusion map, the top region over the ink, and Grad-CAM."""
    panels = []
    labels = np.asarray(predict_proba(net, params, images).argmax(-1))
    spec, hyper = config.occlusion.build()
    for x, y in zip(images, labels, strict=True):
        occ = spec(net, params, x, int(y), hyper)
        cam = explain.grad_cam(net, params, x, int(y), layer=explain.spatial_layers(net, params, x)[-1])
        top = np.asarray(explain.top_k_region(occ, config.fraction))
        ink = np.asarray(explain.ink_mask(x, threshold=config.ink_threshold))
        # Red: top region off the ink; green: ink outside it; yellow: both.
        overlap = np.stack([top, ink, np.zeros_like(ink)], axis=-1).astype(np.uint8) * 255
        panels += [(f"predicted {y}", render.to_rgb(x, scale=4)), ("occlusion", render.overlay(x, occ, scale=4)),
                   (f"top {config.fraction:.0%} / ink", overlap.repeat(4, 0).repeat(4, 1)),
                   ("grad-cam", render.overlay(x, cam, scale=4))]
    render.save_panels(panels, path, columns=4, title=f"{net.name}: occlusion vs ink")


if __name__ == "__main__":
    cli.main(run)
