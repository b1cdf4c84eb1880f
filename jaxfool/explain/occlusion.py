"""Occlusion sensitivity (Zeiler & Fergus, 2014), defined exactly as Captum's ``Occlusion``.

A window slides over the image with the given stride, starting at the top-left corner; window ``k`` starts at
``k * stride`` and the last one is clipped at the image border, so there are ``ceil((H - h) / s) + 1`` positions
per axis. Each occluded copy replaces the pixels under the window (all channels) by the baseline. The
attribution of a pixel is the drop of the class score, ``score(x) - score(occluded)``, averaged over the windows
that cover it. The copies are evaluated ``batch_size`` at a time, so memory stays bounded for any image.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, class_score, pair
from jaxfool.models.network import Network, Params, forward

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Occlusion:
    """The static part of occlusion: what fixes the compiled program. Hashable: a static argument of ``jax.jit``.

    Attributes:
        window: occluding window ``(height, width)`` in pixels, or one int for a square.
        stride: step between windows; ``None``: half the window (at least 1).
        score: ``"logit"`` or ``"probability"`` of the explained class.
        batch_size: occluded copies per forward pass (bounds memory).
    """

    window: int | tuple[int, int] = 4
    stride: int | tuple[int, int] | None = None
    score: str = "logit"
    batch_size: int = 64

    def __post_init__(self):
        pair(self.window, "occlusion window")
        if self.stride is not None:
            pair(self.stride, "occlusion stride")
        check_score(self.score)
        if self.batch_size < 1:
            raise ValueError(f"occlusion batch_size must be >= 1, got {self.batch_size}")

    def __call__(self, net: Network, params: Params, x: Array, label: Array | int,
                 hyper: OcclusionParams | None = None) -> Array:
        """:func:`occlusion` of one example ``x: [H, W, C]`` with these settings; returns ``[H, W]``."""
        hyper = hyper if hyper is not None else OcclusionParams()
        return occlusion(net, params, x, label, window=self.window, stride=self.stride, baseline=hyper.baseline,
                         score=self.score, batch_size=self.batch_size)


class OcclusionParams(NamedTuple):
    """Traced settings of occlusion.

    Attributes:
        baseline: the occluding value: a number or an image ``[H, W, C]``.
    """

    baseline: ArrayLike = 0.0


@dataclasses.dataclass
class OcclusionConfig:
    """Occlusion settings as experiment configs nest them (mutable: the command line edits them).

    :meth:`build` turns them into the static :class:`Occlusion` and the traced :class:`OcclusionParams`.

    Attributes:
        window: occluding window ``(height, width)`` in pixels, or one int for a square.
        stride: step between windows; ``None``: half the window (at least 1).
        baseline: the occluding pixel value (``0.0`` black on MNIST; the mean pixel is common on ImageNet).
        score: ``"logit"`` or ``"probability"`` of the explained class.
        batch_size: occluded copies per forward pass (bounds memory).
    """

    window: int | tuple[int, int] = 4
    stride: int | tuple[int, int] | None = None
    baseline: float = 0.0
    score: str = "logit"
    batch_size: int = 64

    def validate(self) -> None:
        self.build()

    def build(self) -> tuple[Occlusion, OcclusionParams]:
        """The static settings and the traced ones (raises a one-line error for settings that cannot run)."""
        spec = Occlusion(window=_hashable(self.window), stride=_hashable(self.stride), score=self.score,
                         batch_size=self.batch_size)
        return spec, OcclusionParams(baseline=float(self.baseline))


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def window_starts(size: int, window: int, stride: int) -> np.ndarray:
    """Start offsets of the occluding window along one axis of length ``size`` (Captum's shift counts)."""
    return np.arange(math.ceil((size - window) / stride) + 1) * stride


def occlusion(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    window: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    baseline: float | Array = 0.0,
    score: str = "logit",
    batch_size: int = 64,
) -> Array:
    """Occlusion sensitivity map of class ``label`` for one example.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        window: occluding window ``(height, width)``, or one int for a square.
        stride: step ``(height, width)`` between windows; default half the window. At most the window, so
            that every pixel is covered (unless the window spans that axis).
        baseline: occluding value: a number or an image ``[H, W, C]``.
        score: ``"logit"`` (Captum's target output when the model returns logits) or ``"probability"``.
        batch_size: occluded copies per forward pass (memory bound).

    Returns:
        ``[H, W]``: mean over the windows covering each pixel of ``score(x) - score(occluded)``; equal to
        Captum's ``Occlusion(...).attribute(x, target=label, sliding_window_shapes=(C, h, w),
        strides=(C, sh, sw), baselines=baseline)`` on any channel. Jittable (static window, stride, batch).
    """
    check_example(net, x, label)
    check_score(score)
    height, width = x.shape[:2]
    wh, ww = pair(window, "occlusion window")
    if wh > height or ww > width:
        raise ValueError(
            f"occlusion window ({wh}, {ww}) is larger than the image ({height}, {width}); use at most the image size"
        )
    sh, sw = pair(stride if stride is not None else (max(1, wh // 2), max(1, ww // 2)), "occlusion stride")
    if (sh > wh and wh < height) or (sw > ww and ww < width):
        raise ValueError(
            f"occlusion stride ({sh}, {sw}) exceeds the window ({wh}, {ww}), leaving pixels uncovered; "
            "use a stride of at most the window"
        )
    if np.ndim(baseline) and np.shape(baseline) != tuple(x.shape):
        raise ValueError(f"baseline has shape {np.shape(baseline)}, expected a number or the image's {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"occlusion batch_size must be >= 1, got {batch_size}")
    spec = Occlusion(window=(wh, ww), stride=(sh, sw), score=score, batch_size=int(batch_size))
    return _occlusion(net, params, x, label, spec, OcclusionParams(baseline))


def _cover(size: int, window: int, stride: int) -> np.ndarray:
    """``[num_windows, size]``: which pixels each window position covers."""
    starts = window_starts(size, window, stride)
    pixels = np.arange(size)
    return (pixels >= starts[:, None]) & (pixels < starts[:, None] + window)


@functools.partial(xla.jit, static_argnames=("net", "spec"))
def _occlusion(net, params, x, label, spec, hyper):
    window, stride, score, batch_size = spec.window, spec.stride, spec.score, spec.batch_size
    rows = _cover(x.shape[0], window[0], stride[0])  # [ny, H]
    cols = _cover(x.shape[1], window[1], stride[1])  # [nx, W]
    ny, nx = len(rows), len(cols)
    num = ny * nx
    size = min(batch_size, num)
    chunks = -(-num // size)
    baseline = jnp.broadcast_to(jnp.asarray(hyper.baseline, x.dtype), x.shape)
    rows_j, cols_j = jnp.asarray(rows), jnp.asarray(cols)

    def scores(xs):
        return jax.vmap(lambda lg: class_score(lg, label, score))(forward(net, params, xs)[0])

    def occluded_scores(ids):
        cover = rows_j[ids // nx][:, :, None] & cols_j[ids % nx][:, None, :]  # [batch, H, W]
        return scores(jnp.where(cover[..., None], baseline, x))

    # Padding ids repeat window 0; their scores are dropped. A scan over chunks (not a Python loop) keeps the
    # compiled program one chunk big; for forward passes it ran as fast as the unrolled loop on XLA:CPU.
    ids = jnp.arange(chunks * size).reshape(chunks, size) % num
    occluded = jax.lax.map(occluded_scores, ids).reshape(-1)[:num]
    drop = (scores(x[None])[0] - occluded).reshape(ny, nx)
    total = jnp.einsum("yx,yh,xw->hw", drop, rows_j.astype(x.dtype), cols_j.astype(x.dtype))
    count = np.outer(rows.sum(0), cols.sum(0))
    return total / jnp.asarray(count, x.dtype)
