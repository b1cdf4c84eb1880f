"""How much two heatmaps, or a heatmap and a mask, agree.

The same few numbers serve every comparison of the "evaluating CNN predictions" study: two methods on one
image (occlusion vs Grad-CAM), one method on a clean and an adversarial image (the "attention shift"), two
models on one image, and a heatmap against a human-drawn mask (a PNG, :func:`load_mask`).

All metric functions take ``[H, W]`` arrays, are jitted (``fraction`` and ``tolerance`` static) and vmappable.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

Array = jax.Array


def _same_shape(a: Array, b: Array, what: str) -> None:
    if jnp.shape(a) != jnp.shape(b) or jnp.ndim(a) != 2:
        raise ValueError(
            f"{what} need two [height, width] maps of one shape, got {jnp.shape(a)} and {jnp.shape(b)}; "
            "resize one with jax.image.resize first"
        )


def _ranks(v: Array) -> Array:
    """1-based ranks of ``v [n]``, ties sharing their average rank (as ``scipy.stats.rankdata``)."""
    s = jnp.sort(v)
    first = jnp.searchsorted(s, v, side="left")
    last = jnp.searchsorted(s, v, side="right")
    return (first + last + 1) / 2


@jax.jit
def spearman(a: Array, b: Array) -> Array:
    """Spearman rank correlation of two heatmaps ``[H, W]`` (ties averaged, as ``scipy.stats.spearmanr``).

    Returns NaN if either map is constant (its ranks carry no order).
    """
    _same_shape(a, b, "spearman")
    ra, rb = _ranks(jnp.ravel(a)), _ranks(jnp.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return (ra * rb).sum() / jnp.sqrt((ra**2).sum() * (rb**2).sum())


@functools.partial(jax.jit, static_argnames=("fraction",))
def top_k_region(heatmap: Array, fraction: float = 0.2) -> Array:
    """Boolean mask ``[H, W]`` of the ``round(fraction * H * W)`` highest pixels (ties: lower index first)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"top-k fraction must be in (0, 1], got {fraction}")
    flat = jnp.ravel(heatmap)
    k = max(1, round(fraction * flat.size))
    order = jnp.argsort(-flat, stable=True)
    return jnp.zeros(flat.shape, bool).at[order[:k]].set(True).reshape(jnp.shape(heatmap))


@jax.jit
def iou(mask_a: Array, mask_b: Array) -> Array:
    """Intersection over union of two boolean masks ``[H, W]`` (0 when both are empty)."""
    _same_shape(mask_a, mask_b, "iou")
    inter = jnp.logical_and(mask_a, mask_b).sum()
    union = jnp.logical_or(mask_a, mask_b).sum()
    return jnp.where(union > 0, inter / jnp.maximum(union, 1), 0.0)


@functools.partial(jax.jit, static_argnames=("fraction",))
def top_k_iou(a: Array, b: Array, *, fraction: float = 0.2) -> Array:
    """IoU of the top-``fraction`` regions of two heatmaps ``[H, W]``."""
    _same_shape(a, b, "top_k_iou")
    return iou(top_k_region(a, fraction), top_k_region(b, fraction))


@functools.partial(jax.jit, static_argnames=("fraction",))
def mask_iou(heatmap: Array, mask: Array, *, fraction: float = 0.2) -> Array:
    """IoU of a heatmap's top-``fraction`` region with a boolean mask ``[H, W]`` (e.g. a human's, the ink)."""
    _same_shape(heatmap, mask, "mask_iou")
    return iou(top_k_region(heatmap, fraction), jnp.asarray(mask, bool))


@functools.partial(jax.jit, static_argnames=("tolerance",))
def pointing_game(heatmap: Array, mask: Array, *, tolerance: float = 0.0) -> Array:
    """Whether the heatmap's maximum lies within ``tolerance`` pixels of the mask (Zhang et al., 2016).

    Args:
        heatmap: ``[H, W]``.
        mask: boolean ``[H, W]``, the region the heatmap should point at.
        tolerance: distance in pixels (the original protocol uses 15 on ImageNet-sized images).

    Returns:
        A boolean scalar: a hit.
    """
    _same_shape(heatmap, mask, "pointing_game")
    height, width = jnp.shape(heatmap)
    py, px = jnp.unravel_index(jnp.argmax(heatmap), (height, width))
    yy, xx = jnp.mgrid[:height, :width]
    dist2 = (yy - py) ** 2 + (xx - px) ** 2
    return jnp.where(jnp.asarray(mask, bool), dist2, jnp.inf).min() <= tolerance**2


