"""The one step loop every iterative gradient attack runs, and its traced hyperparameters.

FGSM, I-FGSM/BIM, PGD, MI-FGSM, DI2-FGSM, M-DI2-FGSM and Adam-PGD differ only in the pieces they plug into
:func:`iterate`: a random start or not, an ``optax.GradientTransformation`` that turns the gradient into the step
(steepest ascent, momentum, then any optax optimiser: ``optax.sgd`` for the sign-gradient family, ``optax.adam``
for Adam-PGD), an input transform (identity, input diversity) and a norm (projection). Hyperparameters travel as
an :class:`AttackParams` of arrays, never as Python constants, so ``jax.vmap`` over a stack of them sweeps settings
in one compiled program.

Why ``lax.fori_loop`` without unrolling (measured, PGD-40 on 256 MNIST digits, backwork CNN, 2-core CPU):

=====================================================  ==========  ===============
model function                                          first call  steady run
=====================================================  ==========  ===============
``network_model`` (canonical conv gradients), rolled     14.5 s      9.3 s
same, ``unroll=True`` (40 copies of the body)            17.1 s      10.2 s
plain ``flax.linen.Conv``, rolled                        29.3 s      30.6 s
plain ``flax.linen.Conv``, ``unroll=True``               47.2 s      43.9 s
=====================================================  ==========  ===============

The rolled loop compiles its body once and runs as fast as the unrolled program once the convolutions' input
gradients are canonical. XLA:CPU's convolution canonicalisation only visits the entry computation, so inside any
loop body JAX's flipped-kernel input-gradient convolution misses the fast kernels (see
:mod:`jaxfool.models.layers`); :func:`~jaxfool.attacks.network_model` routes ``flax.linen.Conv`` through
:func:`jaxfool.models.layers.conv2d`, which states that gradient canonically. ``Attack.unroll`` remains for
models where unrolling pays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxfool.attacks.norms import Norm
from jaxfool.attacks.transforms import InputTransform

Array = jax.Array
Model = Callable[[Array], Array]  # x [batch, H, W, C] in the model's input units -> logits [batch, num_classes]
Objective = Callable[[Array, Array], Array]  # (logits [num_classes], label) -> scalar to maximise


class AttackParams(NamedTuple):
    """Hyperparameters of a gradient attack; each field a scalar, or ``[K]`` to sweep K settings.

    Attributes:
        eps: radius of the threat ball in the attack's norm, in the model's input units (0.3 for MNIST in
            ``[0, 1]``, 8 for 0-255 pixels).
        rel_step: step size as a fraction of ``eps`` (Foolbox's ``rel_stepsize``): 1 for FGSM, ``1/steps`` for
            I-FGSM, ``2.5/steps`` for PGD; the optimiser's learning rate is ``rel_step * eps`` (Adam-PGD's too, as
            in Foolbox). Relative, so a sweep over ``eps`` keeps the step schedule.
        decay: momentum decay ``mu`` of MI-FGSM (Dong et al. use 1.0); ignored without momentum.
        diversity_prob: probability ``p`` of transforming the input at a step (Xie et al. use 0.5); ignored
            without input diversity.
    """

    eps: ArrayLike
    rel_step: ArrayLike
    decay: ArrayLike = 1.0
    diversity_prob: ArrayLike = 0.5


def clip_perturbation(x: Array, delta: Array, bounds: tuple[float, float]) -> Array:
    """The part of ``delta`` that keeps ``x + delta`` inside ``bounds`` (coordinate-wise, so never a larger norm)."""
    return jnp.clip(x + delta, *bounds) - x


def iterate(
    model: Model,
    x: Array,
    label: Array,
    params: AttackParams,
    *,
    key: Array,
    steps: int,
    objective: Objective,
    grad_transform: optax.GradientTransformation,
    input_transform: InputTransform,
    norm: Norm,
    bounds: tuple[float, float],
    random_start: bool,
    unroll: int | bool = 1,
) -> Array:
    """Runs ``steps`` projected optimiser steps up ``objective`` from ``x`` (or a random point of the ball).

    Each step, in optax's convention (the optimiser minimises the loss ``-objective``):
    ``g = -grad objective(model(input_transform(x + delta)))``; ``u, state = grad_transform.update(g, state, delta)``;
    ``delta <- project(optax.apply_updates(delta, u))``, then clipped so that ``x + delta`` stays inside ``bounds``.

    Args:
        model: ``x [batch, H, W, C] -> logits [batch, num_classes]``; called on ``x[None]``.
        x: ``[H, W, C]``, one example inside ``bounds``.
        label: the true class (untargeted) or the target (targeted), as ``objective`` expects.
        params: the traced hyperparameters; the loop reads ``eps`` (ball, random start) and hands ``params`` to
            ``input_transform``. The step size lives in ``grad_transform``
            (:meth:`~jaxfool.attacks.Attack.step_transform` builds it from ``params``).
        key: randomness for the start point and the input transform.
        steps: number of steps (static).
        objective: ``(logits, label) -> scalar`` to maximise.
        grad_transform: any ``optax.GradientTransformation`` on ``[H, W, C]`` arrays (its ``params`` is ``delta``),
            e.g. ``optax.chain(steepest(LINF), optax.sgd(step))`` or ``optax.adam(step)``.
        input_transform: applied to ``x + delta`` before each gradient.
        norm: the threat model's norm.
        bounds: valid ``(low, high)`` input range.
        random_start: start from a uniform point of the ball instead of ``x``.
        unroll: passed to ``lax.fori_loop``.

    Returns:
        The adversarial example ``[H, W, C]``, inside ``bounds`` and within ``eps`` of ``x`` in ``norm``.
    """
    eps = jnp.asarray(params.eps, x.dtype)
    # All randomness in one PRNG call (see transforms.py): the start point, then each step's input transform.
    n_start = norm.num_uniforms(x.shape) if random_start else 0
    n_step = input_transform.num_uniforms
    u = jax.random.uniform(key, (n_start + steps * n_step,), x.dtype) if n_start + n_step else jnp.zeros((0,))
    delta = norm.sample(u[:n_start], x.shape, eps) if random_start else jnp.zeros_like(x)
    delta = clip_perturbation(x, delta, bounds)

    def loss_gradient(delta: Array, u_step: Array) -> Array:
        def f(d: Array) -> Array:
            return objective(model(input_transform.apply(x + d, params, u_step)[None])[0], label)

        # Negating the ascent gradient (exact in floating point) rather than differentiating -objective keeps
        # the sign-gradient attacks bitwise equal to their direct ascent form.
        return -jax.grad(f)(delta)

    def body(i, carry):
        delta, state = carry
        g = loss_gradient(delta, jax.lax.dynamic_slice_in_dim(u, n_start + i * n_step, n_step))
        updates, state = grad_transform.update(g, state, delta)
        delta = norm.project(optax.apply_updates(delta, updates), eps)
        return clip_perturbation(x, delta, bounds), state

    delta, _ = jax.lax.fori_loop(0, steps, body, (delta, grad_transform.init(delta)), unroll=unroll)
    # x + delta can round one ulp past a bound; the final clip makes "inside bounds" exact.
    return jnp.clip(x + delta, *bounds)
