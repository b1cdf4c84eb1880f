"""VGG16 on a folder of photos: top-k predictions, Grad-CAM at one layer and a GIF of Grad-CAM across all
conv layers (all from one backward pass per image).

Run: ``python -m experiments.fool_vgg16 --config configs/fool_vgg16.py [--config.weights=random]``.

Writes into ``<workdir>/fool_vgg16/<run>/``: ``predictions.md`` and ``metrics.json`` (top-k per image),
``gradcam_<image>.png`` (JET heatmap over the grayscale photo, as the source article) and
``gradcam_layers_<image>.gif``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np
from PIL import Image

from jaxfool import cli, runs
from jaxfool.explain import cams
from jaxfool.explain.render import overlay, save_layers_gif
from jaxfool.imagenet import decode_predictions
from jaxfool.images import load_image_folder, sample_photos
from jaxfool.models import predict_proba
from jaxfool.weights import load_vgg16

log = logging.getLogger("fool_vgg16")
def run(config: Any) -> dict[str, Any]:
    """Runs the experiment for ``config`` (see ``configs/fool_vgg16.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    images = load_image_folder(config.image_dir) if config.image_dir else sample_photos()
    if len(images.paths) == 0:
        raise FileNotFoundError(f"no readable .jpg/.png images in {config.image_dir}")
    net, params = load_vgg16(config.weights, key=jax.random.key(config.seed))
    net.check_layers([config.layer])
    run_dir = runs.start_run(config, "fool_vgg16")
    meaningless = config.weights == "random"
    if meaningless:
        log.warning("weights=random: the predictions below are MEANINGLESS; the pipeline is real")

    probs = np.asarray(predict_proba(net, params, images.pixels, batch_size=4))
    top = decode_predictions(probs, top=config.top)
    per_image = []
    for i, path in enumerate(images.paths):
        x = images.pixels[i]
        label = int(probs[i].argmax())
        maps = cams(net, params, x, label, layers=[n for n in net.layer_names if "conv" in n])
        maps = {name: np.asarray(m) for name, m in maps.items()}
        stem = path.stem
        Image.fromarray(overlay(x, maps[config.layer], bounds=net.bounds)).save(run_dir / f"gradcam_{stem}.png")
        save_layers_gif(x, maps, run_dir / f"gradcam_layers_{stem}.gif", bounds=net.bounds, duration_ms=config.gif_ms)
        per_image.append({
            "image": str(path),
            "top": [{"wordnet_id": w, "class": c, "probability": float(p)} for w, c, p in top[i]],
            "gradcam_layer": config.layer,
        })
    note = " (random weights: MEANINGLESS predictions)" if meaningless else ""
    lines = [f"# VGG16 top-{config.top}{note}", "", "| image | " + " | ".join(f"#{k + 1}" for k in range(config.top)) + " |",
             "|---|" + "---|" * config.top]
    for item in per_image:
        cells = [f"{t['class']} ({t['probability']:.3f})" for t in item["top"]]
        lines.append(f"| {pathlib.Path(item['image']).name} | " + " | ".join(cells) + " |")
    (run_dir / "predictions.md").write_text("\n".join(lines) + "\n")
    metrics = {
        "weights": config.weights,
        "meaningless_predictions": meaningless,
        "images": per_image,
        "skipped": [str(p) for p in images.skipped],
        "seconds": round(time.perf_counter() - start, 1),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("%d images -> %s", len(per_image), run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
