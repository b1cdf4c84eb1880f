"""Converted weights as :mod:`jaxfool.checkpoints` folders: ``params/`` (orbax) and ``meta/`` (JSON: model, source,
hash, ``include_top``, preprocessing), written atomically and checked (layout, shapes, finite values) both ways."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxfool import checkpoints
from jaxfool.weights import architectures
from jaxfool.weights.common import WeightsError, check_params, default_cache_dir
from jaxfool.weights.keras_h5 import import_keras_h5
from jaxfool.weights.torchvision import import_torchvision

METADATA_FILE = "meta.json"  # written by jaxfool.checkpoints before its format 2 (recognised to refuse it)
FORMAT = 1


def import_weights(
    path: str | os.PathLike, *, check_hash: bool = True, model: str | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Reads a Keras ``.h5`` or a torchvision ``.pth`` / ``.pt`` / ``.safetensors`` file (see the importers)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return import_keras_h5(path, check_hash=check_hash, model=model)
    if suffix in (".pth", ".pt", ".bin", ".safetensors"):
        return import_torchvision(path, model=model)
    raise WeightsError(f"unknown weights file type {suffix!r} ({path}); use a Keras .h5 or a torchvision .pth file")


def save_checkpoint(
    params: Mapping[str, Any], path: str | os.PathLike, *, metadata: Mapping[str, Any], overwrite: bool = False
) -> Path:
    """Writes ``params`` and ``metadata`` as a checkpoint folder at ``path``.

    ``metadata['model']`` names the architecture (default ``'vgg16'``, as checkpoints before ResNets). The folder
    is written under a temporary name and renamed into place when complete; on any error nothing is left
    behind and an existing checkpoint being overwritten is kept.
    """
    path = Path(path).absolute()
    model = metadata.get("model") or architectures.identify(params)
    arch = architectures.get(model)
    include_top = bool(metadata.get("include_top", arch.top_layers[-1] in params))
    check_params(params, arch.shapes(include_top), model=model, where="checkpoint to save")
    meta = {"format": FORMAT, **metadata, "model": model, "include_top": include_top}
    if not path.exists():
        return checkpoints.save(path, params, meta)
    if not overwrite:
        raise WeightsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    staged = checkpoints.save(path.with_name(f".{path.name}.new-{os.getpid()}"), params, meta)
    old = path.rename(path.with_name(f".{path.name}.old-{os.getpid()}"))
    staged.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint folder (model, source, hash, ``include_top``, preprocessing)."""
    path = Path(path)
    if not checkpoints.exists(path) and not (path / METADATA_FILE).is_file():
        raise WeightsError(
            f"{path} is not a jaxfool weights checkpoint (no meta/ and params/); "
            "make one with `python -m jaxfool.weights convert FILE`"
        )
    try:
        meta = checkpoints.read_metadata(path)
    except checkpoints.CheckpointError as e:  # damaged, or the older format without a checksum: refused
        raise WeightsError(f"{e.problem}; convert it again with `python -m jaxfool.weights convert FILE`") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path} holds no metadata object; the checkpoint is damaged: convert it again")
    return meta


def restore_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads a checkpoint written by :func:`save_checkpoint`: ``(params, metadata)``, checked like an import."""
    path = Path(path).absolute()
    meta = read_metadata(path)
    model = meta.get("model", "vgg16")
    expected = architectures.get(model).shapes(bool(meta.get("include_top")))
    like = {
        name: {kind: jax.ShapeDtypeStruct(shape, np.float32) for kind, shape in shapes.items()}
        for name, shapes in expected.items()
    }
    try:
        params, _ = checkpoints.restore(path, like)
    except checkpoints.CheckpointError as e:
        raise WeightsError(f"{e.problem}; convert it again with `python -m jaxfool.weights convert FILE`") from None
    except ValueError as e:
        raise WeightsError(str(e).splitlines()[0]) from None
    except Exception as e:  # noqa: BLE001 -- orbax/tensorstore raise many types for damaged checkpoints
        raise WeightsError(f"{path}: the orbax checkpoint cannot be read ({type(e).__name__}); it is damaged: "
                           "convert it again")
    check_params(params, expected, model=model, where=f"checkpoint {path}")
    return params, meta


def checkpoint_name(info: Mapping[str, Any]) -> str:
    """The cache folder name of converted weights: ``resnet50``, ``vgg16_notop``, ``resnet101_torchvision``, ..."""
    source = "" if info["source"] == "keras_h5" else "_torchvision"
    return f"{info.get('model', 'vgg16')}{source}{'' if info['include_top'] else '_notop'}"


def convert(
    src: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    *,
    check_hash: bool = True,
    overwrite: bool = False,
    model: str | None = None,
) -> Path:
    """Imports a weights file (:func:`import_weights`) and saves it as a checkpoint; returns the folder.

    ``dest`` defaults to ``<cache>/<checkpoint_name>`` (:func:`checkpoint_name`), e.g. ``<cache>/resnet50``.
    """
    params, info = import_weights(src, check_hash=check_hash, model=model)
    if dest is None:
        dest = default_cache_dir() / checkpoint_name(info)
    return save_checkpoint(params, dest, metadata=info, overwrite=overwrite)
