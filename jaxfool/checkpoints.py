"""Orbax checkpoints of parameters with JSON metadata and a checksum of the arrays.

A checkpoint is ONE orbax checkpoint folder ``<path>/`` with two items: ``params`` (orbax's standard pytree
format) and ``meta`` (JSON: the caller's metadata, the format name and a sha256 of the arrays). Orbax writes it
under a temporary sibling name (``<path>.orbax-checkpoint-tmp-...``) and renames it into place when complete,
so an interrupted save never leaves anything that :func:`exists` or :func:`restore` takes for a checkpoint; a
temporary folder left by a killed process is removed by the next :func:`save` to the same path. Folders and
files get the permissions the user's umask gives (orbax creates them with the default modes).

:func:`restore` checks the structure and shapes against the model, then the checksum and that every value is
finite: a damaged checkpoint (truncated or overwritten data, missing or truncated metadata) is a one-line
:class:`CheckpointError`, never NaN weights.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import time
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool.runs import to_jsonable

# orbax.checkpoint is imported inside the functions that use it: its import runs absl's logging setup, which adds
# a handler to the root logger, and importing jaxfool must change no global state.
if TYPE_CHECKING:
    import orbax.checkpoint as ocp

FORMAT = "jaxfool-checkpoint/2"
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # what orbax appends to a folder it is still writing


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted (damaged, incomplete, non-finite, or from an older format).

    Attributes:
        problem: what is wrong, without the advice on what to do (callers that act on it say what they do).
    """

    def __init__(self, problem: str, fix: str = "delete it and write it again"):
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem


def tree_digest(tree: Any) -> str:
    """sha256 (hex) over every array of ``tree`` in tree order: its path, dtype, shape and C-order bytes."""
    h = hashlib.sha256()
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
        a = np.ascontiguousarray(leaf)
        h.update(f"{jax.tree_util.keystr(key_path)}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_finite(tree: Any, what: str) -> None:
    """Raises a one-line :class:`CheckpointError` naming the first array of ``tree`` with a NaN or infinity.

    Args:
        tree: a pytree of arrays (parameters restored or converted from a file).
        what: how the message names the tree, e.g. ``"weights file vgg16.h5"``.
    """
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
            bad = int(a.size - np.isfinite(a).sum())
            raise CheckpointError(f"{what}: {jax.tree_util.keystr(key_path)} holds {bad} NaN or infinite values",
                                  fix="")


def _checkpointer() -> ocp.Checkpointer:
    import orbax.checkpoint as ocp

    return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def _stale_tmp_folders(path: pathlib.Path) -> list[pathlib.Path]:
    return sorted(path.parent.glob(f"{path.name}{TMP_SUFFIX}*")) if path.parent.is_dir() else []


def save(path: str | os.PathLike, params: Any, metadata: dict[str, Any] | None = None) -> pathlib.Path:
    """Saves ``params`` (a pytree of arrays) and ``metadata`` (JSON-able) as one checkpoint folder ``path``.

    Raises:
        FileExistsError: if ``path`` exists (a checkpoint is never overwritten).
        CheckpointError: if a parameter is NaN or infinite (nothing is written).
    """
    import orbax.checkpoint as ocp

    path = pathlib.Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"checkpoint {path} already exists; choose another path or delete it first")
    params = jax.device_get(params)
    check_finite(params, f"parameters to save at {path}")
    meta = {"format": FORMAT, "sha256": tree_digest(params), "metadata": to_jsonable(metadata or {})}
    for stale in _stale_tmp_folders(path):  # left by a process killed while saving here
        shutil.rmtree(stale, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _checkpointer() as ckptr:
            ckptr.save(path, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                                     meta=ocp.args.JsonSave(meta)))
    except BaseException:
        # orbax's writer threads can still create the temporary folder just after an error: sweep for a second.
        deadline = time.monotonic() + 1.0
        while True:
            for partial in _stale_tmp_folders(path):
                shutil.rmtree(partial, ignore_errors=True)
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise
    return path


def exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a checkpoint folder whose save completed (its contents are checked by :func:`restore`)."""
    path = pathlib.Path(path)
    return (path / "meta").is_dir() and (path / "params").is_dir() and TMP_SUFFIX not in path.name


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The caller's metadata stored in the checkpoint ``path``, without reading the arrays.

    Raises:
        FileNotFoundError: if ``path`` is not a checkpoint folder.
        CheckpointError: if the metadata is missing, unreadable or from an older format.
    """
    return _read_meta(pathlib.Path(path).absolute())["metadata"]


def _read_meta(path: pathlib.Path) -> dict[str, Any]:
    import orbax.checkpoint as ocp

    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if (path / "meta.json").is_file() and not (path / "meta").exists():
        raise CheckpointError(f"checkpoint {path} is in an older jaxfool format without a checksum",
                              fix="write it again")
    if not exists(path):
        raise CheckpointError(f"checkpoint {path} is incomplete (no params/ or meta/)")
    try:
        with _checkpointer() as ckptr:
            meta = ckptr.restore(path, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as e:  # noqa: BLE001 -- missing file, truncated JSON, orbax errors: all mean "damaged"
        raise CheckpointError(
            f"checkpoint {path} is damaged: its metadata cannot be read ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("sha256"), str):
        raise CheckpointError(f"checkpoint {path} is damaged: its metadata lacks the {FORMAT} format and checksum")
    return meta


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, dict[str, Any]]:
    """Restores ``(params, metadata)`` from ``path``; ``like`` is a pytree of arrays or shape structs to match.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the stored parameters do not match ``like``'s structure or shapes.
        CheckpointError: (a ``ValueError``) if the checkpoint is damaged: unreadable data or metadata, a checksum
            that does not match, or NaN / infinite values.
    """
    import orbax.checkpoint as ocp

    path = pathlib.Path(path).absolute()
    meta = _read_meta(path)
    try:
        stored = ocp.StandardCheckpointHandler().metadata(path / "params").tree
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f"checkpoint {path} is damaged: its array index cannot be read ({type(e).__name__})") from None
    # orbax would silently slice or pad a mismatched array; compare structure and shapes first.
    want = dict(jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: str(tuple(a.shape)), like))[0])
    have = dict(jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: str(tuple(a.shape)), stored))[0])
    if want != have:
        diff = sorted(set(have.items()) ^ set(want.items()), key=str)[0][0]
        raise ValueError(f"checkpoint {path} does not match the model: {jax.tree_util.keystr(diff)} is "
                         f"{have.get(diff, 'missing')} in the file, {want.get(diff, 'missing')} in the model")
    # Restored as stored (the checksum covers the stored dtype), cast to ``like``'s dtypes afterwards.
    dtypes = dict(jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: a.dtype, stored))[0])
    stored_abstract = jax.tree_util.tree_map_with_path(lambda k, a: jax.ShapeDtypeStruct(a.shape, dtypes[k]), like)
    try:
        with _checkpointer() as ckptr:
            params = ckptr.restore(path, args=ocp.args.Composite(
                params=ocp.args.StandardRestore(stored_abstract))).params
        params = jax.device_get(params)
    except Exception as e:  # noqa: BLE001 -- tensorstore reports truncated or garbled chunks in many ways
        raise CheckpointError(
            f"checkpoint {path} is damaged: its arrays cannot be read ({type(e).__name__})") from None
    if tree_digest(params) != meta["sha256"]:
        raise CheckpointError(f"checkpoint {path} is damaged: its arrays do not match their sha256 checksum")
    check_finite(params, f"checkpoint {path}")
    params = jax.tree.map(lambda p, a: jnp.asarray(p, dtype=a.dtype), params, like)
    return params, meta["metadata"]

