"""Trained models, cached as checkpoints keyed by what produced them.

Experiments call :func:`load_or_train`: the first call trains and saves a checkpoint; later calls with the
same network, data and training config restore it. An interrupted training resumes from its last complete
epoch; a damaged checkpoint is made again; a read-only cache costs the caching, never the training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil
from collections.abc import Callable
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
    cache_dir: str | os.PathLike,
    batch_fn: BatchFn | None = None,
    tag: str = "",
    progress: bool = False,
) -> tuple[Params, dict[str, Any]]:
    """Restores the checkpoint for ``(net, data, config, tag)`` from ``cache_dir``, or trains and saves it.

    Training checkpoints every epoch in ``cache_dir/<key>.partial/`` and resumes from there after an interruption;
    the folder is removed once the model is saved. See :func:`cached` for damaged checkpoints and read-only caches.

    Args:
        net: the network.
        data: the training and test digits.
        config: training settings (part of the cache key).
        cache_dir: where checkpoints live, one folder per key.
        batch_fn: optional minibatch transformation (adversarial training); name it in ``tag``.
        tag: distinguishes trainings the config does not describe (e.g. ``"pgd"``).
        progress: show training progress.

    Returns:
        ``(params, info)`` where info holds ``checkpoint``, ``trained_now``, ``test_accuracy`` and ``losses``.
    """
    like = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))

    def make(work: pathlib.Path | None) -> tuple[Params, dict[str, Any]]:
        params, losses = train(net, data.train_images, one_hot(data.train_labels, net.num_classes), config,
                               batch_fn=batch_fn, checkpoint_dir=work, progress=progress, desc=f"train {net.name}")
        acc = accuracy(net, params, data.test_images, data.test_labels)
        log.info("trained %s: test accuracy %.4f", net.name, acc)
        return params, {"net": net.name, "data": data.source, "test_accuracy": acc, "losses": losses,
                        "train": to_jsonable(config)}

    path = pathlib.Path(cache_dir).absolute() / model_key(net, data, config, tag)
    params, meta, trained_now = cached(path, like, make)
    if not trained_now:
        log.info("restored %s (test accuracy %.4f)", path, meta["test_accuracy"])
    return params, {**meta, "checkpoint": str(path), "trained_now": trained_now}


def cached(
    path: str | os.PathLike,
    like: Params,
    make: Callable[[pathlib.Path | None], tuple[Params, dict[str, Any]]],
) -> tuple[Params, dict[str, Any], bool]:
    """Restores the checkpoint at ``path``, or calls ``make`` and saves what it returns there.

    A damaged checkpoint at ``path`` (see :func:`jaxfool.checkpoints.restore`) is reported in one warning line,
    moved aside to ``<path>.damaged`` (replacing an older one) and made again. If the cache cannot be written
    (read-only, full), the result is still returned, with a one-line warning that it is not cached.

    Args:
        path: the checkpoint folder.
        like: a pytree of arrays or shape structs the parameters must match.
        make: ``make(work)`` -> ``(params, metadata)``; ``work`` is ``<path>.partial``, a folder for resumable
            work (e.g. ``train(..., checkpoint_dir=work)``), or ``None`` if the cache is not writable. It is
            removed once the result is saved.

    Returns:
        ``(params, metadata, made_now)``.
    """
    path = pathlib.Path(path).absolute()
    work: pathlib.Path | None = path.with_name(path.name + ".partial")
    if path.exists():
        try:
            params, meta = checkpoints.restore(path, like)
            return params, meta, False
        except checkpoints.CheckpointError as e:
            log.warning("%s; moved it aside to %s.damaged and making it again", e.problem, path.name)
            damaged = path.with_name(path.name + ".damaged")
            shutil.rmtree(damaged, ignore_errors=True)
            try:
                path.rename(damaged)
            except OSError as err:
                log.warning("cannot move %s aside (%s); the new model will not be cached", path, err)
                work = None
    try:
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
            (work / ".writable").touch()
            (work / ".writable").unlink()
    except OSError as e:
        log.warning("model cache %s is not writable (%s); training without caching the model", path.parent, e)
        work = None
    params, meta = make(work)
    if work is None:
        return params, meta, True
    try:
        checkpoints.save(path, params, meta)
    except FileExistsError:  # another process cached the same model meanwhile; both are the same training
        pass
    except OSError as e:
        log.warning("cannot cache the model at %s (%s); continuing without caching it", path, e)
        return params, meta, True
    shutil.rmtree(work, ignore_errors=True)
    return params, meta, True
