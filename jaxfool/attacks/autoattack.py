"""AutoAttack (Croce & Hein 2020): an ensemble of parameter-free attacks, each run only on the points that
every earlier attack failed on; a point is robust only if all fail. Versions as the authors' ``autoattack.py``:

- ``standard``: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries); 100 steps each.
- ``plus``: APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T.
- ``rand``: APGD-CE and APGD-DLR, 20 gradients averaged per step (EOT) for randomised models.

Each attack's run (a restart, a target) is one jitted, vmapped program over the still-robust points, gathered and
padded to one of a few bucket sizes (32, 48, 64, 96, ...) so a handful of programs serve every subset size.
Success is counted only where the model misclassifies the returned point and it lies inside the ball and the
bounds. The soundness checks of :mod:`~jaxfool.attacks.soundness` run alongside and are part of the result.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from jaxfool import checks, xla
from jaxfool.attacks import soundness
from jaxfool.attacks.apgd import APGD
from jaxfool.attacks.fab import FAB
from jaxfool.attacks.norms import get_norm
from jaxfool.attacks.square import Square

Array = jax.Array
VERSIONS = ("standard", "plus", "rand")


def components(version: str, norm: str, *, steps: int = 100, n_queries: int = 5000) -> tuple[Any, ...]:
    """The attacks of an AutoAttack ``version`` under ``norm``, in the order they run."""
    if version == "standard":
        return (APGD(norm, "ce", steps), APGD(norm, "dlr-targeted", steps), FAB(norm, True, steps),
                Square(norm, n_queries))
    if version == "plus":
        return (APGD(norm, "ce", steps, restarts=5), APGD(norm, "dlr", steps, restarts=5),
                FAB(norm, False, steps, restarts=5), Square(norm, n_queries),
                APGD(norm, "dlr-targeted", steps), FAB(norm, True, steps))
    if version == "rand":
        return (APGD(norm, "ce", steps, eot_iter=20, stochastic=True),
                APGD(norm, "dlr", steps, eot_iter=20, stochastic=True))
    raise ValueError(f"unknown AutoAttack version {version!r}; valid versions: {', '.join(VERSIONS)}")


class AutoAttackResult(NamedTuple):
    """What AutoAttack found.

    Attributes:
        x_adv: ``[N, H, W, C]``: for each fooled point the first successful adversarial example, else the input.
        robust: ``[N]`` bool: correctly classified and no attack succeeded.
        clean_correct: ``[N]`` bool.
        fooled_by: ``[N]`` index into ``attacks`` of the attack that succeeded, -1 if none (or misclassified).
        attacks: the attacks' names, in order.
        robust_accuracy: ``{"clean": acc, name: robust accuracy after that attack, ...}`` (cumulative).
        seconds: ``{name: wall-clock seconds}``.
        checks: the soundness checks (:class:`~jaxfool.attacks.soundness.Check`).
    """

    x_adv: np.ndarray
    robust: np.ndarray
    clean_correct: np.ndarray
    fooled_by: np.ndarray
    attacks: tuple[str, ...]
    robust_accuracy: dict[str, float]
    seconds: dict[str, float]
    checks: tuple[soundness.Check, ...]


def auto_attack(
    model,
    x: Array,
    labels: Array,
    *,
    eps: float,
    norm: str = "linf",
    version: str = "standard",
    key: Array,
    bounds: tuple[float, float],
    attacks: tuple[Any, ...] | None = None,
    batch_size: int = 500,
    run_checks: bool = True,
    progress: bool = False,
) -> AutoAttackResult:
    """Runs AutoAttack on a batch.

    Args:
        model: ``x [batch, H, W, C] -> logits [batch, classes]``, a pytree model
            (:func:`~jaxfool.attacks.network_model`) or a function; for ``version="rand"``, ``model(x, key=key)``.
        x: ``[N, H, W, C]`` inside ``bounds``.
        labels: ``[N]`` true classes.
        eps: radius of the threat ball.
        norm: ``"linf"`` or ``"l2"``.
        version: ``"standard"``, ``"plus"`` or ``"rand"``.
        key: PRNG key; example ``i`` of run ``r`` of attack ``a`` uses ``fold_in(fold_in(fold_in(key, a), r), i)``,
            so a point's result does not depend on which others are still robust.
        bounds: valid ``(low, high)`` input range.
        attacks: replaces the version's attacks (e.g. fewer steps for a quick look).
        batch_size: most points per compiled call.
        run_checks: run the soundness checks (a few extra model calls).
        progress: log each attack's robust accuracy.

    Returns:
        An :class:`AutoAttackResult`.
    """
    get_norm(norm)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bounds = (float(bounds[0]), float(bounds[1]))
    checks.check_images(x, (None, None, None), bounds, batched=True, what="attack input")
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(x)},), got {labels.dtype} {labels.shape}")
    attacks = components(version, norm) if attacks is None else tuple(attacks)
    stochastic = any(getattr(a, "stochastic", False) for a in attacks)
    pytree = model if isinstance(model, Partial) else Partial(model)
    logits = _predict(pytree, x, batch_size, key if stochastic else None)
    num_classes = logits.shape[-1]
    if labels.size and not (0 <= labels.min() and labels.max() < num_classes):
        raise ValueError(f"labels must be class indices in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    needs = max((4 if getattr(a, "loss", "") == "dlr-targeted" else 3 if getattr(a, "loss", "") == "dlr" else 2)
                for a in attacks)
    if num_classes < needs:
        raise ValueError(f"the model has {num_classes} classes; {needs} are needed for the DLR losses: drop those attacks")
    for a in attacks:
        n_targets = getattr(a, "n_targets", 0) if getattr(a, "targeted", getattr(a, "loss", "") == "dlr-targeted") else 0
        if n_targets > num_classes - 1:
            raise ValueError(f"{a.name} asks for {n_targets} targets but the model has {num_classes - 1} wrong classes")

    correct = logits.argmax(-1) == labels
    robust = correct.copy()
    x_adv = x.copy()
    fooled_by = np.full(len(x), -1, np.int64)
    accs: dict[str, float] = {"clean": float(correct.mean()) if len(x) else 0.0}
    seconds: dict[str, float] = {}
    nrm = get_norm(norm)
    for a_index, attack in enumerate(attacks):
        start = time.perf_counter()
        for run in range(attack.runs):
            todo = np.flatnonzero(robust)
            if not todo.size:
                break
            run_key = jax.random.fold_in(jax.random.fold_in(key, a_index), run)
            for begin in range(0, todo.size, batch_size):
                idx = todo[begin : begin + batch_size]
                padded = np.concatenate([idx, np.full(_bucket(idx.size, batch_size) - idx.size, idx[0])])
                adv, wrong, dist = _attack_subset(attack, pytree, x[padded], labels[padded], jnp.float32(eps),
                                                  jnp.int32(run), run_key, jnp.asarray(padded), bounds, nrm.name)
                adv, wrong, dist = np.asarray(adv)[: idx.size], np.asarray(wrong)[: idx.size], np.asarray(dist)
                ok = wrong & (dist[: idx.size] <= eps * (1 + 1e-5) + 1e-6)
                x_adv[idx[ok]] = adv[ok]
                robust[idx[ok]] = False
                fooled_by[idx[ok]] = a_index
        seconds[attack.name] = round(time.perf_counter() - start, 2)
        accs[attack.name] = float(robust.mean()) if len(x) else 0.0
        if progress:
            print(f"{attack.name}: robust accuracy {accs[attack.name]:.2%} ({seconds[attack.name]:.1f} s)", flush=True)

    found = ()
    if run_checks:
        found = soundness.run_checks(model, x, labels, accs, key=jax.random.fold_in(key, 10_000), bounds=bounds,
                                     stochastic=stochastic)
    names = tuple(a.name for a in attacks)
    return AutoAttackResult(x_adv, robust, correct, fooled_by, names, accs, seconds, found)


def _bucket(n: int, cap: int, smallest: int = 32) -> int:
    """The smallest of ``smallest * (1, 1.5, 2, 3, 4, 6, ...)`` that holds ``n`` points, at most ``cap``: few
    shapes, so few compilations, and under a third of a call is padding (powers of two alone padded 83 robust
    points to 128, and FAB and Square run every padded point in full)."""
    size = smallest
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return min(cap, size)


@functools.partial(xla.jit, static_argnames=("attack", "bounds", "norm_name"))
def _attack_subset(attack, model, x, labels, eps, run, key, index, bounds, norm_name):
    """Runs ``attack`` (run ``run``) on the gathered points; returns ``(x_adv, misclassified, distance)``."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
    adv = jax.vmap(lambda xi, yi, ki: attack(model, xi, yi, eps, run, key=ki, bounds=bounds))(x, labels, keys)
    adv = jnp.clip(adv, *bounds)
    logits = (model(adv, key=jax.random.fold_in(key, -1)) if getattr(attack, "stochastic", False) else model(adv))
    dist = jax.vmap(get_norm(norm_name).measure)(adv - x)
    return adv, logits.argmax(-1) != labels, dist


def _predict(model, x: np.ndarray, batch_size: int, key: Array | None) -> np.ndarray:
    run = xla.jit(lambda m, v, k: m(v, key=k) if k is not None else m(v))
    return np.concatenate([np.asarray(run(model, x[i : i + batch_size], key)) for i in range(0, len(x), batch_size)]
                          or [np.zeros((0, 1), np.float32)])
