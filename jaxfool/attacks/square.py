"""Square Attack (Andriushchenko et al. 2020): a score-based black-box attack, L-inf and L2, one example at a time.

Each query changes one random square window of the current best perturbation (L-inf: to a random vertex
``+-eps`` per channel; L2: a re-weighted "double stripe" pattern that moves mass between two windows) and keeps it
if the margin loss ``z_y - max_{j != y} z_j`` fell. The window's side follows the reference's schedule of ``p``
(the fraction of pixels changed), halved at query 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000,
rescaled to the query budget. A query budget is spent only until the example is misclassified; under ``jax.vmap``
the batch stops when every example has.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_THRESHOLDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(query: Array, n_queries: int, p_init: float = 0.8) -> Array:
    """Fraction of pixels changed at ``query`` (0-based) of ``n_queries``: the reference's piecewise schedule."""
    it = (jnp.asarray(query, jnp.int32) * 10000) // n_queries
    halvings = sum((it > t).astype(jnp.int32) for t in _THRESHOLDS)
    return p_init / (2.0 ** halvings.astype(jnp.float32))


def _level(query: Array, n_queries: int) -> Array:
    it = (jnp.asarray(query, jnp.int32) * 10000) // n_queries
    return sum((it > t).astype(jnp.int32) for t in _THRESHOLDS)


def _sides(height: int, width: int, p_init: float, *, minimum: int, odd: bool) -> np.ndarray:
    """Window side at each of the 10 schedule levels (``round(sqrt(p * H * W))``, clipped to the image)."""
    out = []
    for level in range(len(_THRESHOLDS) + 1):
        s = max(int(round(math.sqrt(p_init / 2**level * height * width))), minimum)
        if odd and s % 2 == 0:
            s += 1
        out.append(min(s, height - 1, width - 1) if odd else min(s, height, width))
    return np.asarray(out, np.int32)


def _eta_rectangles(rows: int, cols: int) -> np.ndarray:
    delta = np.zeros((rows, cols))
    r, c = rows // 2 + 1, cols // 2 + 1
    corner = [r - 1, c - 1]
    for k in range(max(r, c)):
        delta[max(corner[0], 0) : min(corner[0] + 2 * k + 1, rows), max(0, corner[1]) : min(corner[1] + 2 * k + 1, cols)] += (
            1.0 / (k + 1) ** 2
        )
        corner[0] -= 1
        corner[1] -= 1
    return delta / np.sqrt((delta**2).sum())


