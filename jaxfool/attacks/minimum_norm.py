"""Minimum-norm attacks: DeepFool (Moosavi-Dezfooli et al. 2016; L2 and L-inf) and Carlini & Wagner's L2 attack
(2017) with its constant found by a binary search, one example at a time (vmap them; :func:`minimum_norm` does).

Each returns an example's smallest adversarial distance it found, so one run gives robust accuracy at *every*
epsilon: a point is robust at ``eps`` when its distance exceeds ``eps`` (:func:`robust_curve`). The C&W search
runs per example inside the compiled program, so under ``jax.vmap`` all examples search their constants at once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfool import checks, xla
from jaxfool.attacks.norms import get_norm
from jax.tree_util import Partial

Array = jax.Array
_INF = jnp.inf


class MinimumNorm(NamedTuple):
    """What a minimum-norm attack found for one example (or ``[N]`` of them).

    Attributes:
        x_adv: ``[H, W, C]``: the closest misclassified point found, or ``x`` if none.
        distance: its distance to ``x`` (the attack's norm); 0 if ``x`` is misclassified, ``inf`` if none found.
        const: the C&W constant of the best point (DeepFool: the number of steps taken).
    """

    x_adv: Array
    distance: Array
    const: Array


def deepfool(
    model, x: Array, label: Array, *, bounds: tuple[float, float], norm: str = "l2", steps: int = 50,
    overshoot: float = 0.02, box_aware: bool = True,
) -> MinimumNorm:
    """DeepFool on one example ``x: [H, W, C]``: step to the nearest linearised boundary until misclassified.

    Each step computes the logits' Jacobian, picks the class ``k`` whose linearised boundary is closest
    (``|f_k| / ||w_k||_*``, ``f_k = z_k - z_y``, ``w_k`` its gradient, ``*`` the dual norm) and moves onto it,
    times ``1 + overshoot`` (per step, as torchattacks does), clipped to ``bounds``.

    Args:
        box_aware: compute each step on the pixels free to move its way (``w_k`` zeroed where the pixel sits at
            the bound the step pushes it into), so the linearised step lands on the boundary inside the box.
            ``False`` is torchattacks' step: computed on every pixel, then clipped. On MNIST the clip removes
            about 30% of each step (background pixels at 0 asked to go negative), so the point only approaches
            the boundary geometrically (``|f_k|`` x0.3 per step) and whether it ends misclassified is decided
            by float rounding at ``|f_k| ~ 1e-6`` -- a third of the plain CNN's digits were never "found".
    """
    nrm = get_norm(norm)
    f = lambda v: model(v[None])[0]
    low, high = bounds

    def cond(carry):
        i, v, wrong = carry
        return (i < steps) & ~wrong

    def body(carry):
        i, v, _ = carry
        z, jac = f(v), jax.jacrev(f)(v)
        fk = z - z[label]
        wk = (jac - jac[label]).reshape(z.shape[0], -1)
        if box_aware:  # the step moves along +w_k: a pixel at the low bound cannot go down, one at the high, up
            flat = v.reshape(1, -1)
            wk = jnp.where(((flat <= low) & (wk < 0)) | ((flat >= high) & (wk > 0)), 0.0, wk)
        dual = jnp.sum(jnp.abs(wk), -1) if norm == "linf" else jnp.sqrt(jnp.sum(wk * wk, -1))
        score = jnp.where(jnp.arange(z.shape[0]) == label, _INF, jnp.abs(fk) / (dual + 1e-12))
        k = score.argmin()
        if norm == "linf":
            delta = jnp.abs(fk[k]) / (dual[k] + 1e-12) * jnp.sign(wk[k])
        else:
            delta = jnp.abs(fk[k]) * wk[k] / (dual[k] ** 2 + 1e-12)
        v = jnp.clip(v + (1 + overshoot) * delta.reshape(v.shape), *bounds)
        return i + 1, v, f(v).argmax() != label

    wrong0 = f(x).argmax() != label
    i, v, wrong = jax.lax.while_loop(cond, body, (jnp.int32(0), x, wrong0))
    distance = jnp.where(wrong, nrm.measure(v - x), _INF)
    return MinimumNorm(jnp.where(wrong, v, x), distance, i.astype(x.dtype))


def _to_tanh(x, bounds, box_scale):
    low, high = bounds
    return jnp.arctanh(jnp.clip((2 * (x - low) / (high - low) - 1) * box_scale, -1.0, 1.0))


def _from_tanh(w, bounds):
    low, high = bounds
    return low + (high - low) * (jnp.tanh(w) + 1) / 2


def cw_l2_fixed(
    model, x: Array, label: Array, const: Array, *, bounds: tuple[float, float], steps: int = 100,
    learning_rate: float = 0.01, kappa: float = 0.0, box_scale: float = 0.999999,
) -> tuple[Array, Array, Array]:
    """C&W-L2 at one constant ``c`` on one example: Adam on ``||x' - x||^2 + c max(z_y - max_{j!=y} z_j, -kappa)``
    in tanh space.

    Stops early, like torchattacks, when the objective has risen over the last tenth of the steps. With
    ``box_scale=1`` pixels exactly at a bound map to an infinite tanh coordinate and never move (torchattacks);
    Carlini & Wagner's ``0.999999`` lets them.

    Returns:
        ``(x_adv, l2_squared, success)``: the closest misclassified point visited (``x`` and ``inf`` if none).
    """
    optimizer = optax.adam(learning_rate)
    w0 = _to_tanh(x, bounds, box_scale)
    every = max(steps // 10, 1)

    def cost(w):
        adv = _from_tanh(w, bounds)
        logits = model(adv[None])[0]
        others = jnp.where(jnp.arange(logits.shape[-1]) == label, -_INF, logits).max()
        l2 = jnp.sum((adv - x) ** 2)
        return l2 + const * jnp.maximum(logits[label] - others, -kappa), (adv, l2, logits.argmax() != label)

    def cond(carry):
        return (carry[0] < steps) & ~carry[-1]

    def body(carry):
        i, w, state, best_adv, best_l2, prev, _ = carry
        (value, (adv, l2, wrong)), g = jax.value_and_grad(cost, has_aux=True)(w)
        updates, state = optimizer.update(g, state)
        w = optax.apply_updates(w, updates)
        better = wrong & (l2 < best_l2)
        check = i % every == 0
        stop = check & (value > prev)
        return (i + 1, w, state, jnp.where(better, adv, best_adv), jnp.where(better, l2, best_l2),
                jnp.where(check, value, prev), stop)

    init = (jnp.int32(0), w0, optimizer.init(w0), x, jnp.asarray(_INF, x.dtype), jnp.asarray(1e10, x.dtype),
            jnp.bool_(False))
    _, _, _, best_adv, best_l2, _, _ = jax.lax.while_loop(cond, body, init)
    return best_adv, best_l2, jnp.isfinite(best_l2)


def search_update(lower: Array, upper: Array, const: Array, success: Array) -> tuple[Array, Array, Array]:
    """One step of Carlini & Wagner's search for the constant: halve towards success, grow 10x until one."""
    upper = jnp.where(success, jnp.minimum(upper, const), upper)
    lower = jnp.where(success, lower, jnp.maximum(lower, const))
    bracketed = upper < 1e9
    const = jnp.where(bracketed, (lower + upper) / 2, jnp.where(success, const, const * 10))
    return lower, upper, const


def cw_l2(
    model, x: Array, label: Array, *, bounds: tuple[float, float], steps: int = 100, search_steps: int = 9,
    initial_const: float = 1e-3, learning_rate: float = 0.01, kappa: float = 0.0, box_scale: float = 0.999999,
) -> MinimumNorm:
    """C&W-L2 on one example with its constant searched over ``search_steps`` runs of :func:`cw_l2_fixed`.

    Returns:
        The closest misclassified point over all constants, its L2 distance (0 if ``x`` is misclassified,
        ``inf`` if no constant succeeded) and the constant that found it.
    """
    run = functools.partial(cw_l2_fixed, model, x, label, bounds=bounds, steps=steps, learning_rate=learning_rate,
                            kappa=kappa, box_scale=box_scale)

    def body(_, carry):
        lower, upper, const, best_adv, best_l2, best_const = carry
        adv, l2, success = run(const)
        better = l2 < best_l2
        lower, upper, new_const = search_update(lower, upper, const, success)
        return (lower, upper, new_const, jnp.where(better, adv, best_adv), jnp.where(better, l2, best_l2),
                jnp.where(better, const, best_const))

    f32 = lambda v: jnp.asarray(v, x.dtype)
    init = (f32(0.0), f32(1e10), f32(initial_const), x, f32(_INF), f32(0.0))
    *_, best_adv, best_l2, best_const = jax.lax.fori_loop(0, search_steps, body, init)
    wrong0 = model(x[None])[0].argmax() != label
    distance = jnp.where(wrong0, 0.0, jnp.sqrt(best_l2))
    return MinimumNorm(jnp.where(wrong0, x, best_adv), distance, best_const)


def minimum_norm(
    model, x: Array, labels: Array, *, method: str = "deepfool", bounds: tuple[float, float], batch_size: int = 500,
    **options,
) -> MinimumNorm:
    """Runs :func:`deepfool` (``options``: ``norm``, ``steps``, ``overshoot``, ``box_aware``) or :func:`cw_l2` on
    ``x: [N, H, W, C]``.

    Returns:
        A :class:`MinimumNorm` of ``[N, ...]`` arrays (numpy).
    """
    if method not in ("deepfool", "cw"):
        raise ValueError(f"unknown minimum-norm method {method!r}; valid: deepfool, cw")
    bounds = (float(bounds[0]), float(bounds[1]))
    checks.check_images(x, (None, None, None), bounds, batched=True, what="attack input")
    attack = _Spec(method, bounds, tuple(sorted(options.items())))
    pytree = model if isinstance(model, Partial) else Partial(model)
    parts = [_batched(attack, pytree, jnp.asarray(x[i : i + batch_size]), jnp.asarray(labels[i : i + batch_size]))
             for i in range(0, len(x), batch_size)]
    return MinimumNorm(*(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(3)))


@dataclasses.dataclass(frozen=True)
class _Spec:
    """A hashable stand-in for ``partial(deepfool or cw_l2, bounds=..., **options)``: equal specs share a program."""

    method: str
    bounds: tuple[float, float]
    options: tuple[tuple[str, object], ...]

    def __call__(self, model, x, label):
        fn = deepfool if self.method == "deepfool" else cw_l2
        return fn(model, x, label, bounds=self.bounds, **dict(self.options))


@functools.partial(xla.jit, static_argnames=("attack",))
def _batched(attack, model, x, labels):
    return jax.vmap(lambda xi, yi: attack(model, xi, yi))(x, labels)


def robust_curve(distances: np.ndarray, epsilons: np.ndarray) -> np.ndarray:
    """Robust accuracy at each of ``epsilons``: the fraction of points whose distance exceeds it. ``[len(eps)]``."""
    d = np.asarray(distances)[None, :]
    return (d > np.asarray(epsilons)[:, None]).mean(axis=1)
