"""What every importer shares: the error type, file digests and the parameter check (layout, shapes, finiteness)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


DISPLAY_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50", "resnet101": "ResNet101"}


class WeightsError(ValueError):
    """A weights file or checkpoint that cannot be used; the message names the problem and the fix."""


def default_cache_dir() -> Path:
    """Where converted checkpoints live: ``$JAXFOOL_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/jaxfool/weights``."""
    if os.environ.get("JAXFOOL_WEIGHTS_DIR"):
        return Path(os.environ["JAXFOOL_WEIGHTS_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "jaxfool" / "weights"


def keras_cache_dir() -> Path:
    """Keras' own download cache, ``~/.keras/models``: official files already there are used as they are."""
    return Path("~/.keras/models").expanduser()


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest (MD5 by default) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_params(
    params: Mapping[str, Mapping[str, Any]],
    expected: Mapping[str, Mapping[str, tuple[int, ...]]],
    *,
    model: str,
    where: str,
) -> None:
    """Raises a one-line :class:`WeightsError` unless ``params`` has exactly ``expected``'s layers, kinds and
    shapes, all values finite.

    Args:
        params: ``{layer: {kind: array}}``.
        expected: ``{layer: {kind: shape}}`` (e.g. :func:`jaxfool.weights.param_shapes`).
        model: the architecture's name, for the message.
        where: the file or checkpoint, for the message.
    """
    model = DISPLAY_NAMES.get(model, model)
    missing = [name for name in expected if name not in params]
    extra = [name for name in params if name not in expected]
    if missing or extra:
        raise WeightsError(
            f"{where}: layers do not match {model}: missing {missing[:4] or 'none'}"
            f"{' ...' if len(missing) > 4 else ''}, unexpected {extra[:4] or 'none'}{' ...' if len(extra) > 4 else ''}"
        )
    for name, kinds in expected.items():
        if set(params[name]) != set(kinds):
            raise WeightsError(f"{where}: {name} has weights {sorted(params[name])}, {model} needs {sorted(kinds)}")
        for kind, want in kinds.items():
            value = params[name][kind]
            got = tuple(np.shape(value))
            if got != tuple(want):
                raise WeightsError(f"{where}: {name}/{kind} has shape {got}, {model} needs {tuple(want)}")
            if not np.isfinite(np.asarray(value)).all():
                raise WeightsError(
                    f"{where}: {name}/{kind} holds non-finite values (NaN or inf); the weights are damaged: "
                    "use another copy of the file"
                )
