"""Evaluating CNN predictions with visualisation techniques: where does the model look, and does it still look
there when the input is irregular?

Run: ``python -m experiments.evaluate_predictions --config configs/evaluate_predictions.py`` (MNIST, offline) or
``--config configs/evaluate_predictions_vgg16.py [--config.weights=random]`` (VGG16).

1. Regular inputs: occlusion and Grad-CAM per image and their agreement (rank correlation, top-k IoU, pointing
   game, centroid distance); against human masks when ``mask_dir`` is given (and, on MNIST, against the ink).
2. Irregular inputs: FGSM images -- Grad-CAM before and after, the attention shift (agreement of the clean and
   adversarial Grad-CAMs), top-1 and its probability before and after; cross-model: the same clean and FGSM
   images through a second model (predictions, its Grad-CAM, agreement with the first model's); raw noise images
   (Perlin noise, a universal perturbation drawn as an image) with their predictions and Grad-CAM.

Writes into ``<workdir>/evaluate_predictions/<run>/``: ``panels_<image>.png`` (one per image), ``noise.png``,
``metrics.json`` (every prediction and agreement number, and their means) and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks, cli, explain, runs, xla, zoo
from jaxfool.data import load_mnist
from jaxfool.explain import render
from jaxfool.images import load_masks
from jaxfool.models import Network, mnist_cnn, predict_proba
from jaxfool.models.mnist_zoo import mnist_resnet
from jaxfool.models.network import Params
from jaxfool.progress import bar as progress_bar

log = logging.getLogger("evaluate_predictions")
MNIST_MODELS = {"mnist_cnn": mnist_cnn, "mnist_resnet": mnist_resnet}


class Subject(NamedTuple):
    """A model under study, its Grad-CAM layer and a batched Grad-CAM ``(params, x [N,H,W,C], y [N]) -> [N,H,W]``."""

    net: Network
    params: Params
    layer: str
    cam: Any


class Inputs(NamedTuple):
    """The regular images: ``pixels [N, H, W, C]``, names (file stems), true labels (``-1`` unknown)."""

    pixels: np.ndarray
    names: list[str]
    labels: np.ndarray


def subject(net: Network, params: Params, layer: str) -> Subject:
    """Wraps a model with its Grad-CAM layer (``""``: the last spatial one) and a jitted, vmapped Grad-CAM."""
    x = jnp.zeros(net.input_shape, jnp.float32)
    spatial = explain.spatial_layers(net, params, x)
    layer = layer or spatial[-1]
    if layer not in spatial:
        raise cli.ConfigError(f"layer={layer!r} of {net.name} is not a spatial layer; valid: {', '.join(spatial)}")
    cam = xla.jit(jax.vmap(lambda p, xi, yi: explain.grad_cam(net, p, xi, yi, layer=layer), in_axes=(None, 0, 0)))
    return Subject(net, params, layer, cam)


def load_models(config: Any) -> tuple[Subject, Subject | None, Inputs, dict[str, Any], np.ndarray]:
    """The model, the optional second model, the regular images, model info and the universal-fit images."""
    if config.model == "vgg16":
        from experiments.fool_vgg16 import sample_photos
        from jaxfool.images import load_image_folder, unique_names
        from jaxfool.weights import load_vgg16

        photos = load_image_folder(config.image_dir) if config.image_dir else sample_photos()
        if len(photos.paths) == 0:
            raise FileNotFoundError(f"no readable .jpg/.png images in {config.image_dir}")
        net, params = load_vgg16(config.weights, key=jax.random.key(config.seed))
        pixels = np.asarray(photos.pixels[: config.num_images], np.float32)
        inputs = Inputs(pixels, list(unique_names(photos.paths[: config.num_images])), np.full(len(pixels), -1))
        info = {"weights": config.weights, "meaningless_predictions": config.weights == "random"}
        if info["meaningless_predictions"]:
            log.warning("weights=random: every prediction below is MEANINGLESS; the pipeline is real")
        fit = np.asarray(photos.pixels[: config.noise.universal_images], np.float32)
        return subject(net, params, config.layer), None, inputs, info, fit

    from experiments.ink_overlap import balanced_indices

    data = load_mnist(config.data)
    cache = pathlib.Path(config.workdir) / "models"
    net = mnist_cnn()
    params, meta = zoo.load_or_train(net, data, config.train, cache_dir=cache, progress=True)
    info = {"data_source": data.source, "test_accuracy": meta["test_accuracy"], "checkpoint": meta["checkpoint"]}
    idx = balanced_indices(data.test_labels, config.num_images)
    inputs = Inputs(data.test_images[idx], [f"test{i}" for i in idx], data.test_labels[idx])
    second = None
    if config.second_model:
        net2 = MNIST_MODELS[config.second_model]()
        params2, meta2 = zoo.load_or_train(net2, data, config.second_train, cache_dir=cache, progress=True)
        info["second_model"] = {"name": net2.name, "test_accuracy": meta2["test_accuracy"],
                                "checkpoint": meta2["checkpoint"]}
        second = subject(net2, params2, config.layer if config.layer in net2.layer_names else "")
    fit = data.train_images[: config.noise.universal_images]
    return subject(net, params, config.layer), second, inputs, info, fit


def _top1(net: Network, params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(predict_proba(net, params, jnp.asarray(x), batch_size=16))
    return probs.argmax(-1), probs.max(-1)


@functools.partial(jax.jit, static_argnames=("fraction",))
def _compare(a: jax.Array, b: jax.Array, fraction: float) -> explain.Agreement:
    return jax.vmap(lambda u, v: explain.compare_heatmaps(u, v, fraction=fraction))(a, b)


def _agreements(a: np.ndarray, b: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """Per-image agreement numbers of two stacks of heatmaps ``[N, H, W]``."""
    out = _compare(jnp.asarray(a), jnp.asarray(b), fraction)
    return {k: np.asarray(v) for k, v in out._asdict().items()}


def _against_mask(maps: dict[str, np.ndarray], mask: np.ndarray, config: Any) -> dict[str, Any]:
    return {name: {"top_k_iou": float(explain.mask_iou(m, mask, fraction=config.fraction)),
                   "pointing": bool(explain.pointing_game(m, mask, tolerance=config.pointing_tolerance))}
            for name, m in maps.items()}


def _mean(values: Any) -> float | None:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _summary(agreement: dict[str, np.ndarray]) -> dict[str, float | None]:
    return {f"mean_{k}": _mean(v) for k, v in agreement.items()}


def _name(net: Network, c: int) -> str:
    return net.class_names[c] if net.class_names else str(c)


# Jitted: op by op, the octave loop costs seconds per image.
_perlin_image = jax.jit(attacks.perlin_image, static_argnames=("shape", "bounds", "octaves"))


def noise_inputs(s: Subject, fit: np.ndarray, config: Any, key: jax.Array) -> tuple[list[str], np.ndarray, dict]:
    """Perlin images and the universal perturbation drawn as an image (spanning the pixel range)."""
    n = config.noise
    lo, hi = s.net.bounds
    names, images = [], []
    perlin = attacks.PerlinParams(n.perlin_period, n.perlin_freq_sine)
    for i in range(n.perlin_images):
        images.append(np.asarray(_perlin_image(s.net.input_shape, perlin, key=jax.random.fold_in(key, i),
                                               bounds=s.net.bounds, octaves=n.perlin_octaves)))
        names.append(f"perlin{i}")
    info: dict[str, Any] = {}
    if n.universal_images:
        model = attacks.network_model(s.net, s.params)
        labels, _ = _top1(s.net, s.params, fit)  # the model's own classes: no ground truth is needed
        delta = attacks.universal_perturbation(
            model, jnp.asarray(fit), jnp.asarray(labels), attacks.UniversalParams(n.universal_eps, n.universal_rel_step),
            key=jax.random.fold_in(key, 10_000), bounds=s.net.bounds, epochs=n.universal_epochs,
            batch_size=min(64, len(fit)))
        info["universal_fooling_rate_on_fit_images"] = attacks.fooling_rate(model, fit, delta, bounds=s.net.bounds)
        info["universal_linf"] = float(jnp.abs(delta).max())
        images.append(np.asarray(lo + (delta / n.universal_eps + 1) / 2 * (hi - lo), np.float32))
        names.append("universal")
    return names, np.stack(images) if images else np.zeros((0, *s.net.input_shape), np.float32), info


def run(config: Any) -> dict[str, Any]:
    """Runs the study for ``config`` (see ``configs/evaluate_predictions.py``); returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    first, second, inputs, info, fit = load_models(config)
    net, params = first.net, first.params
    human = load_masks(config.mask_dir, inputs.names, inputs.pixels.shape[1:3]) if config.mask_dir else {}
    run_dir = runs.start_run(config, "evaluate_predictions")
    key = jax.random.key(config.seed)
    x = inputs.pixels
    scale, bounds = config.panel_scale, net.bounds
    warning = " (random weights: MEANINGLESS predictions)" if info.get("meaningless_predictions") else ""

    # Regular inputs: the model's own top-1 is what both methods explain.
    pred, prob = _top1(net, params, x)
    cam = np.asarray(first.cam(params, jnp.asarray(x), jnp.asarray(pred)))
    occ = np.stack([np.asarray(explain.occlusion(net, params, xi, int(yi), **dataclasses.asdict(config.occlusion)))
                    for xi, yi in zip(progress_bar(x, progress=True, desc="occlusion"), pred, strict=True)])
    methods = _agreements(occ, cam, config.fraction)
    # Chance level of the same numbers: occlusion against uniformly random maps.
    chance = _agreements(occ, np.asarray(jax.random.uniform(jax.random.fold_in(key, 3), occ.shape)), config.fraction)

    # FGSM away from the label (the true digit; for photos, the clean prediction).
    fgsm = attacks.get_attack("fgsm")
    target = np.where(inputs.labels >= 0, inputs.labels, pred)
    x_adv = np.asarray(attacks.perturb(fgsm, attacks.network_model(net, params), jnp.asarray(x), jnp.asarray(target),
                                       fgsm.params(config.fgsm_eps), key=jax.random.fold_in(key, 1), bounds=bounds))
    pred_adv, prob_adv = _top1(net, params, x_adv)
    cam_adv = np.asarray(first.cam(params, jnp.asarray(x_adv), jnp.asarray(pred_adv)))
    shift = _agreements(cam, cam_adv, config.fraction)

    cross: dict[str, Any] = {}
    if second is not None:
        p2, q2 = _top1(second.net, second.params, x)
        p2_adv, q2_adv = _top1(second.net, second.params, x_adv)
        cam2 = np.asarray(second.cam(second.params, jnp.asarray(x), jnp.asarray(p2)))
        cam2_adv = np.asarray(second.cam(second.params, jnp.asarray(x_adv), jnp.asarray(p2_adv)))
        cross = {"pred": p2, "prob": q2, "pred_adv": p2_adv, "prob_adv": q2_adv, "cam": cam2, "cam_adv": cam2_adv,
                 "models_clean": _agreements(cam, cam2, config.fraction),
                 "models_adv": _agreements(cam_adv, cam2_adv, config.fraction),
                 "shift": _agreements(cam2, cam2_adv, config.fraction)}

    per_image = []
    for i, name in enumerate(progress_bar(inputs.names, progress=True, desc="panels")):
        item: dict[str, Any] = {
            "image": name, "label": int(inputs.labels[i]),
            "clean": {"top1": int(pred[i]), "class": _name(net, int(pred[i])), "probability": float(prob[i])},
            "fgsm": {"top1": int(pred_adv[i]), "class": _name(net, int(pred_adv[i])), "probability": float(prob_adv[i]),
                     "linf": float(np.abs(x_adv[i] - x[i]).max())},
            "occlusion_vs_gradcam": {k: v[i] for k, v in methods.items()},
            "attention_shift": {k: v[i] for k, v in shift.items()},
        }
        masks: dict[str, np.ndarray] = {}
        if net.name.startswith("mnist"):
            masks["ink"] = np.asarray(explain.ink_mask(x[i], bounds))
        if name in human:
            masks["human"] = human[name]
        for kind, mask in masks.items():
            item[f"vs_{kind}_mask"] = _against_mask({"occlusion": occ[i], "gradcam": cam[i]}, mask, config)
        panels = [
            (f"{name}: {item['clean']['class']} ({prob[i]:.2f})", render.to_rgb(x[i], bounds=bounds, scale=scale)),
            (f"occlusion (rho {methods['spearman'][i]:.2f})", render.overlay(x[i], occ[i], bounds=bounds, scale=scale)),
            (f"grad-cam {first.layer}", render.overlay(x[i], cam[i], bounds=bounds, scale=scale)),
            *((f"{kind} mask", render.to_rgb(m[..., None].astype(np.float32), scale=scale)) for kind, m in masks.items()),
            (f"FGSM eps {config.fgsm_eps:g}: {item['fgsm']['class']} ({prob_adv[i]:.2f})",
             render.to_rgb(x_adv[i], bounds=bounds, scale=scale)),
            (f"grad-cam FGSM (IoU {shift['top_k_iou'][i]:.2f})", render.overlay(x_adv[i], cam_adv[i], bounds=bounds,
                                                                                 scale=scale)),
        ]
        if cross:
            item["second_model"] = {
                "clean": {"top1": int(cross["pred"][i]), "probability": float(cross["prob"][i])},
                "fgsm": {"top1": int(cross["pred_adv"][i]), "probability": float(cross["prob_adv"][i])},
                "gradcam_vs_first_model_clean": {k: v[i] for k, v in cross["models_clean"].items()},
                "gradcam_vs_first_model_fgsm": {k: v[i] for k, v in cross["models_adv"].items()},
                "attention_shift": {k: v[i] for k, v in cross["shift"].items()},
            }
            n2 = second.net.name
            panels += [(f"{n2}: {cross['pred'][i]} ({cross['prob'][i]:.2f})",
                        render.overlay(x[i], cross["cam"][i], bounds=bounds, scale=scale)),
                       (f"{n2} FGSM: {cross['pred_adv'][i]} ({cross['prob_adv'][i]:.2f})",
                        render.overlay(x_adv[i], cross["cam_adv"][i], bounds=bounds, scale=scale))]
        render.save_panels(panels, run_dir / f"panels_{name}.png", columns=4, title=f"{net.name}: {name}{warning}")
        per_image.append(item)

    noise_names, noise, noise_info = noise_inputs(first, fit, config, jax.random.fold_in(key, 2))
    noise_items = []
    if len(noise):
        npred, nprob = _top1(net, params, noise)
        ncam = np.asarray(first.cam(params, jnp.asarray(noise), jnp.asarray(npred)))
        panels = []
        for j, name in enumerate(noise_names):
            noise_items.append({"image": name, "top1": int(npred[j]), "class": _name(net, int(npred[j])),
                                "probability": float(nprob[j])})
            panels += [(f"{name}: {_name(net, int(npred[j]))} ({nprob[j]:.2f})",
                        render.to_rgb(noise[j], bounds=bounds, scale=scale)),
                       ("grad-cam", render.overlay(noise[j], ncam[j], bounds=bounds, scale=scale))]
        render.save_panels(panels, run_dir / "noise.png", columns=4, title=f"{net.name}: noise images{warning}")

    changed = pred_adv != pred
    metrics: dict[str, Any] = {
        "model": net.name, "gradcam_layer": first.layer, **info, "num_images": len(x), "fraction": config.fraction,
        "summary": {
            "clean_accuracy": _mean(pred == inputs.labels) if (inputs.labels >= 0).all() else None,
            "fgsm_accuracy": _mean(pred_adv == inputs.labels) if (inputs.labels >= 0).all() else None,
            "fgsm_top1_change_rate": float(changed.mean()),
            "mean_clean_top1_probability": _mean(prob), "mean_fgsm_top1_probability": _mean(prob_adv),
            "occlusion_vs_gradcam": _summary(methods),
            "occlusion_vs_random_map": _summary(chance),
            "attention_shift_clean_vs_fgsm": _summary(shift),
            "attention_shift_when_top1_changed": _summary({k: v[changed] for k, v in shift.items()}),
            "attention_shift_when_top1_kept": _summary({k: v[~changed] for k, v in shift.items()}),
        },
        "images": per_image,
        "noise": {**noise_info, "images": noise_items},
    }
    found = sum("vs_human_mask" in item for item in per_image)
    if config.mask_dir and found < len(per_image):
        log.warning("human masks found for %d of %d images in %s (named <image>.png; images: %s...)", found,
                    len(per_image), config.mask_dir, ", ".join(inputs.names[:3]))
    for kind in ("ink", "human"):
        rows = [item[f"vs_{kind}_mask"] for item in per_image if f"vs_{kind}_mask" in item]
        if rows:
            metrics["summary"][f"vs_{kind}_mask"] = {
                m: {k: _mean([r[m][k] for r in rows]) for k in ("top_k_iou", "pointing")} for m in rows[0]}
    if cross:
        metrics["summary"]["second_model"] = {
            "name": second.net.name, "gradcam_layer": second.layer,
            "clean_accuracy": _mean(cross["pred"] == inputs.labels),
            "fgsm_transfer_accuracy": _mean(cross["pred_adv"] == inputs.labels),
            "fgsm_top1_change_rate": float(np.mean(cross["pred_adv"] != cross["pred"])),
            "gradcam_vs_first_model_clean": _summary(cross["models_clean"]),
            "gradcam_vs_first_model_fgsm": _summary(cross["models_adv"]),
            "attention_shift_clean_vs_fgsm": _summary(cross["shift"]),
        }
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    runs.write_json(run_dir / "metrics.json", metrics)
    s = metrics["summary"]
    log.info("occlusion vs grad-cam: mean rho %.3f, top-k IoU %.3f; FGSM changed top-1 on %.0f%%, attention shift "
             "IoU %.3f", s["occlusion_vs_gradcam"]["mean_spearman"] or np.nan,
             s["occlusion_vs_gradcam"]["mean_top_k_iou"] or np.nan, 100 * s["fgsm_top1_change_rate"],
             s["attention_shift_clean_vs_fgsm"]["mean_top_k_iou"] or np.nan)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
