"""Run folders: one fresh folder per run, with its config and metrics as JSON.

A run never writes into an existing folder, so nothing a previous run wrote is lost.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np


def new_run_dir(workdir: str | os.PathLike, experiment: str, name: str = "") -> pathlib.Path:
    """Creates and returns ``workdir/experiment/<name or timestamp>``, suffixed ``-1``, ``-2``... if taken."""
    base = pathlib.Path(workdir) / experiment
    base.mkdir(parents=True, exist_ok=True)
    stem = name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = base / (stem if i == 0 else f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run folder under {base}")


def to_jsonable(obj: Any) -> Any:
    """Converts dataclasses, numpy arrays and scalars, tuples and paths into JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pathlib.Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON atomically (a temporary file renamed into place)."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(obj), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def start_run(config: Any, experiment: str) -> pathlib.Path:
    """Creates the run folder of ``config`` (its ``workdir`` and ``run_name`` fields) and writes ``config.json``."""
    run_dir = new_run_dir(config.workdir, experiment, config.run_name)
    write_json(run_dir / "config.json", config)
    return run_dir
