"""The small pure pieces an iterative attack is assembled from: optax gradient transformations and input transforms.

* An attack's step is an ``optax.GradientTransformation``. The step loop (:func:`~jaxfool.attacks.iterate`)
  follows optax's convention: it hands the transformation the gradient of the loss it *minimises*
  (``-objective``) and adds the returned update to the perturbation (``optax.apply_updates``), so any optax
  optimiser can drive an attack. The attack-specific pieces are optax transformations too: :func:`steepest`
  (``optax.scale_by_sign`` for L-inf, L2-normalisation for L2), :func:`l1_normalize` and :func:`momentum`
  (MI-FGSM's ``l1_normalize -> optax.trace``). PGD is ``optax.chain(steepest(LINF), optax.sgd(step))``,
  MI-FGSM ``optax.chain(l1_normalize(), optax.trace(decay), optax.scale_by_sign(), optax.sgd(step))`` and
  Adam-PGD (Foolbox's ``LinfAdamPGD``) ``optax.chain(steepest(LINF), optax.adam(step))``.
* An :class:`InputTransform` is applied before each gradient evaluation: :data:`identity_input`, or
  :func:`input_diversity` (random resize and pad, Xie et al. 2019). It receives its randomness as uniform numbers
  that the step loop draws for all steps in one PRNG call: every PRNG call site in a program costs XLA:CPU about
  half a second of compile time, more than a small model's whole attack.

Hyperparameters (``params``, an :class:`~jaxfool.attacks.AttackParams`) are traced values: the step
transformation is built inside the trace from them (:meth:`~jaxfool.attacks.Attack.step_transform`), which is
what ``optax.inject_hyperparams`` would achieve by carrying them in the optimiser state, so a sweep over
``eps``, step size or decay is one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxfool.attacks.norms import Norm

Array = jax.Array
_TINY = 1e-12  # keeps the division by an all-zero gradient finite


def steepest(norm: Norm) -> optax.GradientTransformation:
    """The unit-norm steepest direction of ``norm``: ``optax.scale_by_sign()`` for L-inf, ``g / ||g||_2`` for L2.

    Applied to a gradient of the minimised loss it gives the steepest *descent* direction; the optimiser after
    it (``optax.sgd(step)``) flips the sign, so the perturbation moves up the attack's objective.
    """
    if norm.name == "linf":
        return optax.scale_by_sign()
    return optax.stateless(lambda updates, params: jax.tree.map(norm.steepest, updates))


def l1_normalize() -> optax.GradientTransformation:
    """``g -> g / mean|g|``: the L1 normalisation of MI-FGSM (Dong et al. 2018), up to the constant factor ``g.size``.

    Dividing by the mean rather than the sum (as torchattacks does) keeps the accumulator's scale independent of
    the input size; after the final sign the two give the same directions.
    """
    return optax.stateless(
        lambda updates, params: jax.tree.map(lambda g: g / jnp.maximum(jnp.mean(jnp.abs(g)), _TINY), updates)
    )


def momentum(decay: ArrayLike) -> optax.GradientTransformation:
    """MI-FGSM's accumulator: ``m <- decay * m + g / mean|g|``, returning ``m`` (``decay`` may be traced).

    Normalising each gradient makes every step count equally whatever its scale. The chain
    ``l1_normalize() -> optax.trace(decay, nesterov=False)``.
    """
    return optax.chain(l1_normalize(), optax.trace(decay=decay, nesterov=False))


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
