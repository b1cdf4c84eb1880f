"""Transfer of adversarial examples between networks: Xie et al.'s Table 1 (sources x attacks x targets) and
the fourth study's cross-model comparison (FGSM on one network, top-1 and Grad-CAM of another).

Works on any :class:`~jaxfool.models.Network` with the same input units (ImageNet networks here take raw RGB in
``[0, 255]`` and preprocess inside, so one ``eps`` in pixel units means the same on every one of them).
Without ground-truth labels (a folder of photos), an attack pushes away from the source's own top-1 and
succeeds on a target when it changes the target's top-1 on the clean image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxfool import attacks, explain, xla
from jaxfool.models.network import Network, Params

TITLES = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "mifgsm": "MI-FGSM", "di2fgsm": "DI2-FGSM", "mdi2fgsm": "M-DI2-FGSM"}
_predict = xla.jit(lambda model, v: model(v).argmax(-1))
_proba = xla.jit(lambda model, v: jax.nn.softmax(model(v)))


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


def cross_model(
    source: tuple[Network, Params],
    target: tuple[Network, Params],
    x: np.ndarray,
    *,
    eps: float,
    source_layer: str,
    target_layer: str,
    key: jax.Array,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """FGSM crafted on ``source`` (away from its clean top-1), judged by both networks, with Grad-CAMs.

    Args:
        source, target: ``(network, params)``; the fourth study's are VGG16 and ResNet101.
        x: ``[n, H, W, C]`` images.
        eps: FGSM radius in input units (the study: 4 on 0-255 pixels).
        source_layer, target_layer: Grad-CAM layers (the last block: ``block5_conv3``, ``conv5_block3_out``).
        key: PRNG key of the attack (FGSM draws nothing, but every attack takes one).
        batch_size: images per compiled call.

    Returns:
        ``adv [n, H, W, C]``; ``{source,target}_{clean,adv}`` top-1 ``[n]`` and their probabilities; and
        ``{source,target}_cam_{clean,adv}`` ``[n, H, W]`` Grad-CAMs of each network's clean top-1.
    """
    (snet, sparams), (tnet, tparams) = source, target
    smodel, tmodel = attacks.network_model(snet, sparams), attacks.network_model(tnet, tparams)
    out: dict[str, np.ndarray] = {}
    s_clean = top1(smodel, x, batch_size=batch_size)
    out["adv"] = adv = craft("fgsm", smodel, x, s_clean, eps=eps, key=key, bounds=snet.bounds,
                             batch_size=batch_size)
    for who, net, params, model, layer in (("source", snet, sparams, smodel, source_layer),
                                           ("target", tnet, tparams, tmodel, target_layer)):
        # The weights are an argument, not a closure: XLA would otherwise constant-fold through 100M of them.
        cam = xla.jit(jax.vmap(lambda p, v, y, n=net, l=layer: explain.grad_cam(n, p, v, y, layer=l),
                               in_axes=(None, 0, 0)))
        clean = top1(model, x, batch_size=batch_size)
        for kind, images in (("clean", x), ("adv", adv)):
            pred = top1(model, images, batch_size=batch_size)
            probs = np.concatenate([np.asarray(_proba(model, images[i : i + batch_size]))
                                    for i in range(0, len(images), batch_size)])
            out[f"{who}_{kind}"], out[f"{who}_{kind}_p"] = pred, probs[np.arange(len(pred)), pred]
            out[f"{who}_cam_{kind}"] = np.concatenate([np.asarray(cam(params, images[i : i + batch_size], clean[i : i + batch_size]))
                                                       for i in range(0, len(images), batch_size)])
    return out
