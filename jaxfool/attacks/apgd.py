"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks"): APGD-CE, APGD-DLR and the targeted APGD-T, under L-inf or L2, one example at a time.

The step size starts at ``2 eps`` and is halved at checkpoints ``p_j`` (``p_0 = 0, p_1 = 0.22``,
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, as fractions of the steps) when either (1) the loss rose in
at most ``rho`` (0.75) of the steps since the last checkpoint, or (2) the step size was not halved at the last
checkpoint and the best loss has not improved since; a halving restarts from the best point found so far. Steps
use momentum ``0.75`` on the previous move. Details (integer rounding of the checkpoints, the first step without
momentum) follow the authors' ``autopgd_base.py``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxfool.attacks.norms import get_norm

Array = jax.Array
LOSSES = ("ce", "dlr", "dlr-targeted")
_TINY = 1e-12


def dlr(logits: Array, label: Array) -> Array:
    """Difference of logits ratio ``-(z_y - max_{j != y} z_j) / (z_(1) - z_(3))`` (``z_(k)``: k-th largest).

    Args:
        logits: ``[num_classes]``, at least 3 classes.
        label: the true class.

    Returns:
        A scalar, positive exactly when ``label`` is not the top class; invariant to shifting and scaling the
        logits, so a defence that rescales them (defensive distillation) does not flatten it.
    """
    ordered = jnp.sort(logits)
    own = logits[label]
    best_other = jnp.where(ordered[-1] == own, ordered[-2], ordered[-1])
    return -(own - best_other) / (ordered[-1] - ordered[-3] + _TINY)


