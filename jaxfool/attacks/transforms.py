"""The small pure pieces an iterative attack is assembled from, in the style of optax.

* A :class:`GradientTransform` turns the raw input gradient into the step direction, carrying explicit state
  (momentum): :func:`steepest` (sign for L-inf, L2-normalise for L2), :func:`momentum`, composed by :func:`chain`.
* An :class:`InputTransform` is applied before each gradient evaluation: :data:`identity_input`, or
  :func:`input_diversity` (random resize and pad, Xie et al. 2019). It receives its randomness as uniform numbers
  that the step loop draws for all steps in one PRNG call: every PRNG call site in a program costs XLA:CPU about
  half a second of compile time, more than a small model's whole attack.

Hyperparameters (``params``, an :class:`~jaxfool.attacks.AttackParams`) are passed at call time, not closed
over, so they can be traced and swept with ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxfool.attacks.norms import Norm

Array = jax.Array


class GradientTransform(NamedTuple):
    """A gradient transformation with explicit state.

    Attributes:
        init: ``x -> state`` for an input ``x: [H, W, C]``.
        update: ``(grad, state, params) -> (direction, new_state)``.
    """

    init: Callable[[Array], Any]
    update: Callable[[Array, Any, Any], tuple[Array, Any]]


def steepest(norm: Norm) -> GradientTransform:
    """The unit-norm steepest-ascent direction of ``norm``: ``sign(g)`` (L-inf) or ``g / ||g||_2`` (L2)."""
    return GradientTransform(init=lambda x: (), update=lambda g, state, params: (norm.steepest(g), state))


def momentum() -> GradientTransform:
    """MI-FGSM's accumulator (Dong et al. 2018): ``m <- decay * m + g / mean|g|``; returns ``m``.

    Normalising by the mean absolute value (the L1 norm up to a constant factor) makes every step's gradient
    count equally whatever its scale. ``decay`` comes from ``params.decay`` (traced).
    """

    def update(g: Array, m: Array, params: Any) -> tuple[Array, Array]:
        m = params.decay * m + g / jnp.maximum(jnp.mean(jnp.abs(g)), 1e-12)
        return m, m

    return GradientTransform(init=jnp.zeros_like, update=update)


def chain(*transforms: GradientTransform) -> GradientTransform:
    """Applies ``transforms`` in order; the state is the tuple of their states."""

    def update(g: Array, states: tuple, params: Any) -> tuple[Array, tuple]:
        new_states = []
        for transform, state in zip(transforms, states, strict=True):
            g, state = transform.update(g, state, params)
            new_states.append(state)
        return g, tuple(new_states)

    return GradientTransform(init=lambda x: tuple(t.init(x) for t in transforms), update=update)


class InputTransform(NamedTuple):
    """A random input transformation.

    Attributes:
        num_uniforms: how many uniform numbers in ``[0, 1)`` one application consumes.
        apply: ``(x [H, W, C], params, u [num_uniforms]) -> x'`` of the same shape.
    """

    num_uniforms: int
    apply: Callable[[Array, Any, Array], Array]


identity_input = InputTransform(num_uniforms=0, apply=lambda x, params, u: x)
"""The input transform that leaves ``x`` unchanged."""


def input_diversity(resize_rate: float = 0.9) -> InputTransform:
    """Xie et al.'s (2019) input diversity for fixed-size models: with probability ``params.diversity_prob``,
    shrink ``x: [H, W, C]`` by nearest-neighbour resizing to a random size in ``[resize_rate * H, H]`` and place it
    at a random position on a zero canvas of the original size; otherwise return ``x``.

    Xie et al. enlarge 299 -> [299, 330) and pad to 330 because Inception accepts any size; shrinking within the
    original canvas (as torchattacks does) keeps the model's input size. The resampling is two 0/1 selection
    matrices applied by ``einsum``, so a traced random size needs no dynamic shapes and the gradient is a matmul.
    """
    if not 0.0 < resize_rate <= 1.0:
        raise ValueError(f"input_diversity resize_rate={resize_rate} must be in (0, 1]")

    def apply(x: Array, params: Any, u: Array) -> Array:
        h, w = x.shape[0], x.shape[1]
        scale = resize_rate + (1.0 - resize_rate) * u[1]
        rh = jnp.clip(jnp.round(scale * h), 1, h).astype(jnp.int32)
        rw = jnp.clip(jnp.round(scale * w), 1, w).astype(jnp.int32)
        top = jnp.minimum(jnp.floor(u[2] * (h - rh + 1)), h - rh).astype(jnp.int32)
        left = jnp.minimum(jnp.floor(u[3] * (w - rw + 1)), w - rw).astype(jnp.int32)
        rows, cols = _nearest_selection(h, rh, top), _nearest_selection(w, rw, left)
        diverse = jnp.einsum("is,jt,stc->ijc", rows, cols, x, precision=jax.lax.Precision.HIGHEST)
        return jnp.where(u[0] < params.diversity_prob, diverse, x)

    return InputTransform(num_uniforms=4, apply=apply)


def _nearest_selection(size: int, new_size: Array, offset: Array) -> Array:
    """``[size, size]`` 0/1 matrix whose row ``i`` picks the source pixel that output pixel ``i`` shows when a
    length-``size`` axis is resized to ``new_size`` (nearest neighbour) and placed at ``offset``; zero rows pad."""
    out = jnp.arange(size)
    inside = (out >= offset) & (out < offset + new_size)
    source = jnp.clip(((out - offset) * size) // new_size, 0, size - 1)
    return (inside[:, None] & (source[:, None] == jnp.arange(size)[None, :])).astype(jnp.float32)
