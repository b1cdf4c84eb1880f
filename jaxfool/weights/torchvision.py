"""torchvision state dicts (``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``), never
unpickled: a file holding anything but tensors is refused.

torchvision's ResNets are "v1.5" (the stride of a stage on its 3x3 convolution, no convolution biases,
batch-norm epsilon 1e-5): their checkpoints record ``stride_on='3x3'`` and the loaders build that variant; their
VGG16 flattens NCHW, so ``fc1``'s rows are permuted to NHWC order. Both expect torchvision's preprocessing
(RGB / 255, minus the ImageNet mean, over its std): ``preprocessing='torch'``.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxfool.weights import architectures
from jaxfool.weights.common import WeightsError, check_params, file_digest


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors`` file as
    float32 numpy arrays (integer buffers such as ``num_batches_tracked`` are dropped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise WeightsError(f"reading {path.name} needs safetensors: pip install safetensors") from None
        try:
            state = dict(load_file(str(path)))
        except Exception as e:  # noqa: BLE001 -- safetensors raises its own error types for bad headers
            raise WeightsError(f"{path} is not a readable safetensors file ({e}); it is truncated or corrupt")
        return {k: np.asarray(v, np.float32) for k, v in state.items() if np.issubdtype(v.dtype, np.floating)}
    try:
        import torch
    except ImportError:
        raise WeightsError(f"reading {path.name} needs PyTorch (or convert it to .safetensors)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"{path} holds objects other than tensors{what} and is refused for safety (loading it would run "
            "pickled code); save only the state dict, torch.save(model.state_dict(), path), or use .safetensors"
        ) from None
    except Exception as e:  # noqa: BLE001 -- truncated zip, bad magic number, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path} is not a loadable PyTorch state dict ({first}); it is truncated or corrupt")
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {
        k: v.detach().to(torch.float32).numpy()
        for k, v in state.items()
        if hasattr(v, "detach") and v.is_floating_point()
    }


def import_torchvision(
    path: str | os.PathLike, *, model: str | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Reads torchvision's ``vgg16``, ``resnet50`` or ``resnet101`` state dict (``.pth`` or ``.safetensors``).

    A file named as torch.hub names its downloads (``resnet50-0676ba61.pth``) must match that SHA-256 prefix.

    Args:
        path: the file.
        model: the architecture; default: from the state dict's keys.

    Returns:
        ``(params, info)`` as :func:`~jaxfool.weights.import_keras_h5`; ``info['preprocessing']`` is ``'torch'``
        and, for ResNets, ``info['stride_on']`` is ``'3x3'`` (torchvision's v1.5 bottleneck).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    prefix, sha = architectures.torch_hub_prefix(path.name), None
    if prefix:
        sha = file_digest(path, "sha256")
        if not sha.startswith(prefix):
            raise WeightsError(
                f"{path}: SHA-256 {sha[:12]}... does not start with the {prefix} in its name; "
                "the file is truncated or corrupt: download it again"
            )
    state = read_state_dict(path)
    name = model or architectures.identify(state)
    arch = architectures.get(name)
    params = arch.from_torchvision(state, str(path))
    params = {n: {k: np.ascontiguousarray(v, np.float32) for k, v in p.items()} for n, p in params.items()}
    include_top = arch.top_layers[-1] in params
    check_params(params, arch.shapes(include_top), model=name, where=str(path))
    info = {"model": name, "source": "torchvision", "file": path.name, "sha256": sha, "include_top": include_top,
            "preprocessing": "torch"}
    if name.startswith("resnet"):
        info["stride_on"] = "3x3"
    return params, info


def to_torchvision(params: Mapping[str, Any], *, model: str | None = None) -> dict[str, np.ndarray]:
    """The inverse of :func:`import_torchvision`: params as torchvision's state dict (numpy arrays;
    ``torch.from_numpy`` each to load them), so a PyTorch peer can run with the same weights."""
    name = model or architectures.identify(params)
    arch = architectures.get(name)
    check_params(params, arch.shapes(arch.top_layers[-1] in params), model=name, where="params")
    return arch.to_torchvision(params)
