"""FAB, the Fast Adaptive Boundary attack (Croce & Hein 2020), L-inf and L2, one example at a time.

FAB looks for the *smallest* perturbation that changes the decision. Each step linearises the decision boundary
at the current point (the closest one over all classes; or the target's, for FAB-T), projects both the current
point and the original input onto that hyperplane inside the box, and moves to a convex combination of the two
projections (weight ``alpha <= alpha_max`` on the original, overshoot ``eta``); once misclassified it records
the point if it is the closest so far and steps back towards the input by ``beta``. The box projections
(:func:`project_linf`, :func:`project_l2`: exact minimal-norm points of the hyperplane inside ``[0, 1]^d``) follow
the authors' ``fab_projections.py``; both bisect their clamp level where the authors' sort the breakpoints.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxfool.attacks.norms import get_norm

Array = jax.Array


def _inner(u: Array, v: Array) -> Array:
    # Not jnp.dot: under vmap a vector dot becomes a batched dot_general, which XLA:CPU runs as one tiny matmul
    # per example; an elementwise product and a sum fuse into one pass over the batch.
    return jnp.sum(u * v)


def _level(weight: Array, room: Array, need: Array) -> Array:
    """The ``lam >= 0`` with ``sum_i weight_i * min(lam, room_i) = need`` (``weight, room >= 0``; if ``need`` is
    out of reach, about ``max(room)``).

    The sum is continuous and increasing in ``lam``, linear between the breakpoints ``room_i``. The authors' code
    sorts the breakpoints to binary-search the linear piece; this bisects ``lam`` over the bit patterns of
    non-negative float32 (ordered as the floats are), 31 masked sums, then solves the piece above the bracket's
    lower end exactly. XLA:CPU sorts slowly: FAB's two projections took 40% of its step on the MNIST CNN.
    """
    g = lambda lam: _inner(weight, jnp.minimum(lam, room))
    as_float = lambda bits: jax.lax.bitcast_convert_type(bits, jnp.float32)

    def bisect(_, bounds):
        lo, hi = bounds  # g(lo) <= need < g(hi), as float bits
        mid = lo + (hi - lo) // 2
        below = g(as_float(mid)) <= need
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    top = jax.lax.bitcast_convert_type(jnp.max(room).astype(jnp.float32), jnp.int32)
    lo, _ = jax.lax.fori_loop(0, 31, bisect, (jnp.int32(0), top))
    free = room > as_float(lo)  # the coordinates not yet at their breakpoint on the root's linear piece
    slope = _inner(weight, free.astype(room.dtype))
    lam = (need - _inner(weight, jnp.where(free, 0.0, room))) / jnp.where(slope > 0, slope, 1.0)
    return jnp.where(slope > 0, jnp.maximum(lam, 0.0), 0.0).astype(room.dtype)


def project_linf(t: Array, w: Array, b: Array) -> Array:
    """The L-inf-smallest ``d`` with ``<w, t + d> = b`` and ``t + d`` in ``[0, 1]^n`` (or the closest feasible).

    Each coordinate moves ``min(lam, room_i)`` towards the face that lowers ``<w, .>`` (``room_i``: its distance
    to that face), with the smallest ``lam`` that reaches the hyperplane: the authors' ``projection_linf`` to float
    rounding (ties among the breakpoints, the rule on MNIST, included), without its sort (:func:`_level`).

    Args:
        t: ``[n]`` the point, inside ``[0, 1]``.
        w: ``[n]`` the hyperplane's normal.
        b: the hyperplane's offset (scalar).

    Returns:
        ``d: [n]``.
    """
    c = _inner(w, t) - b
    sign = jnp.where(c >= 0, 1.0, -1.0)
    w, need = w * sign, c * sign  # need >= 0: how far <w, .> must fall
    moves = w != 0
    d = ((w < 0).astype(t.dtype) - t) * moves  # the farthest move: every coordinate to its face
    room, aw = jnp.abs(d), jnp.abs(w)
    lam = _level(aw, room, need)
    return jnp.where(need < _inner(aw, room), jnp.clip(d, -lam, lam), d) * moves


def project_l2(t: Array, w: Array, b: Array) -> Array:
    """The L2-smallest ``d`` with ``<w, t + d> = b`` and ``t + d`` in ``[0, 1]^n``; arguments as :func:`project_linf`.

    ``d = -min(alpha, r_i) w_i``: the step along ``-w`` with each coordinate stopped at its face (at ``alpha =
    r_i``), the smallest ``alpha`` that reaches the hyperplane (:func:`_level` with weights ``w_i^2``): the
    authors' ``projection_l2`` to float rounding. Weights under 1e-8 do not move, as there.
    """
    c = _inner(w, t) - b
    sign = jnp.where(c >= 0, 1.0, -1.0)
    w, c = w * sign, c * sign
    moves = jnp.abs(w) >= 1e-8
    safe_w = jnp.where(moves, w, 1.0)
    r = jnp.where(moves, jnp.maximum(t / safe_w, (t - 1) / safe_w), 0.0)  # >= 0 inside the box
    w2 = jnp.where(moves, w * w, 0.0)
    alpha = _level(w2, r, c)
    return jnp.where(c < _inner(w2, r), -jnp.minimum(alpha, r), -r) * w * moves


def fab(
    model,
    x: Array,
    label: Array,
    *,
    key: Array,
    bounds: tuple[float, float],
    norm: str = "linf",
    steps: int = 100,
    target: Array | None = None,
    eps: Array | None = None,
    random_start: bool = False,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
) -> tuple[Array, Array]:
    """FAB (or FAB-T with ``target``) on one example: the closest misclassified point it finds.

    Args:
        model: ``x [batch, H, W, C] -> logits [batch, classes]``.
        x: ``[H, W, C]`` inside ``bounds``.
        label: the true class.
        key: the random start's randomness (unused without ``random_start``).
        bounds: valid ``(low, high)`` input range.
        norm: ``"linf"`` or ``"l2"``: the distance FAB minimises.
        steps: iterations (100 in AutoAttack).
        target: FAB-T's target class; ``None`` for untargeted FAB (the closest boundary over all classes).
        eps: radius of the random start (the reference starts at ``eps / 2`` on restarts after the first).
        random_start: start from a random point at distance ``eps / 2`` instead of ``x``.
        alpha_max, eta, beta: the reference's step parameters.

    Returns:
        ``(x_adv [H, W, C], distance)``: the closest misclassified point found and its ``norm`` distance to
        ``x``, or ``(x, inf)`` if none was found.
    """
    nrm = get_norm(norm)
    low, high = bounds
    scale = high - low
    shape = x.shape
    # The projections work in [0, 1]^n: attack u = (x - low) / scale and map the result back.
    x0 = ((x - low) / scale).reshape(-1)
    f = lambda u: model((low + scale * u).reshape(shape)[None])[0]
    if random_start:
        r = jnp.asarray(eps, x.dtype) / scale * 0.5
        if norm == "linf":
            t = jax.random.uniform(key, x0.shape, x.dtype, -1.0, 1.0)
        else:
            t = jax.random.normal(key, x0.shape, x.dtype)
        x1 = jnp.clip(x0 + r * t / jnp.maximum(nrm.measure(t), 1e-12), 0.0, 1.0)
    else:
        x1 = x0
    project = project_linf if norm == "linf" else project_l2
    dual = (lambda g: jnp.sum(jnp.abs(g), -1)) if norm == "linf" else (lambda g: jnp.sqrt(jnp.sum(g * g, -1)))

    def hyperplane(u: Array) -> tuple[Array, Array]:
        """``(df, dg)``: the logit difference to cross and its gradient, for the closest (or target) class."""
        if target is not None:
            diff = lambda v: (lambda z: z[target] - z[label])(f(v))
            df, dg = jax.value_and_grad(diff)(u)
            return df, dg
        z, jac = f(u), jax.jacrev(f)(u)
        df = z - z[label]
        dg = jac - jac[label]
        dist = jnp.abs(df) / (1e-12 + dual(dg))
        k = jnp.where(jnp.arange(z.shape[0]) == label, jnp.inf, dist).argmin()
        return df[k], dg[k]

    def body(_, carry):
        x1, adv, best = carry
        df, w = hyperplane(x1)
        b = -df + _inner(w, x1)
        d1, d2 = project(x1, w, b), project(x0, w, b)
        a1 = jnp.maximum(nrm.measure(d1), 1e-8)
        a2 = jnp.maximum(nrm.measure(d2), 1e-8)
        alpha = jnp.clip(a1 / (a1 + a2), 0.0, alpha_max)
        x1 = jnp.clip((x1 + eta * d1) * (1 - alpha) + (x0 + eta * d2) * alpha, 0.0, 1.0)
        wrong = f(x1).argmax() != label
        dist = nrm.measure(x1 - x0)
        closer = wrong & (dist < best)
        adv = jnp.where(closer, x1, adv)
        best = jnp.where(closer, dist, best)
        x1 = jnp.where(wrong, x0 + (x1 - x0) * beta, x1)
        return x1, adv, best

    _, adv, best = jax.lax.fori_loop(0, steps, body, (x1, x0, jnp.asarray(jnp.inf, x.dtype)))
    return (low + scale * adv).reshape(shape), best * scale


@dataclasses.dataclass(frozen=True)
class FAB:
    """FAB as a component of :func:`~jaxfool.attacks.auto_attack`: ``restarts`` runs (the first from the input,
    later ones from random points), each over ``n_targets`` targets for FAB-T (``targeted``).
    """

    norm: str = "linf"
    targeted: bool = True
    steps: int = 100
    restarts: int = 1
    n_targets: int = 9
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    @property
    def name(self) -> str:
        return "fab-t" if self.targeted else "fab"

    @property
    def runs(self) -> int:
        return self.restarts * (self.n_targets if self.targeted else 1)

    def __call__(self, model, x: Array, label: Array, eps: Array, run: Array, *, key: Array,
                 bounds: tuple[float, float]) -> Array:
        # The reference loops targets outside restarts: run = target_index * restarts + restart.
        target, restart = None, run % self.restarts
        if self.targeted:
            logits = model(x[None])[0]
            target = jnp.argsort(logits)[logits.shape[-1] - (2 + run // self.restarts)]
        start = lambda rs: fab(model, x, label, key=key, bounds=bounds, norm=self.norm, steps=self.steps,
                               target=target, eps=eps, random_start=rs, alpha_max=self.alpha_max, eta=self.eta,
                               beta=self.beta)[0]
        if self.restarts == 1:
            return start(False)
        return jax.lax.cond(restart > 0, lambda: start(True), lambda: start(False))
