"""Universal adversarial perturbations: one ``delta`` that fools a classifier on most images.

Moosavi-Dezfooli et al. (2017) build ``delta`` by visiting images one at a time and adding the DeepFool step
that pushes each still-correct ``x + delta`` over the nearest boundary, projecting onto the ``eps``-ball after each.
jaxfool uses the practical gradient form of the same idea (stochastic projected ascent, as in Shafahi et al. 2020,
"Universal adversarial training"): over shuffled minibatches, ascend the mean clamped margin
``min(max_{j != y} z_j - z_y, 0)`` -- an image that is already fooled contributes nothing, as in the original
algorithm only unfooled images move ``delta`` -- by a steepest-ascent step, then project onto the ball. The whole
optimisation is one jitted ``lax.fori_loop``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxfool import checks, xla
from jaxfool.attacks import losses
from jaxfool.attacks.batch import _as_pytree, predict_labels
from jaxfool.attacks.loop import Model
from jaxfool.attacks.norms import get_norm

Array = jax.Array


class UniversalParams(NamedTuple):
    """Traced hyperparameters of :func:`universal_perturbation`.

    Attributes:
        eps: radius of the perturbation's ball, in the model's input units.
        rel_step: step per minibatch as a fraction of ``eps``.
    """

    eps: ArrayLike
    rel_step: ArrayLike = 0.05


def universal_perturbation(
    model: Model,
    images: Array,
    labels: Array,
    params: UniversalParams,
    *,
    key: Array,
    bounds: tuple[float, float],
    norm: str = "linf",
    epochs: int = 5,
    batch_size: int = 64,
) -> Array:
    """One perturbation for all of ``images`` (see the module docstring).

    Args:
        model: ``x [batch, H, W, C] -> logits``.
        images: ``[N, H, W, C]`` inside ``bounds``.
        labels: ``[N]`` true classes.
        params: ``eps`` and step.
        key: shuffles the minibatches.
        bounds: valid input range; each ``x + delta`` is clipped to it.
        norm: ``"linf"`` or ``"l2"``.
        epochs: passes over ``images``.
        batch_size: images per ascent step (at most ``N``).

    Returns:
        ``delta: [H, W, C]`` with ``||delta|| <= eps``.
    """
    get_norm(norm)
    checks.check_images(images, (None, None, None), bounds, batched=True, what="universal perturbation images")
    if epochs < 1 or not 1 <= batch_size:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must be >= 1")
    batch_size = min(batch_size, len(images))
    params = UniversalParams(*(jnp.asarray(v, jnp.float32) for v in params))
    return _universal(
        _as_pytree(model), jnp.asarray(images), jnp.asarray(labels, jnp.int32), params, key,
        (float(bounds[0]), float(bounds[1])), norm, epochs, batch_size,
    )


@functools.partial(xla.jit, static_argnums=(5, 6, 7, 8))
def _universal(model, images, labels, params, key, bounds, norm_name, epochs, batch_size):
    norm = get_norm(norm_name)
    n_batches = images.shape[0] // batch_size
    step = params.eps * params.rel_step

    def loss(delta: Array, x: Array, y: Array) -> Array:
        margins = jax.vmap(losses.margin)(model(jnp.clip(x + delta, *bounds)), y)
        return jnp.mean(jnp.minimum(margins, 0.0))

    def epoch(e, delta):
        order = jax.random.permutation(jax.random.fold_in(key, e), images.shape[0])
        order = order[: n_batches * batch_size].reshape(n_batches, batch_size)

        def minibatch(b, delta):
            g = jax.grad(loss)(delta, images[order[b]], labels[order[b]])
            return norm.project(delta + step * norm.steepest(g), params.eps)

        return jax.lax.fori_loop(0, n_batches, minibatch, delta)

    return jax.lax.fori_loop(0, epochs, epoch, jnp.zeros(images.shape[1:], images.dtype))


def fooling_rate(
    model: Model, images: Array, delta: Array, *, bounds: tuple[float, float], batch_size: int = 500
) -> float:
    """Fraction of ``images [N, H, W, C]`` whose top class changes when ``delta [H, W, C]`` is added (clipped)."""
    images = jnp.asarray(images)
    clean = predict_labels(model, images, batch_size=batch_size)
    fooled = predict_labels(model, jnp.clip(images + delta, *bounds), batch_size=batch_size)
    return float(np.sum(clean != fooled)) / max(len(images), 1)
