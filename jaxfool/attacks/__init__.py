"""Gradient attacks as pure per-example functions: jit them, vmap them over examples and over hyperparameters,
shard them over a device mesh.

Quick start (``x: [N, H, W, C]`` inside the model's bounds)::

    from jaxfool import attacks
    model = attacks.network_model(net, params)          # x [batch, H, W, C] -> logits, weights as pytree leaves
    pgd = attacks.get_attack("pgd", steps=40)
    x_adv = attacks.perturb(pgd, model, x, labels, pgd.params(eps=0.3), key=key, bounds=net.bounds)
    eps = jnp.array([0.05, 0.1, 0.2, 0.3])
    x_advs = attacks.sweep(pgd, model, x, labels, pgd.params(eps=eps), key=key, bounds=net.bounds)  # [4, N, ...]

Per example, an :class:`Attack` is a function ``attack(model, x [H, W, C], label, params, *, key, bounds)``; all
attacks run the one step loop :func:`iterate`, assembled from the pieces in :mod:`~jaxfool.attacks.transforms`
and :mod:`~jaxfool.attacks.norms`. A step is an ``optax.GradientTransformation``, so any optax optimiser drives
an attack: ``get_attack("pgd", optimizer="adam")`` is Foolbox's Adam-PGD (registered as ``"adam_pgd"``).
"""

from jaxfool.attacks.apgd import APGD, apgd_run, dlr, dlr_targeted
from jaxfool.attacks.autoattack import AutoAttackResult, auto_attack
from jaxfool.attacks.batch import network_model, perturb, predict_labels, stack_params, sweep
from jaxfool.attacks.evaluate import noise_images, robust_accuracy
from jaxfool.attacks.fab import FAB, fab
from jaxfool.attacks.minimum_norm import MinimumNorm, cw_l2, deepfool, minimum_norm, robust_curve
from jaxfool.attacks.soundness import Check, run_checks
from jaxfool.attacks.square import Square, square
from jaxfool.attacks.gradient import ATTACKS, Attack, attack_names, get_attack
from jaxfool.attacks.loop import AttackParams, Model, clip_perturbation, iterate
from jaxfool.attacks.losses import cross_entropy, is_successful, margin, objective
from jaxfool.attacks.norms import L2, LINF, Norm, get_norm
from jaxfool.attacks.perlin import PerlinParams, perlin_image, perlin_noise, perlin_perturbation
from jaxfool.attacks.sharding import replicate, shard_leading
from jaxfool.attacks.transforms import (
    InputTransform,
    identity_input,
    input_diversity,
    l1_normalize,
    momentum,
    steepest,
)
from jaxfool.attacks.universal import UniversalParams, fooling_rate, universal_perturbation

__all__ = [
    "APGD",
    "ATTACKS",
    "Attack",
    "AttackParams",
    "AutoAttackResult",
    "Check",
    "FAB",
    "MinimumNorm",
    "Square",
    "apgd_run",
    "auto_attack",
    "cw_l2",
    "deepfool",
    "dlr",
    "dlr_targeted",
    "fab",
    "minimum_norm",
    "robust_curve",
    "run_checks",
    "square",
    "InputTransform",
    "L2",
    "LINF",
    "Model",
    "Norm",
    "PerlinParams",
    "UniversalParams",
    "attack_names",
    "clip_perturbation",
    "cross_entropy",
    "fooling_rate",
    "get_attack",
    "get_norm",
    "identity_input",
    "input_diversity",
    "is_successful",
    "iterate",
    "l1_normalize",
    "margin",
    "momentum",
    "network_model",
    "noise_images",
    "objective",
    "perlin_image",
    "perlin_noise",
    "perlin_perturbation",
    "perturb",
    "predict_labels",
    "replicate",
    "robust_accuracy",
    "shard_leading",
    "stack_params",
    "steepest",
    "sweep",
    "universal_perturbation",
]
