"""The threat models: an L-inf or L2 ball of radius ``eps`` around the input, as small pure functions.

Each :class:`Norm` bundles what the step loop needs from a norm: its value, the steepest-ascent direction of unit
norm, the projection onto the ball and a uniform sample from it. ``eps`` may be a traced value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special

Array = jax.Array
_TINY = 1e-12  # keeps divisions by a zero gradient or a zero perturbation finite


class Norm(NamedTuple):
    """A perturbation norm.

    Attributes:
        name: ``"linf"`` or ``"l2"``.
        measure: ``delta -> ||delta||``.
        steepest: ``g -> argmax_{||d|| <= 1} <g, d>``: ``sign(g)`` for L-inf, ``g / ||g||_2`` for L2.
        project: ``(delta, eps) -> `` the closest point of the ``eps``-ball.
        sample: ``(u, shape, eps) -> `` a point drawn uniformly from the ``eps``-ball, computed from
            ``u: [prod(shape) + 1]`` uniform numbers in ``[0, 1)`` (drawn by the caller in one PRNG call, because each
            PRNG call site costs XLA:CPU about half a second of compile time).
    """

    name: str
    measure: Callable[[Array], Array]
    steepest: Callable[[Array], Array]
    project: Callable[[Array, Array], Array]
    sample: Callable[[Array, tuple[int, ...], Array], Array]

    @staticmethod
    def num_uniforms(shape: tuple[int, ...]) -> int:
        """Length of the ``u`` that :attr:`sample` takes for a perturbation of ``shape``."""
        return math.prod(shape) + 1


def _l2(delta: Array) -> Array:
    return jnp.sqrt(jnp.sum(delta * delta))


def _l2_project(delta: Array, eps: Array) -> Array:
    return delta * jnp.minimum(1.0, eps / jnp.maximum(_l2(delta), _TINY))


def _l2_sample(u: Array, shape: tuple[int, ...], eps: Array) -> Array:
    # Uniform in the ball: a uniform direction (normalised Gaussian, by the inverse normal CDF) at radius
    # eps * U^(1/d).
    size = math.prod(shape)
    direction = jax.scipy.special.ndtri(jnp.clip(u[:size], 1e-7, 1.0 - 1e-7)).reshape(shape)
    radius = eps * u[size] ** (1.0 / size)
    return direction * (radius / jnp.maximum(_l2(direction), _TINY))


LINF = Norm(
    name="linf",
    measure=lambda delta: jnp.max(jnp.abs(delta)),
    steepest=jnp.sign,
    project=lambda delta, eps: jnp.clip(delta, -eps, eps),
    sample=lambda u, shape, eps: eps * (2.0 * u[: math.prod(shape)] - 1.0).reshape(shape),
)
L2 = Norm(
    name="l2",
    measure=_l2,
    steepest=lambda g: g / jnp.maximum(_l2(g), _TINY),
    project=_l2_project,
    sample=_l2_sample,
)
NORMS = {"linf": LINF, "l2": L2}


def get_norm(name: str) -> Norm:
    """The :class:`Norm` called ``name``, or a one-line error naming the valid ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; valid norms: {', '.join(NORMS)}")
    return NORMS[name]
