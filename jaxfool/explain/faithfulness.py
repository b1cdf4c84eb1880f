"""Is an explanation faithful to the model? Deletion and insertion curves, ROAD, infidelity, max-sensitivity.

Each metric takes ONE example ``x [H, W, C]``, its class and its explanation, and is one jitted program whose
perturbed forward passes run as batches (chunks of ``batch_size``); ``jax.vmap`` them over examples.

* :func:`deletion_curve` / :func:`insertion_curve` (Petsiuk et al., 2018, RISE): the class probability as the
  most salient pixels are removed (replaced by ``baseline``) or inserted into a blurred copy, ``steps`` equal
  fractions at a time; :func:`auc` of the curve (deletion: lower is better; insertion: higher is better).
* :func:`road` (Rong et al., 2022): Remove And Debias -- removed pixels are imputed from their neighbours by
  noisy linear imputation (the harmonic interpolation the paper's ``NoisyLinearImputer`` solves, here by
  conjugate gradients) so the removal itself does not leak the mask's shape; most-relevant-first (``"morf"``) or
  least-relevant-first (``"lerf"``).
* :func:`infidelity` and :func:`max_sensitivity` (Yeh et al., 2019) as Captum's ``infidelity`` and
  ``sensitivity_max`` define them (the tests hold them to Captum).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, class_score, class_scores
from jaxfool.models.network import Network, Params, forward

Array = jax.Array


def _order_masks(heatmap: Array, fractions: Array) -> Array:
    """``[k, H, W]``: True where a pixel is among the ``round(f * H * W)`` most salient (ties: lower index first)."""
    flat = jnp.ravel(heatmap)
    rank = jnp.zeros(flat.shape, jnp.int32).at[jnp.argsort(-flat, stable=True)].set(jnp.arange(flat.size))
    counts = jnp.round(fractions * flat.size).astype(jnp.int32)
    return (rank[None] < counts[:, None]).reshape(-1, *heatmap.shape)


def auc(curve: Array) -> Array:
    """Area under a curve sampled at equal steps over ``[0, 1]`` (trapezoid rule): ``curve [k + 1]`` -> scalar."""
    curve = jnp.asarray(curve)
    return (curve.sum() - 0.5 * (curve[0] + curve[-1])) / (curve.shape[0] - 1)


@functools.partial(xla.jit, static_argnames=("net", "steps", "score", "batch_size", "insert", "blur_sigma"))
def _curve(net, params, x, label, heatmap, baseline, *, steps, score, batch_size, insert, blur_sigma):
    from jaxfool.visualize import gaussian_blur  # visualize imports explain: import here, not at module level

    masks = _order_masks(heatmap, jnp.linspace(0.0, 1.0, steps + 1))[..., None]
    if insert:
        start = gaussian_blur(x, blur_sigma)
        images = jnp.where(masks, x, start)
    else:
        images = jnp.where(masks, jnp.broadcast_to(baseline, x.shape), x)
    return class_scores(net, params, images, label, score=score, batch_size=batch_size)


def _check_map(net: Network, x, label, heatmap, score: str, steps: int, batch_size: int) -> None:
    check_example(net, x, label)
    check_score(score)
    if tuple(np.shape(heatmap)) != tuple(np.shape(x)[:2]):
        raise ValueError(f"heatmap has shape {np.shape(heatmap)}, expected the image's {np.shape(x)[:2]} "
                         "(upsample CAMs to the input size first)")
    if int(steps) < 1 or int(batch_size) < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")


def deletion_curve(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    heatmap: Array,
    *,
    steps: int = 32,
    baseline: float | Array = 0.0,
    score: str = "probability",
    batch_size: int = 64,
) -> Array:
    """The class score as the most salient pixels are replaced by ``baseline``: ``[steps + 1]``.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the explained class.
        heatmap: ``[H, W]``, higher = more salient (all channels of a pixel go together).
        steps: the curve has ``steps + 1`` points, at ``0, 1/steps, ..., 1`` of the pixels removed.
        baseline: the value of removed pixels (a number, or an image ``[H, W, C]``); Petsiuk et al. use 0.
        score: ``"probability"`` (the paper's) or ``"logit"``.
        batch_size: perturbed images per forward pass.
    """
    _check_map(net, x, label, heatmap, score, steps, batch_size)
    return _curve(net, params, x, label, heatmap, jnp.asarray(baseline, x.dtype), steps=int(steps), score=score,
                  batch_size=int(batch_size), insert=False, blur_sigma=0.0)


def insertion_curve(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    heatmap: Array,
    *,
    steps: int = 32,
    blur_sigma: float = 5.0,
    score: str = "probability",
    batch_size: int = 64,
) -> Array:
    """The class score as the most salient pixels of ``x`` are inserted into a Gaussian-blurred copy
    (``blur_sigma`` pixels; Petsiuk et al.: sigma 5): ``[steps + 1]``; other arguments as :func:`deletion_curve`."""
    _check_map(net, x, label, heatmap, score, steps, batch_size)
    if blur_sigma <= 0:
        raise ValueError(f"blur_sigma must be > 0, got {blur_sigma}")
    return _curve(net, params, x, label, heatmap, jnp.zeros((), x.dtype), steps=int(steps), score=score,
                  batch_size=int(batch_size), insert=True, blur_sigma=float(blur_sigma))


# Noisy linear imputation: each removed pixel equals the weighted mean of its 8 neighbours (direct 1/6,
# diagonal 1/12, as ROAD's NoisyLinearImputer), neighbours outside the image left out.
_NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def _shift(a: Array, dy: int, dx: int) -> Array:
    """``out[i, j] = a[i + dy, j + dx]``, zero outside."""
    h, w = a.shape[:2]
    pad = jnp.pad(a, ((1, 1), (1, 1)) + ((0, 0),) * (a.ndim - 2))
    return pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def impute(x: Array, removed: Array, *, key: Array, noise: float = 0.01, iterations: int = 400) -> Array:
    """ROAD's noisy linear imputation of the ``removed [H, W]`` pixels of ``x [H, W, C]``.

    Solves ``sum_n w_n (u_p - u_n) = 0`` for every removed pixel ``p`` (kept pixels fixed) by conjugate
    gradients on that symmetric positive-definite system, then adds Gaussian noise of std ``noise`` to the
    imputed pixels.
    """
    inside = jnp.ones(x.shape[:2], x.dtype)
    degree = sum(w * _shift(inside, dy, dx) for dy, dx, w in _NEIGHBOURS)[..., None]
    r = removed[..., None].astype(x.dtype)
    kept = x * (1 - r)

    def laplacian(u):  # restricted to removed pixels; u is zero on kept ones
        u = u * r
        return r * (degree * u - sum(w * _shift(u, dy, dx) for dy, dx, w in _NEIGHBOURS))

    rhs = r * sum(w * _shift(kept, dy, dx) for dy, dx, w in _NEIGHBOURS)
    u, _ = jax.scipy.sparse.linalg.cg(laplacian, rhs, x0=kept * 0 + r * x.mean(), maxiter=iterations)
    return kept + r * (u + noise * jax.random.normal(key, x.shape, x.dtype))


@functools.partial(xla.jit, static_argnames=("net", "score", "batch_size", "lerf"))
def _road(net, params, x, label, heatmap, fractions, key, noise, *, score, batch_size, lerf):
    masks = _order_masks(-heatmap if lerf else heatmap, fractions)
    keys = jax.random.split(key, fractions.shape[0])
    images = jax.vmap(lambda m, k: impute(x, m, key=k, noise=noise))(masks, keys)
    return class_scores(net, params, images, label, score=score, batch_size=batch_size)


def road(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    heatmap: Array,
    *,
    key: Array,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    order: str = "morf",
    noise: float = 0.01,
    score: str = "probability",
    batch_size: int = 16,
) -> Array:
    """ROAD: the class score after imputing each fraction of pixels, ``[len(fractions)]``.

    ``order="morf"`` removes the most relevant pixels first (a faithful map makes the score fall fast),
    ``"lerf"`` the least relevant first (it should stay high). ``noise``: imputation noise std in pixel units.
    """
    _check_map(net, x, label, heatmap, score, 1, batch_size)
    if order not in ("morf", "lerf"):
        raise ValueError(f"unknown ROAD order {order!r}; use 'morf' or 'lerf'")
    fractions = np.asarray(fractions, np.float32)
    if fractions.ndim != 1 or fractions.size == 0 or (fractions < 0).any() or (fractions > 1).any() or noise < 0:
        raise ValueError(f"ROAD needs fractions in [0, 1] and noise >= 0, got {fractions.tolist()} and {noise}")
    return _road(net, params, x, label, heatmap, jnp.asarray(fractions), key, jnp.asarray(noise, x.dtype),
                 score=score, batch_size=int(batch_size), lerf=order == "lerf")


@functools.partial(xla.jit, static_argnames=("net", "num_samples", "score", "normalize", "batch_size"))
def _infidelity(net, params, x, label, attribution, key, noise, *, num_samples, score, normalize, batch_size):
    perturbations = noise * jax.random.normal(key, (num_samples, *x.shape), x.dtype)
    value = class_score(forward(net, params, x[None])[0][0], label, score)
    diffs = value - class_scores(net, params, x[None] - perturbations, label, score=score, batch_size=batch_size)
    dots = jnp.einsum("nhwc,hwc->n", perturbations, attribution)
    if normalize:  # the attribution's best scale beta, as Captum's normalize=True
        beta = jnp.where((dots**2).sum() != 0, (dots * diffs).sum() / (dots**2).sum(), 0.0)
        dots = beta * dots
    return jnp.mean((dots - diffs) ** 2)


def infidelity(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    attribution: Array,
    *,
    key: Array,
    noise: float = 0.003,
    num_samples: int = 64,
    normalize: bool = False,
    score: str = "logit",
    batch_size: int = 64,
) -> Array:
    """Infidelity (Yeh et al., 2019): ``E_I[(I . attribution - (f(x) - f(x - I)))^2]`` over Gaussian
    perturbations ``I ~ N(0, noise^2)`` of every pixel; lower is more faithful. ``attribution``: ``[H, W, C]``."""
    check_example(net, x, label)
    check_score(score)
    if np.shape(attribution) != np.shape(x):
        raise ValueError(f"attribution has shape {np.shape(attribution)}, expected the image's {np.shape(x)}")
    if noise <= 0 or int(num_samples) < 1 or int(batch_size) < 1:
        raise ValueError(f"infidelity needs noise > 0 and num_samples, batch_size >= 1, got {noise}, {num_samples}, "
                         f"{batch_size}")
    return _infidelity(net, params, x, label, attribution, key, jnp.asarray(noise, x.dtype),
                       num_samples=int(num_samples), score=score, normalize=normalize, batch_size=int(batch_size))


def max_sensitivity(
    explanation: Callable[[Array], Array],
    x: Array,
    *,
    key: Array,
    radius: float = 0.02,
    num_samples: int = 10,
) -> Array:
    """Max-sensitivity (Yeh et al., 2019): ``max_d ||e(x + d) - e(x)|| / ||e(x)||`` over ``d ~ U(-radius,
    radius)`` per pixel (Frobenius norms; unnormalised where ``e(x) = 0``), as Captum's ``sensitivity_max``.

    Args:
        explanation: ``x [H, W, C] -> attribution`` for one example (e.g. ``lambda v: saliency(net, p, v, y)``);
            it is vmapped over the perturbed copies.
        x: one example ``[H, W, C]``.
        key: PRNG key of the perturbations.
        radius: the perturbation's L-inf radius in pixel units.
        num_samples: perturbed copies; the maximum over them is returned.
    """
    if radius < 0 or int(num_samples) < 1:
        raise ValueError(f"max_sensitivity needs radius >= 0 and num_samples >= 1, got {radius} and {num_samples}")
    d = jax.random.uniform(key, (int(num_samples), *np.shape(x)), jnp.float32, -radius, radius)
    base = explanation(x)
    diffs = jax.vmap(lambda v: jnp.linalg.norm(jnp.ravel(explanation(v) - base)))(x[None] + d)
    norm = jnp.linalg.norm(jnp.ravel(base))
    return jnp.max(jnp.where(norm != 0, diffs / norm, diffs))
