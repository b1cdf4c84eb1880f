"""Run folders: one fresh folder per run, with its config and metrics as JSON.

A run never writes into an existing folder, so nothing a previous run wrote is lost, and its folder is always
``workdir/experiment/<run_name or timestamp>``: ``run_name`` is one path component, ``workdir`` is not empty.
Under :func:`tracked` (what :func:`jaxfool.cli.main` runs experiments in) a run folder holds an ``INCOMPLETE``
file until the run returns; a run that fails or is interrupted keeps it, with the reason, or loses its folder
if it wrote nothing but its config. Files are written with the permissions the user's umask gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import json
import os
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import numpy as np


INCOMPLETE = "INCOMPLETE"
_TRACKED: contextvars.ContextVar[list[pathlib.Path] | None] = contextvars.ContextVar("jaxfool_runs", default=None)


def check_run_location(workdir: str | os.PathLike, name: str = "") -> None:
    """Raises a one-line ``ValueError`` unless ``workdir`` is a usable folder path and ``name`` a folder name.

    Args:
        workdir: not empty (``''`` would write into the current folder), not an existing file.
        name: ``''`` (a timestamp is used) or a single path component: no ``/``, ``\\``, ``..``, leading ``.``.
    """
    if not str(workdir).strip():
        raise ValueError("workdir is empty; pass a folder for the runs, e.g. --config.workdir=runs")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir={os.fspath(workdir)!r} is a file, not a folder; pass a folder for the runs")
    name = str(name)
    if name and (any(c in name for c in "/\\\0") or name.startswith(".") or name != name.strip()):
        raise ValueError(
            f"run_name={name!r} is not a single folder name; use letters, digits, '-', '_' (no '/', '..', leading '.')"
        )


def new_run_dir(workdir: str | os.PathLike, experiment: str, name: str = "") -> pathlib.Path:
    """Creates and returns ``workdir/experiment/<name or timestamp>``, suffixed ``-1``, ``-2``... if taken.

    Raises:
        ValueError: ``workdir`` is empty or a file, or ``name`` is not a single folder name.
    """
    check_run_location(workdir, name)
    base = pathlib.Path(workdir) / experiment
    base.mkdir(parents=True, exist_ok=True)
    stem = name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = base / (stem if i == 0 else f"{stem}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        tracked_runs = _TRACKED.get()
        if tracked_runs is not None:
            tracked_runs.append(path)
            _write_text(path / INCOMPLETE, f"running since {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        return path
    raise RuntimeError(f"could not create a fresh run folder under {base}")


@contextlib.contextmanager
def tracked(created: list[pathlib.Path] | None = None) -> Iterator[list[pathlib.Path]]:
    """Marks the run folders created inside the ``with`` block ``INCOMPLETE`` until the block ends.

    On success the markers are removed. On an exception (Ctrl-C included) each folder keeps its marker, now
    saying what happened, or is removed if it holds only ``config.json``; the exception propagates.

    Args:
        created: a list that receives the folders created (yielded as well).
    """
    created = [] if created is None else created
    token = _TRACKED.set(created)
    try:
        yield created
    except BaseException as e:
        reason = f"interrupted ({str(e) or 'Ctrl-C'})" if isinstance(e, KeyboardInterrupt) else f"failed: {_one_line(e)}"
        for path in created:
            _mark_failed(path, reason)
        raise
    else:
        for path in created:
            (path / INCOMPLETE).unlink(missing_ok=True)
    finally:
        _TRACKED.reset(token)


def _mark_failed(path: pathlib.Path, reason: str) -> None:
    when = datetime.datetime.now().isoformat(timespec="seconds")
    contents = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if contents <= {INCOMPLETE, "config.json"}:
        for name in contents:
            (path / name).unlink()
        path.rmdir()
    else:
        _write_text(path / INCOMPLETE, f"{reason} at {when}\n")


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


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
    """Writes ``obj`` as indented JSON atomically (a temporary file renamed into place), readable as the
    umask says (``tempfile.mkstemp`` would make it 0600)."""
    _write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def _write_text(path: str | os.PathLike, text: str) -> None:
    path = pathlib.Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never follows or reuses an existing file; mode 0o666 is reduced by the umask, as open() does.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def start_run(config: Any, experiment: str) -> pathlib.Path:
    """Creates the run folder of ``config`` (its ``workdir`` and ``run_name`` fields) and writes ``config.json``."""
    run_dir = new_run_dir(config.workdir, experiment, config.run_name)
    write_json(run_dir / "config.json", config)
    return run_dir
