"""Sanity checks for saliency maps (Adebayo et al., 2018): does the map depend on the model at all?

* :func:`cascading_randomization`: re-initialise the parameters layer by layer from the top (logits) down,
  keeping the earlier randomisations, and recompute the map after each step;
* :func:`independent_randomization`: re-initialise one layer at a time, the others trained;
* the data-randomisation test needs the same network trained on shuffled labels: train it with
  :func:`jaxfool.zoo.load_or_train` on permuted labels and compare its maps with :func:`similarity`.

A map that does not change when the weights it explains are random is an edge detector, not an explanation
(Adebayo et al. found this of guided backprop). :func:`similarity` scores a map against the original by
Spearman rank correlation (of the maps and of their absolute values), SSIM and HOG similarity, on maps
min-max normalised to ``[0, 1]`` as the paper does for SSIM and HOG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxfool.explain.agreement import spearman
from jaxfool.models.network import Network, Params

Array = jax.Array


def parameter_layers(params: Params) -> tuple[str, ...]:
    """The top-level parameter groups of ``params`` in forward order (flax keeps definition order)."""
    return tuple(params)


def randomize(net: Network, params: Params, layers: Sequence[str], *, key: Array) -> Params:
    """``params`` with the groups in ``layers`` replaced by a fresh draw of the network's own initialisation."""
    unknown = sorted(set(layers) - set(params))
    if unknown:
        raise ValueError(f"unknown parameter layers {unknown}; {net.name} has: {', '.join(params)}")
    fresh = net.init(key=key)
    return {name: fresh[name] if name in layers else value for name, value in params.items()}


def cascading_randomization(net: Network, params: Params, *, key: Array,
                            layers: Sequence[str] | None = None) -> list[tuple[str, Params]]:
    """``[(name, params)]``: after randomising ``layers`` (default: all, top down) one more at a time, cumulatively.

    Every stage draws from the same ``key``, so a layer keeps the same random weights in every later stage.
    """
    order = tuple(reversed(parameter_layers(params))) if layers is None else tuple(layers)
    return [(name, randomize(net, params, order[: i + 1], key=key)) for i, name in enumerate(order)]


def independent_randomization(net: Network, params: Params, *, key: Array,
                              layers: Sequence[str] | None = None) -> list[tuple[str, Params]]:
    """``[(name, params)]``: each of ``layers`` (default: all, top down) randomised alone."""
    order = tuple(reversed(parameter_layers(params))) if layers is None else tuple(layers)
    return [(name, randomize(net, params, (name,), key=key)) for name in order]


def _unit(m: np.ndarray) -> np.ndarray:
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def similarity(original: Array, other: Array) -> dict[str, float]:
    """Scores of ``other [H, W]`` against ``original [H, W]``: ``spearman``, ``spearman_abs``, ``ssim``, ``hog``.

    SSIM is scikit-image's ``structural_similarity`` on ``[0, 1]`` maps; HOG similarity is the Pearson
    correlation of the two maps' HOG descriptors (scikit-image ``hog``, 4x4-pixel cells for small maps).
    """
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    a, b = np.asarray(original, np.float64), np.asarray(other, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"similarity needs two maps of one shape [H, W], got {a.shape} and {b.shape}")
    ua, ub = _unit(a), _unit(b)
    cell = (4, 4) if min(a.shape) < 64 else (16, 16)
    ha, hb = (hog(m, pixels_per_cell=cell, cells_per_block=(2, 2)) for m in (ua, ub))
    hog_corr = np.corrcoef(ha, hb)[0, 1] if ha.std() > 0 and hb.std() > 0 else np.nan
    return {
        "spearman": float(spearman(a, b)),
        "spearman_abs": float(spearman(np.abs(a), np.abs(b))),
        "ssim": float(structural_similarity(ua, ub, data_range=1.0, win_size=min(7, *a.shape) // 2 * 2 + 1)),
        "hog": float(hog_corr),
    }


def randomization_curve(
    explain_fn: Callable[[Params, Array, Array], Array],
    stages: Sequence[tuple[str, Params]],
    params: Params,
    x: Array,
    labels: Array,
) -> dict[str, Any]:
    """Mean :func:`similarity` of the maps after each randomisation stage to the original maps.

    Args:
        explain_fn: ``(params, x [N, H, W, C], labels [N]) -> maps [N, H, W]`` (e.g. a vmapped, jitted method).
        stages: from :func:`cascading_randomization` or :func:`independent_randomization`.
        params: the trained parameters (the original maps).
        x: ``[N, H, W, C]`` examples.
        labels: ``[N]`` classes to explain (the trained model's predictions, as Adebayo et al.).

    Returns:
        ``{"layers": [names], metric: [mean over examples per stage]}``.
    """
    original = np.asarray(explain_fn(params, x, labels))
    out: dict[str, Any] = {"layers": [name for name, _ in stages]}
    for _, p in stages:
        maps = np.asarray(explain_fn(p, x, labels))
        scores = [similarity(o, m) for o, m in zip(original, maps, strict=True)]
        for metric in scores[0]:
            out.setdefault(metric, []).append(float(np.nanmean([s[metric] for s in scores])))
    return out
