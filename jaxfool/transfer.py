"""Transfer of adversarial examples between networks: Xie et al.'s Table 1 (sources x attacks x targets), the
fourth study's cross-model comparison (FGSM on VGG16, ResNet101's top-1 and Grad-CAM beside VGG16's) as a table,
and the ImageNet networks with the weights they were asked for (random weights are labelled MEANINGLESS).

Works on any :class:`~jaxfool.models.Network` with the same input units (ImageNet networks here take raw RGB in
``[0, 255]`` and preprocess inside, so one ``eps`` in pixel units means the same on every one of them).
Without ground-truth labels (a folder of photos), an attack pushes away from the source's own top-1 and
succeeds on a target when it changes the target's top-1 on the clean image.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxfool import attacks, xla
from jaxfool.explain.subject import Subject, subject
from jaxfool.models.network import Network, Params
from jaxfool.weights import load_network, resolve_weights

IMAGENET_MODELS = ("vgg16", "resnet50", "resnet101")
#: The first line of every file of a run with random weights.
MEANINGLESS = "**RANDOM WEIGHTS: these numbers are MEANINGLESS.**"
TITLES = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "mifgsm": "MI-FGSM", "di2fgsm": "DI2-FGSM", "mdi2fgsm": "M-DI2-FGSM"}
_predict = xla.jit(lambda model, v: model(v).argmax(-1))


def top1(model: Any, x: np.ndarray, *, batch_size: int = 8) -> np.ndarray:
    """``[n]`` top-1 classes of ``model`` (from :func:`jaxfool.attacks.network_model`) on ``x [n, H, W, C]``."""
    return np.concatenate([np.asarray(_predict(model, x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def craft(
    name: str,
    model: Any,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    eps: float,
    key: jax.Array,
    bounds: tuple[float, float],
    steps: int = 10,
    decay: float = 1.0,
    diversity_prob: float = 0.5,
    batch_size: int = 8,
) -> np.ndarray:
    """Untargeted adversarial examples ``[n, H, W, C]`` of attack ``name`` (FGSM has one step; iterative attacks
    take ``steps`` of ``eps / steps``), in memory-bounded batches, each with its own folded-in key."""
    base = attacks.get_attack(name)
    attack = attacks.get_attack(name, steps=steps) if base.steps > 1 else base
    params = attack.params(eps, decay=decay, diversity_prob=diversity_prob)
    return np.concatenate([
        np.asarray(attacks.perturb(attack, model, x[i : i + batch_size], labels[i : i + batch_size], params,
                                   key=jax.random.fold_in(key, i), bounds=bounds))
        for i in range(0, len(x), batch_size)
    ])


def transfer_table(
    nets: Mapping[str, tuple[Network, Params]],
    x: np.ndarray,
    *,
    attack_names: Sequence[str],
    eps: float,
    key: jax.Array,
    labels: np.ndarray | None = None,
    steps: int = 10,
    decay: float = 1.0,
    diversity_prob: float = 0.5,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Crafts every attack on every network and evaluates the examples on all of them.

    Args:
        nets: ``{name: (network, params)}``, all taking the same input units.
        x: ``[n, H, W, C]`` images.
        attack_names: registry names, e.g. ``("fgsm", "ifgsm", "mifgsm", "di2fgsm", "mdi2fgsm")``.
        eps: L-inf radius in the networks' input units.
        key: PRNG key; each source and attack folds in its own.
        labels: ``[n]`` true classes; ``None``: each network's clean top-1 is its reference.
        steps, decay, diversity_prob: of the iterative attacks (see :func:`craft`).
        batch_size: images per compiled call.
        progress: show a progress bar.

    Returns:
        ``{'success': {source: {attack: {target: rate}}}, 'clean_error': {target: rate}}``; a rate is the share of
        images whose top-1 differs from the reference (the true label, or the clean top-1).
    """
    models = {name: attacks.network_model(net, params) for name, (net, params) in nets.items()}
    clean = {name: top1(model, x, batch_size=batch_size) for name, model in models.items()}
    reference = {name: (clean[name] if labels is None else np.asarray(labels)) for name in models}
    success: dict[str, dict[str, dict[str, float]]] = {}
    jobs = [(s, a) for s in models for a in attack_names]
    for i, (source, name) in enumerate(tqdm(jobs, desc="transfer", disable=not progress)):
        adv = craft(name, models[source], x, reference[source], eps=eps, key=jax.random.fold_in(key, i),
                    bounds=nets[source][0].bounds, steps=steps, decay=decay, diversity_prob=diversity_prob,
                    batch_size=batch_size)
        row = {t: float(np.mean(top1(models[t], adv, batch_size=batch_size) != reference[t])) for t in models}
        success.setdefault(source, {})[name] = row
    clean_error = {t: float(np.mean(clean[t] != reference[t])) for t in models}
    return {"success": success, "clean_error": clean_error}