def dlr_targeted(logits: Array, label: Array, target: Array) -> Array:
    """Targeted DLR ``-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`` of ``logits: [num_classes]`` (>= 4 classes)."""
    ordered = jnp.sort(logits)
    return -(logits[label] - logits[target]) / (ordered[-1] - 0.5 * (ordered[-3] + ordered[-4]) + _TINY)


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based counts of steps done) after which APGD may halve its step size.

    ``checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]``: the first after ``int(0.22 steps)``, each next
    interval ``int(0.03 steps)`` shorter, down to ``int(0.06 steps)``.
    """
    first, shortest, shrink = _intervals(steps)
    out, at, interval = [], 0, first
    while at + interval <= steps:
        at += interval
        out.append(at)
        interval = max(interval - shrink, shortest)
    return out


def _intervals(steps: int) -> tuple[int, int, int]:
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


class APGDTrace(NamedTuple):
    """What one APGD run found for one example.

    Attributes:
        x_adv: ``[H, W, C]``: the last misclassified point visited, else the start point.
        fooled: whether any visited point was misclassified.
        x_best: ``[H, W, C]``: the point of highest loss.
        loss_best: its loss.
        step_sizes: ``[steps]`` the step size used at each step (for the schedule's tests).
    """

    x_adv: Array
    fooled: Array
    x_best: Array
    loss_best: Array
    step_sizes: Array


def apgd_run(
    model,
    x: Array,
    label: Array,
    eps: Array,
    *,
    key: Array,
    bounds: tuple[float, float],
    norm: str = "linf",
    steps: int = 100,
    loss: str = "ce",
    target: Array | None = None,
    rho: float = 0.75,
    eot_iter: int = 1,
    stochastic: bool = False,
    random_start: bool = True,
    stop_when_fooled: bool = False,
) -> APGDTrace:
    """One APGD run on one example.

    Args:
        model: ``x [batch, H, W, C] -> logits [batch, classes]``; with ``stochastic``, ``model(x, key=key)``.
        x: ``[H, W, C]`` inside ``bounds``.
        label: the true class.
        eps: radius of the ``norm`` ball.
        key: the random start (and a stochastic model's randomness).
        bounds: valid ``(low, high)`` input range.
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps (the reference uses 100).
        loss: ``"ce"``, ``"dlr"`` or ``"dlr-targeted"`` (then ``target`` is the class to reach).
        target: target class of the targeted DLR loss.
        rho: the oscillation threshold of condition (1).
        eot_iter: gradients averaged per step (expectation over transformation, for randomised models).
        stochastic: call ``model(x, key=...)`` with a fresh key for every evaluation.
        random_start: start from a random point of the sphere of radius ``eps`` (the reference always does).
        stop_when_fooled: end the run at the first misclassified iterate, which is then ``x_adv``. Whether the
            example is fooled is the same as without it (``fooled`` only ever turns on; the steps before are the
            same); the reference runs every step and returns the last misclassified iterate. Under ``jax.vmap``
            a batch stops when all its examples have, so an attack on an undefended model costs a few steps
            instead of ``steps``; ``x_best``/``loss_best`` then stop there too.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown APGD loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if loss == "dlr-targeted" and target is None:
        raise ValueError("loss='dlr-targeted' needs target=")
    nrm = get_norm(norm)
    eps = jnp.asarray(eps, x.dtype)
    start_key, eval_key = jax.random.split(key)

    def objective(logits: Array) -> Array:
        if loss == "ce":
            return -jax.nn.log_softmax(logits)[label]
        if loss == "dlr":
            return dlr(logits, label)
        return dlr_targeted(logits, label, target)

    def evaluate(xa: Array, i: Array) -> tuple[Array, Array, Array]:
        """Mean loss and gradient over ``eot_iter`` evaluations, and whether the first prediction is wrong."""

        def one(v: Array, k: Array) -> tuple[Array, Array]:
            logits = model(v[None], key=k)[0] if stochastic else model(v[None])[0]
            return objective(logits), logits

        grad_fn = jax.value_and_grad(one, has_aux=True)
        keys = jax.random.split(jax.random.fold_in(eval_key, i), eot_iter)
        (value, logits), grad = grad_fn(xa, keys[0])
        if eot_iter > 1:  # a loop rather than a vmap: one evaluation's activations live at a time

            def add(j, carry):
                (v, _), g = grad_fn(xa, keys[j])
                return carry[0] + v, carry[1] + g

            value, grad = jax.lax.fori_loop(1, eot_iter, add, (value, grad))
            value, grad = value / eot_iter, grad / eot_iter
        return value, grad, logits.argmax(-1) != label

    def project(v: Array) -> Array:
        return jnp.clip(x + nrm.project(v - x, eps), *bounds)

    if random_start:
        if norm == "linf":
            t = jax.random.uniform(start_key, x.shape, x.dtype, -1.0, 1.0)
        else:
            t = jax.random.normal(start_key, x.shape, x.dtype)
        x_adv = jnp.clip(x + eps * t / jnp.maximum(nrm.measure(t), _TINY), *bounds)
    else:
        x_adv = x
    loss0, grad0, wrong0 = evaluate(x_adv, jnp.int32(-1))
    first, shortest, shrink = _intervals(steps)

    class Carry(NamedTuple):
        x_adv: Array
        x_old: Array
        grad: Array
        x_best: Array
        grad_best: Array
        loss_best: Array
        x_best_adv: Array
        fooled: Array
        step: Array
        prev_loss: Array
        rises: Array
        since: Array
        interval: Array
        loss_best_last: Array
        reduced_last: Array
        step_sizes: Array

    def body(i: Array, c: Carry) -> Carry:
        momentum = jnp.where(i > 0, 0.75, 1.0).astype(x.dtype)
        z = project(c.x_adv + c.step * nrm.steepest(c.grad))
        new = project(c.x_adv + momentum * (z - c.x_adv) + (1.0 - momentum) * (c.x_adv - c.x_old))
        value, grad, wrong = evaluate(new, i)
        fooled = c.fooled | wrong
        x_best_adv = jnp.where(wrong, new, c.x_best_adv)
        better = value > c.loss_best
        x_best = jnp.where(better, new, c.x_best)
        grad_best = jnp.where(better, grad, c.grad_best)
        loss_best = jnp.maximum(value, c.loss_best)
        # The reference compares the first step's loss with an unwritten (zero) history entry.
        rises = c.rises + (value > c.prev_loss).astype(jnp.int32)
        since = c.since + 1
        check = since == c.interval
        oscillating = rises <= c.interval.astype(x.dtype) * rho
        stalled = ~c.reduced_last & (c.loss_best_last >= loss_best)
        halve = check & (oscillating | stalled)
        return Carry(
            x_adv=jnp.where(halve, x_best, new),
            x_old=c.x_adv,
            grad=jnp.where(halve, grad_best, grad),
            x_best=x_best,
            grad_best=grad_best,
            loss_best=loss_best,
            x_best_adv=x_best_adv,
            fooled=fooled,
            step=jnp.where(halve, c.step / 2.0, c.step),
            prev_loss=value,
            rises=jnp.where(check, 0, rises),
            since=jnp.where(check, 0, since),
            interval=jnp.where(check, jnp.maximum(c.interval - shrink, shortest), c.interval),
            loss_best_last=jnp.where(check, loss_best, c.loss_best_last),
            reduced_last=jnp.where(check, oscillating | stalled, c.reduced_last),
            step_sizes=c.step_sizes.at[i].set(c.step),
        )

    init = Carry(
        x_adv=x_adv, x_old=x_adv, grad=grad0, x_best=x_adv, grad_best=grad0, loss_best=loss0,
        x_best_adv=x_adv, fooled=wrong0, step=2.0 * eps, prev_loss=jnp.zeros((), x.dtype),
        rises=jnp.int32(0), since=jnp.int32(0), interval=jnp.int32(first), loss_best_last=loss0,
        reduced_last=jnp.bool_(True), step_sizes=jnp.zeros((steps,), x.dtype),
    )
    if stop_when_fooled:
        _, c = jax.lax.while_loop(lambda ic: (ic[0] < steps) & ~ic[1].fooled,
                                  lambda ic: (ic[0] + 1, body(*ic)), (jnp.int32(0), init))
    else:
        c = jax.lax.fori_loop(0, steps, body, init)
    return APGDTrace(c.x_best_adv, c.fooled, c.x_best, c.loss_best, c.step_sizes)


@dataclasses.dataclass(frozen=True)
class APGD:
    """APGD as a component of :func:`~jaxfool.attacks.auto_attack`: ``restarts`` runs, or ``n_targets * restarts``
    targeted runs (targets: the 2nd ... ``(n_targets + 1)``-th most likely classes at the clean input).

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"``, ``"dlr"`` or ``"dlr-targeted"`` (APGD-T).
        steps: steps per run.
        restarts: random restarts (per target for APGD-T).
        n_targets: target classes of APGD-T (9 in the standard version).
        eot_iter: gradients averaged per step (20 in the ``rand`` version).
        stochastic: the model takes ``key=`` (randomised defences).
        rho: oscillation threshold.
        stop_when_fooled: end each run at its first misclassified iterate (see :func:`apgd_run`): the same
            verdict for every point, at a fraction of the cost on points that fall early. Not applied to a
            stochastic model, where one misclassified draw is no verdict.
    """

    norm: str = "linf"
    loss: str = "ce"
    steps: int = 100
    restarts: int = 1
    n_targets: int = 9
    eot_iter: int = 1
    stochastic: bool = False
    rho: float = 0.75
    stop_when_fooled: bool = True

    @property
    def name(self) -> str:
        return {"ce": "apgd-ce", "dlr": "apgd-dlr", "dlr-targeted": "apgd-t"}[self.loss]

    @property
    def runs(self) -> int:
        return self.restarts * (self.n_targets if self.loss == "dlr-targeted" else 1)

    def __call__(self, model, x: Array, label: Array, eps: Array, run: Array, *, key: Array,
                 bounds: tuple[float, float]) -> Array:
        """Run number ``run`` (traced) on one example ``x: [H, W, C]``; returns ``x_adv: [H, W, C]``."""
        target = None
        if self.loss == "dlr-targeted":
            target = target_class(model, x, 2 + run // self.restarts, stochastic=self.stochastic, key=key)
        return apgd_run(
            model, x, label, eps, key=key, bounds=bounds, norm=self.norm, steps=self.steps, loss=self.loss,
            target=target, rho=self.rho, eot_iter=self.eot_iter, stochastic=self.stochastic,
            stop_when_fooled=self.stop_when_fooled and not self.stochastic,  # one lucky draw is no verdict
        ).x_adv


def target_class(model, x: Array, rank: Array, *, stochastic: bool = False, key: Array | None = None) -> Array:
    """The ``rank``-th most likely class of the model at ``x: [H, W, C]`` (rank 1 is the top class)."""
    logits = model(x[None], key=key)[0] if stochastic else model(x[None])[0]
    return jnp.argsort(logits)[logits.shape[-1] - rank]
