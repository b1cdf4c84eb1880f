"""Irregular inputs: what a model predicts on images no training set holds, and where it looks (the noise part of
``experiments.evaluate_predictions``): Perlin noise and a universal perturbation drawn as an image, each with its
top-1 and Grad-CAM, in one figure.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxfool import attacks
from jaxfool.explain import render
from jaxfool.explain.subject import Subject


def noise_report(
    model: Subject,
    fit: np.ndarray,
    path: str | os.PathLike,
    *,
    key: jax.Array,
    perlin: attacks.PerlinParams,
    perlin_images: int = 1,
    octaves: int = 3,
    universal: attacks.UniversalParams | None = None,
    universal_epochs: int = 5,
    title: str = "",
    scale: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Draws :func:`jaxfool.attacks.noise_images` for ``model`` and saves each with its Grad-CAM to ``path``.

    Args:
        model: the network under study, with its Grad-CAM layer.
        fit: ``[N, H, W, C]`` images the universal perturbation is fitted on.
        path: the figure (PNG); not written when there is no noise image.
        key: PRNG key of the noise (see :func:`jaxfool.attacks.noise_images`).
        perlin, perlin_images, octaves: the Perlin images.
        universal, universal_epochs: the universal perturbation (``None``: none).
        title: the figure's title (say MEANINGLESS there for random weights).
        scale: magnification of the panels.

    Returns:
        ``(items, info)``: per noise image ``{"image", "top1", "class", "probability"}``, and the universal
        perturbation's fooling rate and L-inf norm.
    """
    net, bounds = model.net, model.net.bounds
    names, noise, info = attacks.noise_images(
        attacks.network_model(net, model.params), fit, shape=net.input_shape, bounds=bounds, key=key, perlin=perlin,
        perlin_images=perlin_images, octaves=octaves, universal=universal, universal_epochs=universal_epochs)
    if not len(noise):
        return [], info
    pred, prob, cam = model.look(noise)
    items = [{"image": name, "top1": int(pred[j]), "class": net.class_name(int(pred[j])), "probability": float(prob[j])}
             for j, name in enumerate(names)]
    render.save_panels([p for j, it in enumerate(items) for p in (
        (f"{it['image']}: {it['class']} ({prob[j]:.2f})", render.to_rgb(noise[j], bounds=bounds, scale=scale)),
        ("grad-cam", render.overlay(noise[j], cam[j], bounds=bounds, scale=scale)))], path, columns=4, title=title)
    return items, info