def _eta(s: int) -> np.ndarray:
    """The reference's L2 window pattern: two stacked rectangles of opposite sign, unit L2 norm, ``[s, s]``."""
    delta = np.zeros((s, s))
    delta[: s // 2] = _eta_rectangles(s // 2, s)
    delta[s // 2 :] = -_eta_rectangles(s - s // 2, s)
    return delta / np.sqrt((delta**2).sum())


def _window(h: int, w: int, top: Array, left: Array, side: Array) -> Array:
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    return ((rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)).astype(jnp.float32)


def _margin(model, v: Array, label: Array) -> Array:
    logits = model(v[None])[0]
    others = jnp.where(jnp.arange(logits.shape[-1]) == label, -jnp.inf, logits)
    return logits[label] - others.max()


def square(
    model,
    x: Array,
    label: Array,
    eps: Array,
    *,
    key: Array,
    bounds: tuple[float, float],
    norm: str = "linf",
    n_queries: int = 5000,
    p_init: float = 0.8,
) -> Array:
    """Square Attack on one example.

    Args:
        model: ``x [batch, H, W, C] -> logits [batch, classes]`` (only its outputs are used).
        x: ``[H, W, C]`` inside ``bounds``.
        label: the true class.
        eps: radius of the ``norm`` ball.
        key: all the attack's randomness.
        bounds: valid ``(low, high)`` input range.
        norm: ``"linf"`` or ``"l2"``.
        n_queries: query budget (the reference's default: 5,000).
        p_init: initial fraction of pixels changed.

    Returns:
        ``x_adv: [H, W, C]`` inside ``bounds`` and within ``eps`` of ``x``.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"Square supports norm 'linf' or 'l2', got {norm!r}")
    h, w, c = x.shape
    eps = jnp.asarray(eps, x.dtype)
    init_key, loop_key = jax.random.split(key)
    if norm == "linf":
        sides = jnp.asarray(_sides(h, w, p_init, minimum=1, odd=False))
        # Vertical stripes of +-eps: one sign per column and channel.
        x_best = jnp.clip(x + eps * jax.random.rademacher(init_key, (1, w, c), x.dtype), *bounds)
    else:
        sides_np = _sides(h, w, p_init, minimum=3, odd=True)
        sides = jnp.asarray(sides_np)
        patterns = np.zeros((len(sides_np), h, w), np.float32)
        for i, s in enumerate(sides_np):
            patterns[i, :s, :s] = _eta(int(s))
        patterns = jnp.asarray(patterns)
        x_best = jnp.clip(x + eps * _l2_init(x, init_key), *bounds)

    margin0 = _margin(model, x_best, label)

    def cond(carry):
        i, _, margin, _ = carry
        return (i < n_queries) & (margin > 0)

    def body(carry):
        i, x_best, margin, loss = carry
        k_pos, k_sign, k_pos2, k_flip = jax.random.split(jax.random.fold_in(loop_key, i), 4)
        level = _level(i, n_queries)
        side = sides[level]
        top, left = (jax.random.randint(k, (), 0, jnp.maximum(dim - side, 1)) for k, dim in zip(jax.random.split(k_pos), (h, w)))
        mask = _window(h, w, top, left, side)[..., None]
        if norm == "linf":
            vertex = 2.0 * eps * jax.random.rademacher(k_sign, (c,), x.dtype)
            x_new = jnp.clip(jnp.clip(x_best + mask * vertex, x - eps, x + eps), *bounds)
        else:
            x_new = jnp.clip(x + _l2_step(x, x_best, eps, mask, patterns[level], side, top, left, k_sign, k_pos2, k_flip), *bounds)
        m = _margin(model, x_new, label)
        improved = (m < loss) | (m <= 0)
        return (
            i + 1,
            jnp.where(improved, x_new, x_best),
            jnp.where(improved, m, margin),
            jnp.minimum(m, loss),
        )

    _, x_best, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), x_best, margin0, margin0))
    return x_best


def _l2_init(x: Array, key: Array) -> Array:
    """The reference's L2 start: a grid of ``H // 5`` windows, each an eta pattern with a random sign per channel."""
    h, w, c = x.shape
    s = h // 5
    start = (h - 5 * s) // 2
    pattern = jnp.asarray(_eta(s), x.dtype)
    k_sign, k_flip = jax.random.split(key)
    n_rows, n_cols = h // s, w // s
    signs = jax.random.rademacher(k_sign, (n_rows, n_cols, c), x.dtype)
    flips = jax.random.bernoulli(k_flip, 0.5, (n_rows, n_cols))
    delta = jnp.zeros_like(x)
    for a in range(n_rows):
        for b in range(n_cols):
            top, left = start + a * s, start + b * s
            if top + s > h or left + s > w:
                continue
            p = jnp.where(flips[a, b], pattern.T, pattern)
            delta = delta.at[top : top + s, left : left + s].add(p[..., None] * signs[a, b])
    return delta / (jnp.sqrt(jnp.sum(delta * delta)) + 1e-12)


def _l2_step(x, x_best, eps, mask, pattern, side, top, left, k_sign, k_pos2, k_flip) -> Array:
    """One L2 proposal as a perturbation of unit norm times ``eps`` (the reference's window re-weighting)."""
    h, w, c = x.shape
    delta = x_best - x
    top2, left2 = (jax.random.randint(k, (), 0, jnp.maximum(dim - side, 1)) for k, dim in zip(jax.random.split(k_pos2), (h, w)))
    mask2 = _window(h, w, top2, left2, side)[..., None]
    # The pattern sits at the window's corner: shift it there (the window never wraps, so a roll is exact).
    pattern = jnp.where(jax.random.bernoulli(k_flip), pattern.T, pattern)
    placed = jnp.roll(pattern, (top, left), axis=(0, 1))[..., None]
    norm_window = jnp.sqrt(jnp.sum((delta * mask) ** 2, axis=(0, 1)))  # [C]
    norm_image = jnp.sqrt(jnp.sum(delta * delta))
    norm_windows = jnp.sqrt(jnp.sum((delta * jnp.maximum(mask, mask2)) ** 2))
    new = placed * jax.random.rademacher(k_sign, (c,), x.dtype) + delta * mask / (1e-12 + norm_window)
    new = new / (1e-12 + jnp.sqrt(jnp.sum((new * mask) ** 2, axis=(0, 1))))
    new = new * jnp.sqrt(jnp.maximum(eps**2 - norm_image**2, 0.0) / c + norm_windows**2)
    delta = delta * (1.0 - mask2)
    delta = delta * (1.0 - mask) + new * mask
    return eps * delta / (jnp.sqrt(jnp.sum(delta * delta)) + 1e-12)


@dataclasses.dataclass(frozen=True)
class Square:
    """Square as a component of :func:`~jaxfool.attacks.auto_attack` (``restarts`` runs of ``n_queries``)."""

    norm: str = "linf"
    n_queries: int = 5000
    restarts: int = 1
    p_init: float = 0.8
    name: str = "square"

    @property
    def runs(self) -> int:
        return self.restarts

    def __call__(self, model, x: Array, label: Array, eps: Array, run: Array, *, key: Array,
                 bounds: tuple[float, float]) -> Array:
        return square(model, x, label, eps, key=key, bounds=bounds, norm=self.norm, n_queries=self.n_queries,
                      p_init=self.p_init)
