"""Perlin-noise images and perturbations (Co et al. 2018, "Procedural noise adversarial examples").

Noise with lattice period ``nu`` pixels, ``octaves`` octaves (each of twice the frequency -- lacunarity 2 -- and
half the amplitude), min-max normalised to ``[0, 1]`` and passed through the sine colour map
``sin(noise * phi * pi)``, as in the authors' reference implementation. The result in ``[-1, 1]`` is used as a
standalone input (:func:`perlin_image`) or, as an L-inf perturbation (:func:`perlin_perturbation`), its sign times
``eps``, the same pattern on every colour channel. ``period`` and ``freq_sine`` are traced, so ``jax.vmap`` sweeps them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

Array = jax.Array
_TABLE = 256  # size of the permutation table that hashes lattice points to gradient directions


class PerlinParams(NamedTuple):
    """Traced Perlin-noise parameters.

    Attributes:
        period: lattice spacing of the first octave, in pixels (Co et al.'s ``nu``).
        freq_sine: frequency of the sine colour map (``phi_sine``).
    """

    period: ArrayLike = 16.0
    freq_sine: ArrayLike = 6.0


def perlin_noise(
    height: int, width: int, params: PerlinParams, *, key: Array, octaves: int = 4, lacunarity: float = 2.0
) -> Array:
    """Sine-mapped Perlin noise ``[height, width]`` in ``[-1, 1]``; ``key`` picks the lattice gradients."""
    if octaves < 1:
        raise ValueError(f"octaves={octaves} must be >= 1")
    perm = jax.random.permutation(key, _TABLE)
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij")
    total = jnp.zeros((height, width), jnp.float32)
    for octave in range(octaves):
        frequency = lacunarity**octave / jnp.asarray(params.period, jnp.float32)
        total = total + 0.5**octave * _gradient_noise(cols * frequency, rows * frequency, perm)
    normalised = (total - total.min()) / jnp.maximum(total.max() - total.min(), 1e-12)
    return jnp.sin(normalised * jnp.asarray(params.freq_sine, jnp.float32) * jnp.pi)


def perlin_image(
    shape: tuple[int, int, int], params: PerlinParams, *, key: Array, bounds: tuple[float, float], octaves: int = 4
) -> Array:
    """A standalone noise input ``[H, W, C]`` spanning ``bounds`` (a "fooling" input, not a perturbation)."""
    noise = perlin_noise(shape[0], shape[1], params, key=key, octaves=octaves)
    low, high = bounds
    return jnp.broadcast_to((low + (noise + 1.0) * 0.5 * (high - low))[..., None], shape)


def perlin_perturbation(
    x: Array, params: PerlinParams, *, key: Array, eps: ArrayLike, bounds: tuple[float, float], octaves: int = 4
) -> Array:
    """``x: [H, W, C]`` plus ``eps * sign(noise)``, clipped to ``bounds``; ``||result - x||_inf <= eps``.

    The sign, as in Co et al.'s code and every reference port: the perturbation then spends the whole L-inf budget
    at every pixel (``eps * noise`` would average 0.64 eps for the sine-mapped noise), so noise attacks are compared
    with gradient attacks at the same radius.
    """
    noise = perlin_noise(x.shape[0], x.shape[1], params, key=key, octaves=octaves)
    return jnp.clip(x + eps * jnp.sign(noise)[..., None], *bounds)


def _gradient_noise(u: Array, v: Array, perm: Array) -> Array:
    """Classic 2-D Perlin gradient noise at lattice coordinates ``(u, v)`` (any shape), roughly in ``[-1, 1]``."""
    u0, v0 = jnp.floor(u), jnp.floor(v)
    fu, fv = u - u0, v - v0
    i0, j0 = u0.astype(jnp.int32), v0.astype(jnp.int32)

    def corner(di: int, dj: int) -> Array:
        h = perm[(perm[(i0 + di) % _TABLE] + j0 + dj) % _TABLE]
        angle = 2.0 * jnp.pi * h / _TABLE
        return jnp.cos(angle) * (fu - di) + jnp.sin(angle) * (fv - dj)

    s, t = _fade(fu), _fade(fv)
    bottom = corner(0, 0) + s * (corner(1, 0) - corner(0, 0))
    top = corner(0, 1) + s * (corner(1, 1) - corner(0, 1))
    return (bottom + t * (top - bottom)) * jnp.sqrt(2.0)


def _fade(t: Array) -> Array:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
