"""ImageNet transfer between VGG16, ResNet50 and ResNet101 (Xie et al. 2019, Table 1) and the fourth study's
cross-model part (FGSM on VGG16 at eps 4 -> ResNet101's top-1 and Grad-CAM beside VGG16's).

``python -m experiments.imagenet_transfer --config configs/imagenet_transfer.py``: writes ``transfer_table.md``,
``cross_model.md``, one panel figure per photo (``cross_model_<photo>.png``), ``metrics.json`` and ``config.json``
into ``<workdir>/imagenet_transfer/<run>/``. Random weights are labelled MEANINGLESS in every file.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import numpy as np

from jaxfool import cli, imagenet, images, runs, transfer
from jaxfool.explain import render
from jaxfool.weights import load_network, resolve_weights

log = logging.getLogger("imagenet_transfer")
SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
LAST_BLOCK = {"vgg16": "block5_conv3", "resnet50": "conv5_block3_out", "resnet101": "conv5_block3_out"}


def _photos(config: Any) -> images.Images:
    if config.image_dir:
        found = images.load_image_folder(config.image_dir)
    else:
        paths = tuple(images.sample_photo(name) for name in SAMPLE_PHOTOS)
        found = images.Images(np.stack([images.load_image(p) for p in paths]), paths, ())
    if not len(found.pixels):
        raise ValueError(f"no readable images in {config.image_dir}; pass a folder of .jpg/.png photos")
    n = min(config.max_images, len(found.pixels))
    return images.Images(found.pixels[:n], found.paths[:n], found.skipped)


def _load(names: set[str], config: Any, key: jax.Array) -> tuple[dict[str, Any], dict[str, str]]:
    nets, sources = {}, {}
    for i, name in enumerate(sorted(names)):
        weights = resolve_weights(config.weights, model=name)
        nets[name] = load_network(name, weights, key=jax.random.fold_in(key, i),
                                  **({} if name == "vgg16" else {"fold_batch_norm": True}))
        sources[name] = "imagenet" if weights != "random" else "RANDOM (MEANINGLESS)"
    return nets, sources


def run(config: Any) -> dict[str, Any]:
    """The table and the cross-model comparison; returns the metrics."""
    cli.validate(config)
    photos = _photos(config)
    run_dir = runs.new_run_dir(config.workdir, "imagenet_transfer", config.run_name)
    runs.write_json(run_dir / "config.json", config)
    key = jax.random.key(config.seed)
    needed = set(config.models) | ({"vgg16", "resnet101"} if config.cross_model else set())
    nets, sources = _load(needed, config, jax.random.fold_in(key, 0))
    meaningless = any(s.startswith("RANDOM") for s in sources.values())
    note = "**RANDOM WEIGHTS: these numbers are MEANINGLESS.**\n\n" if meaningless else ""
    metrics: dict[str, Any] = {"weights": sources, "images": [p.name for p in photos.paths], "meaningless": meaningless}
    x = photos.pixels
    if config.models:
        log.info("transfer table: %d models x %d attacks on %d photos", len(config.models), len(config.attacks), len(x))
        table = transfer.transfer_table(
            {m: nets[m] for m in config.models}, x, attack_names=config.attacks, eps=config.eps,
            key=jax.random.fold_in(key, 1), steps=config.steps, decay=config.decay,
            diversity_prob=config.diversity_prob, batch_size=config.batch_size, progress=True,
        )
        text = transfer.markdown(table["success"], table["clean_error"])
        (run_dir / "transfer_table.md").write_text(
            f"{note}Top-1 changed by the attack (%), eps {config.eps} pixels; * white-box.\n\n{text}")
        metrics["transfer"] = table
        log.info("\n%s%s", note, text)
    if config.cross_model:
        metrics["cross_model"] = _cross_model(nets, x, photos.paths, config, run_dir, note,
                                              jax.random.fold_in(key, 2))
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def _cross_model(nets, x, paths, config, run_dir, note, key) -> list[dict[str, Any]]:
    log.info("cross-model: FGSM at eps %s on VGG16 -> ResNet101", config.cross_eps)
    out = transfer.cross_model(nets["vgg16"], nets["resnet101"], x, eps=config.cross_eps, source_layer=LAST_BLOCK["vgg16"],
                               target_layer=LAST_BLOCK["resnet101"], key=key, batch_size=config.batch_size)
    names = imagenet.class_names()
    rows, lines = [], [note + f"FGSM at eps {config.cross_eps} pixels on VGG16.\n",
                       "| photo | VGG16 clean | VGG16 adv | ResNet101 clean | ResNet101 adv |", "|---|---|---|---|---|"]
    for i, path in enumerate(paths):
        cell = {f"{w}_{k}": (names[int(out[f'{w}_{k}'][i])], float(out[f"{w}_{k}_p"][i]))
                for w in ("source", "target") for k in ("clean", "adv")}
        rows.append({"photo": path.name, **cell})
        lines.append(f"| {path.stem} | " + " | ".join(f"{c} {p:.2f}" for c, p in cell.values()) + " |")
        panels = [("photo", render.to_rgb(x[i], bounds=(0, 255)))]
        for who, title in (("source", "VGG16"), ("target", "ResNet101")):
            for kind in ("clean", "adv"):
                c, p = cell[f"{who}_{kind}"]
                panels.append((f"{title} {kind}: {c} {p:.2f}", render.overlay(
                    x[i] if kind == "clean" else out["adv"][i], out[f"{who}_cam_{kind}"][i], bounds=(0, 255))))
        title = f"Grad-CAM at the last block{' -- RANDOM WEIGHTS, MEANINGLESS' if note else ''}"
        render.save_panels(panels, run_dir / f"cross_model_{path.stem}.png", title=title)
    (run_dir / "cross_model.md").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    cli.main(run)
