"""Trained models, cached as checkpoints keyed by what produced them.

Experiments call :func:`load_or_train`: the first call trains and saves a checkpoint; later calls with the
same network, data and training config restore it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from typing import Any

import jax

from jaxfool import checkpoints
from jaxfool.data.mnist import Mnist
from jaxfool.models.network import Network, Params
from jaxfool.runs import to_jsonable
from jaxfool.train import BatchFn, TrainConfig, accuracy, one_hot, train

log = logging.getLogger(__name__)


def model_key(net: Network, data: Mnist, config: TrainConfig, tag: str = "") -> str:
    """``<net name>-<digest>``: the digest covers the network, the data source and size, the config and tag."""
    desc = {"net": net.name, "classes": net.num_classes, "data": data.source, "n_train": len(data.train_labels),
            "train": to_jsonable(config), "tag": tag}
    digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:10]
    return f"{net.name}{'-' + tag if tag else ''}-{digest}"


def load_or_train(
    net: Network,
    data: Mnist,
    config: TrainConfig,
    *,
    cache_dir: str | pathlib.Path,
    batch_fn: BatchFn | None = None,
    tag: str = "",
    progress: bool = False,
) -> tuple[Params, dict[str, Any]]:
    """Restores the checkpoint for ``(net, data, config, tag)`` from ``cache_dir``, or trains and saves it.

    Args:
        net: the network.
        data: the training and test digits.
        config: training settings (part of the cache key).
        cache_dir: where checkpoints live, one folder per key.
        batch_fn: optional minibatch transformation (adversarial training); name it in ``tag``.
        tag: distinguishes trainings the config does not describe (e.g. ``"pgd"``).
        progress: show a training progress bar.

    Returns:
        ``(params, info)`` where info holds ``checkpoint``, ``trained_now``, ``test_accuracy`` and ``losses``.
    """
    path = pathlib.Path(cache_dir) / model_key(net, data, config, tag)
    like = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    if checkpoints.exists(path):
        params, meta = checkpoints.restore(path, like)
        log.info("restored %s (test accuracy %.4f)", path, meta["test_accuracy"])
        return params, {**meta, "checkpoint": str(path), "trained_now": False}
    params, losses = train(net, data.train_images, one_hot(data.train_labels, net.num_classes), config,
                           batch_fn=batch_fn, desc=f"train {net.name}", progress=progress)
    acc = accuracy(net, params, data.test_images, data.test_labels)
    meta = {"net": net.name, "data": data.source, "test_accuracy": acc, "losses": losses, "train": to_jsonable(config)}
    checkpoints.save(path, params, meta)
    log.info("trained %s: test accuracy %.4f, saved %s", net.name, acc, path)
    return params, {**meta, "checkpoint": str(path), "trained_now": True}
