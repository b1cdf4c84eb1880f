"""What an attack ascends: per-example objectives on logits, and whether an attack succeeded.

Every objective is written so that the attack *maximises* it: untargeted attacks push the true class down,
targeted attacks pull the target class up. A targeted objective is the negated untargeted one evaluated at the
target label, so one code path serves both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array
LOSSES = ("ce", "margin")


def cross_entropy(logits: Array, label: Array) -> Array:
    """Softmax cross-entropy of ``logits: [num_classes]`` against the integer ``label``; a scalar."""
    return -jax.nn.log_softmax(logits)[label]


def margin(logits: Array, label: Array) -> Array:
    """Carlini-Wagner margin ``max_{j != label} z_j - z_label`` of ``logits: [num_classes]``; a scalar.

    Positive exactly when ``label`` is not the top class. Unlike cross-entropy it does not saturate once the
    softmax is confident, which is why it breaks defences that flatten the softmax (defensive distillation).
    """
    own = logits[label]
    others = jnp.where(jnp.arange(logits.shape[-1]) == label, -jnp.inf, logits)
    return others.max() - own


def objective(logits: Array, label: Array, *, loss: str, targeted: bool) -> Array:
    """The scalar an attack maximises for one example.

    Args:
        logits: ``[num_classes]``.
        label: the true class (untargeted) or the target class (targeted).
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (C&W).
        targeted: whether ``label`` is a target to reach.
    """
    value = cross_entropy(logits, label) if loss == "ce" else margin(logits, label)
    return -value if targeted else value


def is_successful(logits: Array, label: Array, *, targeted: bool) -> Array:
    """Whether ``logits: [..., num_classes]`` mean success: top class is the target, or is not the true class."""
    top = logits.argmax(-1)
    return top == label if targeted else top != label
