"""Pixel attributions from input gradients: saliency, SmoothGrad and integrated gradients.

Each returns one attribution per input value, ``[H, W, C]``; :func:`jaxfool.explain.to_heatmap` reduces it to
``[H, W]`` for display and agreement metrics.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, input_gradients
from jaxfool.models.network import Network, Params

Array = jax.Array


@functools.partial(xla.jit, static_argnames=("net", "score", "absolute"))
def _saliency(net, params, x, label, score, absolute):
    g = input_gradients(net, params, x[None], label, score=score)[0]
    return jnp.abs(g) if absolute else g


def saliency(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    score: str = "logit",
    absolute: bool = True,
) -> Array:
    """Gradient of the class score with respect to ``x [H, W, C]`` (Simonyan et al., 2014): ``[H, W, C]``.

    ``absolute`` takes its magnitude, as Captum's ``Saliency`` does by default.
    """
    check_example(net, x, label)
    return _saliency(net, params, x, label, check_score(score), absolute)


@functools.partial(xla.jit, static_argnames=("net", "num_samples", "score", "squared", "batch_size"))
def _smooth_grad(net, params, x, label, key, noise, num_samples, score, squared, batch_size):
    # The paper's (and PAIR's saliency code's) sigma is relative to this image's own range, not the model's bounds.
    eps = jax.random.normal(key, (num_samples, *x.shape), x.dtype) * (noise * (x.max() - x.min()))
    g = input_gradients(net, params, x[None] + eps, label, score=score, batch_size=batch_size)
    return (g**2 if squared else g).mean(axis=0)


def smooth_grad(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    key: Array,
    num_samples: int = 32,
    noise: float = 0.15,
    score: str = "logit",
    squared: bool = False,
    batch_size: int | None = None,
) -> Array:
    """SmoothGrad (Smilkov et al., 2017): the input gradient averaged over Gaussian-noised copies of ``x``.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        key: PRNG key for the noise.
        num_samples: noisy copies.
        noise: noise standard deviation as a fraction of the image's range ``x.max() - x.min()`` (Smilkov et al.
            use 0.1-0.2; 0.15 here).
        score: ``"logit"`` or ``"probability"``.
        squared: average squared gradients (SmoothGrad-SQ, Hooker et al., 2019).
        batch_size: copies per backward pass (memory bound); default all at once.

    Returns:
        ``[H, W, C]``.
    """
    check_example(net, x, label)
    if num_samples < 1 or noise < 0:
        raise ValueError(f"smooth_grad needs num_samples >= 1 and noise >= 0, got {num_samples} and {noise}")
    return _smooth_grad(net, params, x, label, key, noise, int(num_samples), check_score(score), squared,
                        batch_size)


@functools.partial(xla.jit, static_argnames=("net", "steps", "score", "batch_size"))
def _integrated_gradients(net, params, x, label, baseline, steps, score, batch_size):
    baseline = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    alphas = (jnp.arange(steps, dtype=x.dtype) + 0.5) / steps  # midpoint Riemann sum
    path = baseline + alphas[:, None, None, None] * (x - baseline)
    g = input_gradients(net, params, path, label, score=score, batch_size=batch_size)
    return (x - baseline) * g.mean(axis=0)


def integrated_gradients(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    baseline: float | Array = 0.0,
    steps: int = 32,
    score: str = "logit",
    batch_size: int | None = None,
) -> Array:
    """Integrated gradients (Sundararajan et al., 2017) from ``baseline`` to ``x``: ``[H, W, C]``.

    The path integral is a midpoint Riemann sum over ``steps`` points (Captum's ``method="riemann_middle"``),
    so the attributions sum to about ``score(x) - score(baseline)``.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        baseline: a pixel value or an image ``[H, W, C]`` (e.g. black, blurred).
        steps: points on the straight path.
        score: ``"logit"`` or ``"probability"``.
        batch_size: path points per backward pass (memory bound); default all at once.
    """
    check_example(net, x, label)
    if steps < 1:
        raise ValueError(f"integrated_gradients needs steps >= 1, got {steps}")
    if np.ndim(baseline) and np.shape(baseline) != np.shape(x):
        raise ValueError(f"baseline has shape {np.shape(baseline)}, expected a number or the image's {np.shape(x)}")
    return _integrated_gradients(net, params, x, label, baseline, int(steps), check_score(score), batch_size)


REDUCTIONS = ("abs_max", "abs_sum", "sum")


def to_heatmap(attribution: Array, reduce: str = "abs_max") -> Array:
    """Reduces pixel attributions ``[H, W, C]`` over channels to a heatmap ``[H, W]``.

    ``"abs_max"``: largest magnitude over channels (Simonyan et al.); ``"abs_sum"``: summed magnitudes;
    ``"sum"``: signed sum (keeps the direction, e.g. for integrated gradients).
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduce!r}; use one of: {', '.join(REDUCTIONS)}")
    if reduce == "sum":
        return attribution.sum(axis=-1)
    mag = jnp.abs(attribution)
    return mag.max(axis=-1) if reduce == "abs_max" else mag.sum(axis=-1)
