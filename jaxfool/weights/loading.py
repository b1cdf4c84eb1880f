"""Weights for experiments: ``'imagenet'`` / ``'random'`` / ``'auto'`` / a file or checkpoint, resolved to
parameters and the network those weights expect (preprocessing, ResNet variant, folded batch-norm)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxfool.models.network import Network, Params
from jaxfool.models.resnet import fold_batch_norm as _fold
from jaxfool.models.resnet import KERAS_EPSILON, TORCH_EPSILON
from jaxfool.weights import architectures
from jaxfool.weights.common import WeightsError, default_cache_dir
from jaxfool.weights.downloads import fetch, keras_files
from jaxfool.weights.store import import_weights, restore_checkpoint

log = logging.getLogger("jaxfool.weights")


def param_shapes(include_top: bool = True, *, model: str = "vgg16") -> dict[str, dict[str, tuple[int, ...]]]:
    """``{layer: {kind: shape}}`` of ``model``'s parameters (ResNets: with separate batch-norm)."""
    return architectures.get(model).shapes(include_top)


def random_params(include_top: bool, *, key: jax.Array, model: str = "vgg16") -> dict[str, dict[str, np.ndarray]]:
    """Random parameters distributed as ``keras.applications.<Model>(weights=None)``'s: Glorot-uniform kernels,
    zero biases, batch-norm at identity (gamma and variance 1, beta and mean 0).

    Drawn with numpy from a seed taken from ``key`` (deterministic in ``key``): generating 138M numbers with
    threefry under ``jit`` costs seconds of XLA:CPU compilation for a one-off initialisation.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    params = {}
    for name, shapes in param_shapes(include_top, model=model).items():
        p = {}
        for kind, shape in shapes.items():
            if kind == "kernel":
                receptive = int(np.prod(shape[:-2]))
                limit = np.float32(np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1]))))
                uniform = rng.random(shape, dtype=np.float32)  # float32 directly: half the time of float64 + cast
                uniform -= np.float32(0.5)
                uniform *= 2 * limit
                p[kind] = uniform
            else:
                p[kind] = np.full(shape, 1.0 if kind in ("gamma", "moving_variance") else 0.0, np.float32)
        params[name] = p
    return params


def _imagenet_checkpoints(model: str, cache: Path, include_top: bool) -> list[Path]:
    # A checkpoint with the classifier also serves include_top=False (the classifier is dropped on loading).
    return [cache / model] if include_top else [cache / f"{model}_notop", cache / model]


def local_imagenet_weights(
    *, include_top: bool = True, cache_dir: str | os.PathLike | None = None, model: str = "vgg16"
) -> Path | None:
    """The official ImageNet weights of ``model`` already on disk, where ``weights='imagenet'`` looks first.

    That is a converted checkpoint in ``cache_dir`` (default :func:`default_cache_dir`), else the official
    ``.h5`` in ``cache_dir`` or in Keras' cache ``~/.keras/models``. ``None`` when there is none.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    candidates = [*_imagenet_checkpoints(model, cache, include_top), *keras_files(model, cache, include_top)]
    return next((p for p in candidates if p.exists()), None)


def resolve_weights(
    weights: str | os.PathLike,
    *,
    include_top: bool = True,
    cache_dir: str | os.PathLike | None = None,
    model: str = "vgg16",
) -> str | os.PathLike:
    """``'auto'``: ``'imagenet'`` when :func:`local_imagenet_weights` finds them (never downloads), else
    ``'random'`` with a logged warning. Any other ``weights`` is returned unchanged."""
    if not (isinstance(weights, str) and weights == "auto"):
        return weights
    if local_imagenet_weights(include_top=include_top, cache_dir=cache_dir, model=model) is not None:
        return "imagenet"
    log.warning(
        "weights='auto': no official %s ImageNet weights on disk (%s), so RANDOM weights are used and the "
        "results are MEANINGLESS; get them with `python -m jaxfool.weights fetch %s%s`", model,
        Path(cache_dir) if cache_dir is not None else default_cache_dir(), model, "" if include_top else " --no-top",
    )
    return "random"


