"""Soundness checks for a robustness evaluation: signs that the model masks gradients, so that a low attack success
rate says little. The first four are those of AutoAttack's ``checks.py``; the fifth is from Carlini et al. (2019),
"On evaluating adversarial robustness". Each :class:`Check` says what it measured, whether it fired, what that
suggests and what to run instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Check(NamedTuple):
    """One soundness check.

    Attributes:
        name: ``randomness``, ``probabilities``, ``zero_gradients``, ``square_beats_white_box`` or
            ``eps_not_monotone``.
        flagged: whether it fired.
        value: what it measured (a difference, a fraction, percentage points).
        message: what was measured and, when flagged, what it suggests and what to run instead.
    """

    name: str
    flagged: bool
    value: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"flagged": bool(self.flagged), "value": float(self.value), "message": self.message}


def check_randomness(model, x: Array, *, stochastic: bool = False, key: Array | None = None) -> Check:
    """Calls the model twice on the same ``x: [n, H, W, C]`` (eagerly, so Python-level randomness shows)."""
    if stochastic:
        k1, k2 = jax.random.split(key)
        a, b = np.asarray(model(x, key=k1)), np.asarray(model(x, key=k2))
    else:
        a, b = np.asarray(model(x)), np.asarray(model(x))
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    flagged = diff > 0 and not stochastic
    msg = (f"two identical calls differ by up to {diff:.3g} in the outputs: the model is randomised, which defeats "
           "single-sample gradients; run version='rand' (APGD with EOT over 20 samples) with a model taking key="
           if flagged else f"identical calls agree (max difference {diff:.3g})"
           + (" across keys: randomised model, attacked with EOT" if stochastic else ""))
    return Check("randomness", flagged, diff, msg)


def check_probabilities(logits: np.ndarray, *, atol: float = 1e-4) -> Check:
    """Whether the outputs ``[n, classes]`` are probabilities (non-negative rows summing to 1) rather than logits."""
    logits = np.asarray(logits, np.float64)
    sums = logits.sum(-1)
    is_prob = bool(logits.size) and bool((logits >= -atol).all() and np.allclose(sums, 1.0, atol=atol))
    worst = float(np.max(np.abs(sums - 1.0))) if logits.size else 0.0
    msg = ("the outputs are probabilities (every row sums to 1): cross-entropy on them saturates and hides "
           "gradients; attack the logits (drop the final softmax) and rerun" if is_prob
           else f"the outputs are not probabilities (row sums differ from 1 by up to {worst:.3g})")
    return Check("probabilities", is_prob, worst, msg)


def check_zero_gradients(model, x: Array, labels: Array, *, max_fraction: float = 0.0, stochastic: bool = False,
                         key: Array | None = None) -> Check:
    """Fraction of examples whose cross-entropy input gradient is exactly zero (AutoAttack flags any)."""

    # The cross-entropy cotangent softmax(z) - onehot(y) is computed on its own, then pulled back through the model:
    # fused into one program with the model, XLA:CPU's exp rounds a saturated softmax to 1 - 6e-8 and the check
    # would see float noise instead of the exact zero that eager PyTorch (AutoAttack's reference) reports.
    def forward(v, k):
        return model(v, key=k) if stochastic else model(v)

    k = jax.random.key(0) if key is None else key
    xs = jnp.asarray(x)
    logits = jax.jit(forward)(xs, k)
    cotangent = jax.jit(jax.vmap(jax.grad(lambda z, y: -jax.nn.log_softmax(z)[y])))(logits, jnp.asarray(labels))
    grads = jax.jit(lambda v, c, k: jax.vjp(lambda u: forward(u, k), v)[1](c)[0])(xs, cotangent, k)
    zero = np.asarray(jnp.all(grads.reshape(grads.shape[0], -1) == 0, axis=-1))
    fraction = float(zero.mean()) if zero.size else 0.0
    flagged = fraction > max_fraction
    msg = (f"{zero.sum()} of {zero.size} points ({fraction:.1%}) have an exactly zero cross-entropy gradient: "
           "the softmax saturates (gradient masking, e.g. defensive distillation), so gradient attacks on "
           "cross-entropy are blind there; trust the DLR/margin attacks (APGD-T, FAB-T) and the black-box Square, "
           "or rescale the logits" if flagged else f"{zero.sum()} of {zero.size} points have a zero gradient")
    return Check("zero_gradients", flagged, fraction, msg)


def check_square(robust_accuracy: dict[str, float], *, alpha: float = 0.002) -> Check:
    """Whether Square (black-box) lowered robust accuracy below every white-box attack by more than ``alpha``."""
    if "square" not in robust_accuracy or len(robust_accuracy) <= 2:
        return Check("square_beats_white_box", False, 0.0, "Square did not run after a white-box attack")
    before = min(v for k, v in robust_accuracy.items() if k != "square")
    gain = before - robust_accuracy["square"]
    flagged = gain > alpha
    msg = (f"the black-box Square attack lowered robust accuracy by {gain:.2%} where the gradient attacks had "
           "failed: the gradients are uninformative (masked); run Square with more queries and restarts, or an "
           "adaptive attack" if flagged else f"Square lowered robust accuracy by {max(gain, 0):.2%}")
    return Check("square_beats_white_box", flagged, gain, msg)


def check_eps_monotone(epsilons: Sequence[float], accuracies: Sequence[float], *, tol: float = 0.005) -> Check:
    """Whether robust accuracy fails to fall (rises by more than ``tol``) as epsilon grows."""
    order = np.argsort(epsilons)
    accs = np.asarray(accuracies, np.float64)[order]
    rise = float(np.max(np.diff(accs), initial=0.0))
    flagged = rise > tol
    eps = np.asarray(epsilons, np.float64)[order]
    msg = (f"robust accuracy rises by {rise:.1%} as epsilon grows ({', '.join(f'{e:g}: {a:.1%}' for e, a in zip(eps, accs))}"
           "): a larger ball contains the smaller one, so the attack is failing to optimise (gradient masking); "
           "use more steps and restarts, the DLR loss or a black-box attack" if flagged
           else f"robust accuracy does not rise with epsilon (largest rise {rise:.1%})")
    return Check("eps_not_monotone", flagged, rise, msg)


def run_checks(model, x: Array, labels: Array, robust_accuracy: dict[str, float], *, key: Array,
               bounds: tuple[float, float], stochastic: bool = False, n: int = 100,
               curve: tuple[Sequence[float], Sequence[float]] | None = None) -> tuple[Check, ...]:
    """The checks on (up to ``n`` of) ``x: [N, H, W, C]``; ``curve = (epsilons, robust accuracies)`` adds the fifth."""
    xs, ys = jnp.asarray(x[:n]), jnp.asarray(labels[:n])
    logits = model(xs, key=key) if stochastic else model(xs)
    out = [
        check_randomness(model, xs, stochastic=stochastic, key=key),
        check_probabilities(np.asarray(logits)),
        check_zero_gradients(model, xs, ys, stochastic=stochastic, key=key),
        check_square(robust_accuracy),
    ]
    if curve is not None:
        out.append(check_eps_monotone(*curve))
    return tuple(out)
