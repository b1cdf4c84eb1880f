"""Evaluating CNN predictions with visualisation techniques: where does the model look, and does it still look
there when the input is irregular?

Run: ``python -m experiments.evaluate_predictions --config configs/evaluate_predictions.py`` (MNIST, offline) or
``--config configs/evaluate_predictions_vgg16.py [--config.weights=random]`` (VGG16).

1. Regular inputs: occlusion and Grad-CAM per image and their agreement (rank correlation, top-k IoU, pointing
   game, centroid distance); against human masks when ``mask_dir`` is given (and, on MNIST, against the ink).
2. Irregular inputs: FGSM images (Grad-CAM before and after, top-1 before and after); the same images through a
   second model; Perlin noise and a universal perturbation drawn as an image, with predictions and Grad-CAM.

Writes into ``<workdir>/evaluate_predictions/<run>/``: ``panels_<image>.png`` (one per image), ``noise.png``,
``metrics.json`` (every prediction and agreement number, and their means), ``config.json`` and, with a second
model, ``cross_model.md`` (its top-1 beside the first's, clean and on the first's FGSM images; on VGG16 this is the
study's cross-model part: ResNet101, its Grad-CAM at ``conv5_block3_out`` in the panels). Random ImageNet weights
are labelled MEANINGLESS in every file.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np

from jaxfool import attacks, cli, explain, images, irregular_inputs, runs, transfer, zoo
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.explain import render, study
from jaxfool.explain.subject import Subject, subject
from jaxfool.models import mnist_cnn
from jaxfool.progress import bar as progress_bar
from jaxfool.models.mnist_zoo import mnist_resnet

log = logging.getLogger("evaluate_predictions")
MNIST_MODELS = {"mnist_cnn": mnist_cnn, "mnist_resnet": mnist_resnet}
NOISE = 2  # section id folded into the root key (the study folds in 1 and 3)


def load_models(config: Any) -> tuple[Subject, Subject | None, np.ndarray, list[str], np.ndarray, dict, np.ndarray]:
    """The model, the optional second model, the images, their names and labels (-1: unknown), model info and the
    images the universal perturbation is fitted on."""
    n = config.num_images
    if config.model == "vgg16":
        photos, key = images.load_photos(config.image_dir), jax.random.key(config.seed)
        x = np.asarray(photos.pixels[:n], np.float32)
        first, source = transfer.imagenet_subject("vgg16", config.weights, key=key, layer=config.layer)
        second, source2 = transfer.imagenet_subject(config.second_model, config.second_weights, key=jax.random.fold_in(
            key, 1), input_shape=x.shape[1:]) if config.second_model else (None, None)  # the study's ResNet101
        info = {"weights": source, "meaningless_predictions": "random" in (source, source2)}
        if second is not None:
            info["second_model"] = {"name": second.net.name, "weights": source2}
        if info["meaningless_predictions"]:
            log.warning("random weights: every prediction below is MEANINGLESS; the pipeline is real")
        return (first, second, x, list(images.unique_names(photos.paths[:n])), np.full(len(x), -1), info,
                np.asarray(photos.pixels[: config.noise.universal_images], np.float32))
    data, cache = load_mnist(config.data), pathlib.Path(config.workdir) / "models"
    params, meta = zoo.load_or_train(mnist_cnn(), data, config.train, cache_dir=cache, progress=True)
    info = {"data_source": data.source, "test_accuracy": meta["test_accuracy"], "checkpoint": meta["checkpoint"]}
    idx, second = stratified_indices(data.test_labels, n, interleave=True), None
    if config.second_model:
        net2 = MNIST_MODELS[config.second_model]()
        params2, meta2 = zoo.load_or_train(net2, data, config.second_train, cache_dir=cache, progress=True)
        info["second_model"] = {"name": net2.name, **{k: meta2[k] for k in ("test_accuracy", "checkpoint")}}
        second = subject(net2, params2, config.layer if config.layer in net2.layer_names else "")
    return (subject(mnist_cnn(), params, config.layer), second, data.test_images[idx], [f"test{i}" for i in idx],
            data.test_labels[idx], info, data.train_images[: config.noise.universal_images])


def run(config: Any) -> dict[str, Any]:
    """Runs the study for ``config`` (see ``configs/evaluate_predictions.py``); returns the metrics."""
    cli.validate(config)
    if config.mask_dir and not pathlib.Path(config.mask_dir).is_dir():  # before any model is loaded or trained
        raise FileNotFoundError(f"mask_dir={config.mask_dir!r} is not a folder; give a folder of <image>.png masks")
    start = time.perf_counter()
    first, second, x, names, labels, info, fit = load_models(config)
    net, frac, scale = first.net, config.fraction, config.panel_scale
    run_dir = runs.start_run(config, "evaluate_predictions")
    key = jax.random.key(config.seed)
    warning = " (random weights: MEANINGLESS predictions)" if info.get("meaningless_predictions") else ""
    r = study.regular_and_fgsm(first, second, x, labels, occlusion=config.occlusion, fgsm_eps=config.fgsm_eps,
                               fraction=frac, key=key, progress=True)
    per_image = [image_report(i, name, config, first, second, x, labels, r, run_dir, warning)
                 for i, name in enumerate(progress_bar(names, progress=True, desc="panels"))]
    n = config.noise
    noise_items, noise_info = irregular_inputs.noise_report(
        first, fit, run_dir / "noise.png", key=jax.random.fold_in(key, NOISE), perlin=attacks.PerlinParams(
            n.perlin_period, n.perlin_freq_sine), perlin_images=n.perlin_images, octaves=n.perlin_octaves,
        universal=attacks.UniversalParams(n.universal_eps, n.universal_rel_step) if n.universal_images else None,
        universal_epochs=n.universal_epochs, title=f"{net.name}: noise images{warning}", scale=scale)
    summary = study.summary(r, labels, per_image, second)
    if config.mask_dir and len(summary.get("vs_human_mask", {})) == 0:
        log.warning("no human masks found in %s (named <image>.png; images: %s...)", config.mask_dir, names[:3])
    metrics = {"model": net.name, "gradcam_layer": first.layer, **info, "num_images": len(x), "fraction": frac,
               "summary": summary, "images": per_image, "noise": {**noise_info, "images": noise_items},
               "seconds": round(time.perf_counter() - start, 1)}
    runs.write_json(run_dir / "metrics.json", metrics)
    if second is not None:  # the cross-model part: the first model's FGSM images through the second
        rows = [{"image": it["image"], net.name: it, second.net.name: it["second_model"]} for it in per_image]
        table = transfer.cross_model_markdown(rows, (net.name, second.net.name), eps=config.fgsm_eps,
                                              meaningless=bool(warning))
        (run_dir / "cross_model.md").write_text(table)
        log.info("cross-model:\n%s", table)
    s = summary["occlusion_vs_gradcam"]
    log.info("occlusion vs grad-cam: mean rho %s, top-k IoU %s; FGSM changed top-1 on %.0f%%; run folder %s%s",
             s["mean_spearman"], s["mean_top_k_iou"], 100 * summary["fgsm_top1_change_rate"], run_dir, warning)
    return {**metrics, "run_dir": str(run_dir)}


def image_report(i, name, config, first: Subject, second, x, labels, r, run_dir, warning) -> dict[str, Any]:
    """Image ``i``'s predictions and agreement numbers (``r`` from :func:`study.regular_and_fgsm`), and its panel
    figure ``panels_<name>.png``."""
    net, bounds, scale, frac = first.net, first.net.bounds, config.panel_scale, config.fraction
    pred, prob, cam, occ, x_adv = r["pred"], r["prob"], r["cam"], r["occ"], r["x_adv"]
    pred_adv, prob_adv, cam_adv, methods, shift = r["pred_adv"], r["prob_adv"], r["cam_adv"], r["methods"], r["shift"]
    cross = r["cross"]
    pick = lambda d: {k: v[i] for k, v in d.items()}
    top = lambda p, q, n=net: {"top1": int(p[i]), "class": n.class_name(int(p[i])), "probability": float(q[i])}
    item = {"image": name, "label": int(labels[i]), "clean": top(pred, prob),
            "fgsm": {**top(pred_adv, prob_adv), "linf": float(np.abs(x_adv[i] - x[i]).max())},
            "occlusion_vs_gradcam": pick(methods), "attention_shift": pick(shift)}
    masks = {"ink": np.asarray(explain.ink_mask(x[i], bounds))} if net.name.startswith("mnist") else {}
    if config.mask_dir and (pathlib.Path(config.mask_dir) / f"{name}.png").is_file():
        masks["human"] = explain.load_mask(pathlib.Path(config.mask_dir) / f"{name}.png", x.shape[1:3])
    for kind, mask in masks.items():
        item[f"vs_{kind}_mask"] = explain.against_mask({"occlusion": occ[i], "gradcam": cam[i]}, mask,
                                                       fraction=frac, tolerance=config.pointing_tolerance)
    on = lambda v, h=None: render.overlay(v, h, bounds=bounds, scale=scale) if h is not None else render.to_rgb(
        v, bounds=bounds, scale=scale)
    panels = [(f"{name}: {item['clean']['class']} ({prob[i]:.2f})", on(x[i])),
              (f"occlusion (rho {methods['spearman'][i]:.2f})", on(x[i], occ[i])),
              (f"grad-cam {first.layer}", on(x[i], cam[i])),
              *((f"{k} mask", render.to_rgb(m[..., None].astype(np.float32), scale=scale)) for k, m in masks.items()),
              (f"FGSM eps {config.fgsm_eps:g}: {item['fgsm']['class']} ({prob_adv[i]:.2f})", on(x_adv[i])),
              (f"grad-cam FGSM (IoU {shift['top_k_iou'][i]:.2f})", on(x_adv[i], cam_adv[i]))]
    if cross:
        c, f = top(cross["pred"], cross["prob"], second.net), top(cross["pred_adv"], cross["prob_adv"], second.net)
        item["second_model"] = {"clean": c, "fgsm": f, **{v: pick(cross[k]) for k, v in study.CROSS_NUMBERS.items()}}
        panels += [(f"{second.net.name} grad-cam\n{c['class']} ({c['probability']:.2f})", on(x[i], cross["cam"][i])),
                   (f"{second.net.name} on FGSM\n{f['class']} ({f['probability']:.2f})",
                    on(x_adv[i], cross["cam_adv"][i]))]
    render.save_panels(panels, run_dir / f"panels_{name}.png", columns=4, title=f"{net.name}: {name}{warning}")
    return item


if __name__ == "__main__":
    cli.main(run)