def load_params(
    model: str,
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
) -> tuple[Params, dict[str, Any]]:
    """``(params, metadata)`` of ``model`` (``'vgg16'``, ``'resnet50'``, ``'resnet101'``) for ``weights``.

    Args:
        model: the architecture.
        weights: ``'imagenet'`` (the converted Keras checkpoint in ``cache_dir``, converted or fetched on first
            use), ``'random'`` (Keras' initialisation from ``key``), ``'auto'`` (:func:`resolve_weights`), a
            checkpoint folder, or a weights file (``.h5``, ``.pth``, ``.safetensors``; imported on every call:
            convert it once instead).
        include_top: with the classifier; ``False`` drops it from weights that have it.
        key: PRNG key, required for ``'random'``.
        cache_dir: where ``'imagenet'`` checkpoints live (default :func:`default_cache_dir`).
        check_hash: check the official MD5 of a ``.h5`` file passed as ``weights``.

    Returns:
        Device-array parameters and their metadata (``source``, ``preprocessing``, ``stride_on``, ...).
    """
    arch = architectures.get(model)
    weights = resolve_weights(weights, include_top=include_top, cache_dir=cache_dir, model=model)
    if isinstance(weights, str) and weights == "random":
        if key is None:
            raise ValueError(f"weights='random' needs a PRNG key: load_params({model!r}, 'random', key=jax.random.key(0))")
        params = random_params(include_top, key=key, model=model)
        return jax.device_put(params), {"model": model, "source": "random", "include_top": include_top,
                                        "preprocessing": "caffe"}
    if isinstance(weights, str) and weights == "imagenet":
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        found = next((p for p in _imagenet_checkpoints(model, cache, include_top) if p.exists()), None)
        params, meta = restore_checkpoint(found or fetch(model, include_top=include_top, dest=cache))
    else:
        path = Path(weights)
        if path.is_dir():
            params, meta = restore_checkpoint(path)
        elif path.is_file():
            params, meta = import_weights(path, check_hash=check_hash, model=model)
        else:
            raise WeightsError(f"weights={str(weights)!r} is neither 'imagenet', 'random', 'auto' nor an existing file/folder")
    if meta.get("model", "vgg16") != model:
        raise WeightsError(f"weights {weights} are {meta.get('model', 'vgg16')}'s, not {model}'s")
    if include_top and not meta.get("include_top"):
        raise WeightsError(f"weights {weights} have no classifier (notop); use include_top=False")
    if not include_top:
        params = {name: p for name, p in params.items() if name not in arch.top_layers}
        meta = {**meta, "include_top": False}
    return jax.device_put(params), meta


def load_network(
    model: str,
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
    **options: Any,
) -> tuple[Network, Params]:
    """``(network, params)``: :func:`load_params` plus the network those weights expect (preprocessing, ResNet
    variant); ResNets take ``fold_batch_norm=`` (folds on the host once, see
    :func:`jaxfool.models.resnet.fold_batch_norm`)."""
    params, meta = load_params(model, weights, include_top=include_top, key=key, cache_dir=cache_dir,
                               check_hash=check_hash)
    net = architectures.get(model).build(include_top, meta.get("preprocessing", "caffe"), meta, **options)
    if options.get("fold_batch_norm"):
        epsilon = TORCH_EPSILON if meta.get("stride_on") == "3x3" else KERAS_EPSILON
        params = jax.device_put(_fold(jax.device_get(params), epsilon=epsilon))
    return net, params


def vgg16_params(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
) -> Params:
    """VGG16 parameters for :func:`~jaxfool.models.vgg16.vgg16` (see :func:`load_params`). Torchvision weights
    need ``vgg16(preprocess='torch')``: :func:`load_vgg16` picks the right network for you."""
    return load_params("vgg16", weights, include_top=include_top, key=key, cache_dir=cache_dir,
                       check_hash=check_hash)[0]


def load_vgg16(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
) -> tuple[Network, Params]:
    """``(network, params)`` of VGG16 with the preprocessing its weights expect (caffe for Keras and random
    weights, torchvision's for torchvision weights); its input is raw RGB in ``[0, 255]``."""
    return load_network("vgg16", weights, include_top=include_top, key=key, cache_dir=cache_dir,
                        check_hash=check_hash)


def load_resnet50(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
    fold_batch_norm: bool = True,
) -> tuple[Network, Params]:
    """``(network, params)`` of ResNet50, as :func:`load_vgg16`: the Keras variant (stride on the 1x1
    convolution, caffe preprocessing) for Keras and random weights, torchvision's v1.5 (stride on the 3x3,
    torch preprocessing) for torchvision weights; raw RGB in ``[0, 255]`` in. ``fold_batch_norm`` folds
    batch-norm into the convolutions (same logits, faster)."""
    return load_network("resnet50", weights, include_top=include_top, key=key, cache_dir=cache_dir,
                        check_hash=check_hash, fold_batch_norm=fold_batch_norm)


def load_resnet101(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
    fold_batch_norm: bool = True,
) -> tuple[Network, Params]:
    """:func:`load_resnet50` for ResNet101."""
    return load_network("resnet101", weights, include_top=include_top, key=key, cache_dir=cache_dir,
                        check_hash=check_hash, fold_batch_norm=fold_batch_norm)