def markdown(success: Mapping[str, Mapping[str, Mapping[str, float]]], clean_error: Mapping[str, float]) -> str:
    """Xie et al.'s Table 1 layout: rows source x attack, columns targets, success in percent, white-box starred."""
    models = list(clean_error)
    lines = ["| Model | Attack | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for source, rows in success.items():
        for i, (attack, row) in enumerate(rows.items()):
            cells = [f"{100 * row[t]:.1f}{'*' if t == source else ''}" for t in models]
            lines.append(f"| {source if i == 0 else ''} | {TITLES.get(attack, attack)} | " + " | ".join(cells) + " |")
    lines.append("| clean | (no attack) | " + " | ".join(f"{100 * clean_error[t]:.1f}" for t in models) + " |")
    return "\n".join(lines) + "\n"


def load_imagenet(
    name: str, weights: str | os.PathLike = "auto", *, key: jax.Array, input_shape: tuple[int, int, int] | None = None
) -> tuple[Network, Params, str]:
    """An ImageNet network of :data:`IMAGENET_MODELS` with its weights, and where they came from.

    Args:
        name: ``"vgg16"``, ``"resnet50"`` or ``"resnet101"`` (ResNets with batch-norm folded, as
            :func:`jaxfool.load_resnet50`'s default: same logits).
        weights: ``"auto"`` (official if on disk, never downloads, else random), ``"imagenet"`` (fetched if
            needed), ``"random"``, or a weights file / checkpoint folder (see :func:`jaxfool.weights.load_params`).
        key: PRNG key of random weights.
        input_shape: ``(H, W, 3)`` to fix the input size of a ResNet (any size >= 32 works), so that code which
            needs a fixed size (:func:`jaxfool.explain.subject.subject`) can use it; VGG16's is 224 x 224.

    Returns:
        ``(network, params, source)``; ``source`` is ``"imagenet"``, ``"random"`` or the file given.
    """
    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet model {name!r}; use one of {', '.join(IMAGENET_MODELS)}")
    weights = resolve_weights(weights, model=name)
    net, params = load_network(name, weights, key=key, **({} if name == "vgg16" else {"fold_batch_norm": True}))
    if input_shape is not None and None in net.input_shape:
        net = dataclasses.replace(net, input_shape=tuple(input_shape))
    return net, params, str(weights)


def imagenet_subject(
    name: str, weights: str | os.PathLike, *, key: jax.Array, layer: str = "",
    input_shape: tuple[int, int, int] | None = None,
) -> tuple[Subject, str]:
    """:func:`load_imagenet` as a :class:`~jaxfool.explain.subject.Subject` with its Grad-CAM ``layer`` (``""``:
    the last spatial layer: ``block5_pool`` for VGG16, ``conv5_block3_out`` for ResNets, which need
    ``input_shape``), and its weights' source."""
    net, params, source = load_imagenet(name, weights, key=key, input_shape=input_shape)
    return subject(net, params, layer), source


def cross_model_markdown(rows: Sequence[Mapping[str, Any]], models: Sequence[str], *, eps: float,
                         meaningless: bool = False) -> str:
    """The cross-model comparison as a markdown table: one row per image, each model's top-1 clean and on FGSM
    images crafted on the first model.

    Args:
        rows: per image ``{"image": name, model: {"clean": top, "fgsm": top}}`` where ``top`` has ``class`` and
            ``probability``; ``models[0]`` is the source of the FGSM images.
        models: the model names, as keys of the rows and column titles.
        eps: FGSM's radius, for the caption.
        meaningless: prefix :data:`MEANINGLESS` (random weights).
    """
    head = [*([MEANINGLESS, ""] if meaningless else []), f"FGSM at eps {eps:g} crafted on {models[0]}: top-1 "
            "(probability) of each network on the clean and the FGSM image.", "",
            "| image | " + " | ".join(f"{m} {k}" for m in models for k in ("clean", "FGSM")) + " |",
            "|---|" + "---|" * (2 * len(models))]
    cells = lambda top: f"{top['class']} ({top['probability']:.2f})"
    body = [f"| {row['image']} | " + " | ".join(cells(row[m][k]) for m in models for k in ("clean", "fgsm")) + " |"
            for row in rows]
    return "\n".join(head + body) + "\n"
