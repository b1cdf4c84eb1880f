"""Keras legacy HDF5 weights files (the official ``*_weights_tf_dim_ordering_tf_kernels[_notop].h5``).

Layout: root attribute ``layer_names``; one group per layer whose attribute ``weight_names`` lists its
datasets in Keras' order (``Conv2D``/``Dense``: kernel, bias; ``BatchNormalization``: gamma, beta,
moving_mean, moving_variance). Kernels are HWIO / ``(in, out)``, exactly the jaxfool modules' parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxfool.weights import architectures
from jaxfool.weights.common import WeightsError, check_params, file_digest

# Keras writes every layer's weights in this order; a layer has a prefix-free subset of it.
_ORDER = {2: ("kernel", "bias"), 4: ("gamma", "beta", "moving_mean", "moving_variance")}


def _decode(names: Any) -> list[str]:
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in np.atleast_1d(names)]


def _h5_names(group: Any, attr: str) -> list[str]:
    # Keras splits long name lists over attributes attr0, attr1, ... (save_attributes_to_hdf5_group).
    if attr in group.attrs:
        return _decode(group.attrs[attr])
    names, chunk = [], 0
    while f"{attr}{chunk}" in group.attrs:
        names += _decode(group.attrs[f"{attr}{chunk}"])
        chunk += 1
    return names


def _read_layers(path: Path) -> dict[str, dict[str, np.ndarray]]:
    import h5py  # runtime dependency, imported here so the rest of jaxfool does not need it

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path} is not a readable HDF5 file ({e}); it is truncated or corrupt: fetch it again")
    with f:
        root = f
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]  # a whole model saved with model.save('x.h5')
        if "layer_names" not in root.attrs and "layer_names0" not in root.attrs:
            raise WeightsError(
                f"{path} is not a Keras legacy HDF5 weights file (no root attribute 'layer_names'); Keras 3 "
                "'.weights.h5' files use another layout: save with the legacy format or use the official file"
            )
        params = {}
        try:
            for name in _h5_names(root, "layer_names"):
                if name not in root:
                    raise WeightsError(f"{path}: layer {name!r} is listed in 'layer_names' but has no group")
                group = root[name]
                weight_names = _h5_names(group, "weight_names")
                if not weight_names:
                    continue  # input, padding, pooling, activation, add, flatten
                if len(weight_names) not in _ORDER:
                    raise WeightsError(
                        f"{path}: layer {name!r} has {len(weight_names)} weights {weight_names}; jaxfool reads "
                        "convolution/dense (kernel, bias) and batch-norm (gamma, beta, moving mean, variance) layers"
                    )
                kinds = _ORDER[len(weight_names)]
                params[name] = {
                    kind: np.asarray(group[weight], np.float32) for kind, weight in zip(kinds, weight_names, strict=True)
                }
        except (KeyError, OSError) as e:
            raise WeightsError(f"{path}: a listed weight cannot be read ({e}); the file is corrupt: fetch it again")
    return params


def import_keras_h5(
    path: str | os.PathLike, *, check_hash: bool = True, model: str | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Reads VGG16 or ResNet50/101 parameters from a Keras legacy HDF5 weights file.

    Args:
        path: an official Keras file, or any file in its layout (Keras' legacy ``save_weights_to_hdf5_group``,
            or a full model saved to ``.h5``).
        check_hash: require the MD5 of one of the official files; ``False`` for a file you wrote yourself.
        model: the architecture (``'vgg16'``, ``'resnet50'``, ``'resnet101'``); default: from the MD5 of an
            official file, else from the layer names.

    Returns:
        ``(params, info)``: float32 numpy params keyed as the jaxfool module's, and ``{'model', 'source',
        'file', 'md5', 'include_top', 'preprocessing'}``.

    Raises:
        WeightsError: missing, truncated or corrupt file, wrong MD5, wrong layout, wrong shapes, non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}; fetch it with `python -m jaxfool.weights fetch MODEL`")
    md5 = file_digest(path)
    official = architectures.official_md5s()
    if check_hash and md5 not in official:
        raise WeightsError(
            f"{path}: MD5 {md5} is not that of an official Keras file ({', '.join(architectures.ARCHITECTURES)}, "
            "with or without top): the file is truncated or corrupt, delete it and fetch it again (or pass "
            "check_hash=False / --no-hash-check for a file you wrote yourself)"
        )
    params = _read_layers(path)
    name = model or (official[md5][0] if md5 in official else architectures.identify(params))
    arch = architectures.get(name)
    include_top = arch.top_layers[-1] in params
    check_params(params, arch.shapes(include_top), model=name, where=str(path))
    if check_hash and official[md5] != (name, include_top):
        raise WeightsError(
            f"{path}: its MD5 is the official {official[md5][0]} {'top' if official[md5][1] else 'notop'} file's "
            f"but its layers are {name}'s {'with' if include_top else 'without'} top; the file is corrupt: fetch it again"
        )
    info = {"model": name, "source": "keras_h5", "file": path.name, "md5": md5, "include_top": include_top,
            "preprocessing": "caffe"}
    return params, info