def centroid(heatmap: Array) -> Array:
    """``(row, col)`` centre of mass of the positive part of ``heatmap [H, W]`` (image centre if none)."""
    w = jax.nn.relu(heatmap)
    height, width = jnp.shape(heatmap)
    yy, xx = jnp.mgrid[:height, :width]
    total = w.sum()
    centre = jnp.array([(height - 1) / 2, (width - 1) / 2])
    point = jnp.stack([(w * yy).sum(), (w * xx).sum()]) / jnp.where(total > 0, total, 1)
    return jnp.where(total > 0, point, centre)


@jax.jit
def centroid_shift(a: Array, b: Array) -> Array:
    """Distance in pixels between the centres of mass of two heatmaps ``[H, W]`` (the attention shift)."""
    _same_shape(a, b, "centroid_shift")
    return jnp.linalg.norm(centroid(b) - centroid(a))


class Agreement(NamedTuple):
    """Agreement between heatmaps ``a`` and ``b``.

    Attributes:
        spearman: rank correlation over all pixels.
        top_k_iou: IoU of their top-``fraction`` regions.
        pointing: whether ``b``'s maximum falls in ``a``'s top-``fraction`` region.
        centroid_shift: pixels between their centres of mass.
    """

    spearman: Array
    top_k_iou: Array
    pointing: Array
    centroid_shift: Array


@functools.partial(jax.jit, static_argnames=("fraction",))
def compare_heatmaps(a: Array, b: Array, *, fraction: float = 0.2) -> Agreement:
    """All agreement numbers between two heatmaps ``[H, W]`` (methods, clean vs adversarial, two models)."""
    _same_shape(a, b, "compare_heatmaps")
    return Agreement(
        spearman=spearman(a, b),
        top_k_iou=top_k_iou(a, b, fraction=fraction),
        pointing=pointing_game(b, top_k_region(a, fraction)),
        centroid_shift=centroid_shift(a, b),
    )


def load_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None, *, threshold: float = 0.5) -> np.ndarray:
    """Reads a human-drawn mask PNG as a boolean ``[H, W]`` array.

    Marked pixels are the bright ones of the image's luminance, or the opaque ones when the PNG has a
    non-trivial alpha channel (a drawing on a transparent layer).

    Args:
        path: PNG (or any image PIL reads).
        shape: ``(H, W)`` to resize to (nearest neighbour), e.g. the heatmap's; default the file's size.
        threshold: fraction of full intensity (or opacity) above which a pixel is marked.
    """
    if not os.path.isfile(path):
        raise ValueError(f"mask file {os.fspath(path)!r} does not exist; pass the path of a PNG")
    with Image.open(path) as img:
        img.load()
        alpha = img.getchannel("A") if "A" in img.getbands() else None
        if alpha is not None and alpha.getextrema()[0] < 255:
            channel = alpha
        else:
            channel = img.convert("L")
    if shape is not None:
        channel = channel.resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(channel, np.float32) / 255.0 > threshold


@functools.partial(jax.jit, static_argnames=("fraction",))
def _compare_stacks(a: Array, b: Array, fraction: float) -> Agreement:
    return jax.vmap(lambda u, v: compare_heatmaps(u, v, fraction=fraction))(a, b)


def compare_stacks(a: Array | np.ndarray, b: Array | np.ndarray, *, fraction: float = 0.2) -> dict[str, np.ndarray]:
    """:func:`compare_heatmaps` of each pair of two stacks of heatmaps ``[N, H, W]``: ``{number: [N]}``."""
    if np.shape(a) != np.shape(b) or np.ndim(a) != 3:
        raise ValueError(f"compare_stacks needs two [N, height, width] stacks of one shape, got {np.shape(a)} and "
                         f"{np.shape(b)}")
    return {k: np.asarray(v) for k, v in _compare_stacks(jnp.asarray(a), jnp.asarray(b), fraction)._asdict().items()}


def finite_mean(values: Array | np.ndarray | list) -> float | None:
    """The mean of the finite entries of ``values`` (a rank correlation of a constant map is NaN); ``None`` if none."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def mean_agreement(agreement: dict[str, np.ndarray]) -> dict[str, float | None]:
    """``{"mean_<number>": finite mean}`` of a :func:`compare_stacks` result."""
    return {f"mean_{k}": finite_mean(v) for k, v in agreement.items()}


def against_mask(maps: dict[str, Array], mask: Array, *, fraction: float = 0.2,
                 tolerance: float = 0.0) -> dict[str, dict[str, float | bool]]:
    """For each heatmap ``[H, W]`` of ``maps``: its top-``fraction`` IoU with ``mask [H, W]`` and the pointing game."""
    return {name: {"top_k_iou": float(mask_iou(m, mask, fraction=fraction)),
                   "pointing": bool(pointing_game(m, mask, tolerance=tolerance))} for name, m in maps.items()}
