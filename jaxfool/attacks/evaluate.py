"""Evaluating classifiers under attack: batched predictions, robust accuracy over an epsilon grid, noise inputs."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool.attacks.batch import predict_labels, sweep
from jaxfool.attacks.gradient import Attack
from jaxfool.attacks.loop import Model
from jaxfool.attacks.perlin import PerlinParams, perlin_image
from jaxfool.attacks.universal import UniversalParams, fooling_rate, universal_perturbation

Array = jax.Array


def robust_accuracy(
    attack: Attack, model: Model, x: np.ndarray, labels: np.ndarray, epsilons: Sequence[float], *,
    key: Array, bounds: tuple[float, float], batch_size: int = 250,
) -> list[float]:
    """Accuracy under ``attack`` at each of ``epsilons``: one :func:`~jaxfool.attacks.sweep` call per batch.

    Args:
        attack: the attack (its default :meth:`~jaxfool.attacks.Attack.params` at each radius).
        model: ``x [batch, H, W, C] -> logits``.
        x: ``[N, H, W, C]`` inside ``bounds``.
        labels: ``[N]`` true classes.
        epsilons: ``[K]`` radii, all run as one vmapped program per batch.
        key: PRNG key; batch ``b`` (starting at example ``start``) uses ``fold_in(key, start)``.
        bounds: the model's valid input range.
        batch_size: examples per compiled call.

    Returns:
        ``K`` accuracies: the fraction of ``x`` still classified as ``labels`` after the attack at each radius.
    """
    if len(x) != len(labels) or len(x) == 0:
        raise ValueError(f"got {len(x)} examples and {len(labels)} labels; pass one label per example, at least one")
    params = attack.params(jnp.asarray(epsilons, jnp.float32))
    correct = np.zeros(len(epsilons))
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], labels[start : start + batch_size]
        adv = sweep(attack, model, xb, yb, params, key=jax.random.fold_in(key, start), bounds=bounds)
        preds = predict_labels(model, adv.reshape(-1, *adv.shape[2:]), batch_size=len(adv) * len(xb))
        correct += np.sum(preds.reshape(len(epsilons), -1) == np.asarray(yb)[None], axis=1)
    return list(correct / len(x))


def noise_images(
    model: Model, fit: np.ndarray, *, shape: tuple[int, ...], bounds: tuple[float, float], key: Array,
    perlin: PerlinParams, perlin_images: int = 1, octaves: int = 3, universal: UniversalParams | None = None,
    universal_epochs: int = 5,
) -> tuple[list[str], np.ndarray, dict[str, float]]:
    """Inputs no training set holds: Perlin noise, and a universal perturbation drawn as an image.

    Args:
        model: ``x [batch, H, W, C] -> logits``; the universal perturbation is fitted against its own top-1 classes
            (no ground truth needed).
        fit: ``[N, H, W, C]`` images the universal perturbation is fitted on.
        shape: ``(H, W, C)`` of one image.
        bounds: the valid pixel range.
        key: PRNG key: Perlin image ``i`` folds in ``i``, the universal perturbation 10,000.
        perlin: the Perlin noise's period and colour map.
        perlin_images: how many Perlin images.
        octaves: octaves of the noise.
        universal: radius and step of the universal perturbation (``None``: none).
        universal_epochs: passes over ``fit``.

    Returns:
        ``(names, images [k, H, W, C], info)``: names ``perlin<i>`` and ``universal``; the perturbation ``delta``
        drawn as ``lo + (delta / eps + 1) / 2 * (hi - lo)``; info has its fooling rate on ``fit`` and its L-inf norm.
    """
    names = [f"perlin{i}" for i in range(perlin_images)]
    pics = [np.asarray(_perlin_image(shape, perlin, key=jax.random.fold_in(key, i), bounds=bounds, octaves=octaves))
            for i in range(perlin_images)]
    info: dict[str, float] = {}
    if universal is not None:
        delta = universal_perturbation(model, jnp.asarray(fit), jnp.asarray(predict_labels(model, fit)), universal,
                                       key=jax.random.fold_in(key, 10_000), bounds=bounds, epochs=universal_epochs,
                                       batch_size=min(64, len(fit)))
        info["universal_fooling_rate_on_fit_images"] = fooling_rate(model, fit, delta, bounds=bounds)
        info["universal_linf"] = float(jnp.abs(delta).max())
        lo, hi = bounds
        pics.append(np.asarray(lo + (delta / universal.eps + 1) / 2 * (hi - lo), np.float32))
        names.append("universal")
    return names, np.stack(pics) if pics else np.zeros((0, *shape), np.float32), info


# Jitted: op by op, the octave loop costs seconds per image.
_perlin_image = jax.jit(perlin_image, static_argnames=("shape", "bounds", "octaves"))
