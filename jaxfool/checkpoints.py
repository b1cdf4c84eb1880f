"""Orbax checkpoints of parameters, with a JSON metadata file, written atomically.

A checkpoint is a folder ``<path>/`` holding ``params/`` (orbax) and ``meta.json``. It is first written to
a temporary sibling folder and renamed into place, so an interrupted save never leaves a checkpoint that
looks complete.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxfool.runs import write_json


def save(path: str | os.PathLike, params: Any, metadata: dict[str, Any] | None = None) -> pathlib.Path:
    """Saves ``params`` (a pytree of arrays) and ``metadata`` to the folder ``path``; refuses to overwrite."""
    path = pathlib.Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"checkpoint {path} already exists; choose another path or delete it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / "params", jax.device_get(params))
            ckptr.wait_until_finished()
        write_json(tmp / "meta.json", metadata or {})
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a complete checkpoint."""
    path = pathlib.Path(path)
    return (path / "meta.json").is_file() and (path / "params").is_dir()


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, dict[str, Any]]:
    """Restores ``(params, metadata)`` from ``path``; ``like`` is a pytree of arrays or shape structs to match.

    Raises:
        FileNotFoundError: if ``path`` is not a complete checkpoint.
        ValueError: if the stored parameters do not match ``like``'s structure or shapes.
    """
    path = pathlib.Path(path).absolute()
    if not exists(path):
        raise FileNotFoundError(f"no checkpoint at {path} (expected params/ and meta.json)")
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like)
    with ocp.StandardCheckpointer() as ckptr:
        stored = ckptr.metadata(path / "params").item_metadata.tree
        # orbax would silently slice or pad a mismatched array; compare structure and shapes first.
        want = jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: str(tuple(a.shape)), abstract))[0]
        have = jax.tree_util.tree_flatten_with_path(jax.tree.map(lambda a: str(tuple(a.shape)), stored))[0]
        if dict(want) != dict(have):
            diff = sorted(set(have) ^ set(want), key=str)[0]
            raise ValueError(
                f"checkpoint {path} does not match the model: {jax.tree_util.keystr(diff[0])} is "
                f"{dict(have).get(diff[0], 'missing')} in the file, {dict(want).get(diff[0], 'missing')} in the model"
            )
        params = ckptr.restore(path / "params", abstract)
    return params, json.loads((path / "meta.json").read_text())
