"""ImageNet pre- and post-processing as Keras applications do it, and the 1000 class names.

The class index ships with jaxfool (``jaxfool/data/imagenet_class_index.json``): byte for byte the file Keras
downloads for ``decode_predictions`` (MD5 ``c2c37ea517e94d9795004a39431a14cb``),
``{"0": ["n01440764", "tench"], ..., "999": ["n15075141", "toilet_tissue"]}``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jax.numpy as jnp
import numpy as np

NUM_CLASSES = 1000
# Per-channel ImageNet statistics: the caffe mean in BGR order (Keras weights), torchvision's in RGB order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
_MODES = ("caffe", "torch")


@functools.cache
def class_index() -> dict[int, tuple[str, str]]:
    """``{class: (wordnet_id, name)}`` for the 1000 ImageNet classes, e.g. ``65: ('n01751748', 'sea_snake')``."""
    text = resources.files("jaxfool").joinpath("data/imagenet_class_index.json").read_text(encoding="utf-8")
    return {int(k): (v[0], v[1]) for k, v in json.loads(text).items()}


@functools.cache
def class_names() -> tuple[str, ...]:
    """The 1000 Keras class names in class order (``'tench'``, ``'goldfish'``, ...)."""
    index = class_index()
    return tuple(index[i][1] for i in range(NUM_CLASSES))


def class_id(name: str) -> int:
    """The class index of a Keras class name (``'triceratops'`` -> 51) or WordNet id (``'n01704323'``)."""
    for i, (wnid, label) in class_index().items():
        if name in (wnid, label):
            return i
    raise ValueError(f"unknown ImageNet class {name!r}; use a name such as 'sea_snake' or a WordNet id 'n01751748'")


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; use one of {', '.join(_MODES)}")


def preprocess_input(x: Any, mode: str = "caffe") -> jnp.ndarray:
    """Keras' ``imagenet_utils.preprocess_input`` for channels-last RGB pixels in ``[0, 255]``.

    ``"caffe"`` (VGG16's Keras weights): RGB to BGR, minus the ImageNet mean ``[103.939, 116.779, 123.68]``
    (BGR), no scaling. ``"torch"`` (torchvision's weights): ``/ 255``, minus ``[0.485, 0.456, 0.406]``,
    divided by ``[0.229, 0.224, 0.225]``, RGB kept. Unlike Keras, ``x`` is never modified in place.

    Args:
        x: ``[..., 3]`` RGB pixels, any leading shape.
        mode: ``"caffe"`` or ``"torch"``.

    Returns:
        ``[..., 3]`` float32.
    """
    _check_mode(mode)
    x = jnp.asarray(x, jnp.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"preprocess_input expects RGB channels last, got shape {x.shape}; transpose NCHW to NHWC")
    if mode == "caffe":
        return x[..., ::-1] - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
    return (x / 255.0 - jnp.asarray(TORCH_MEAN_RGB, jnp.float32)) / jnp.asarray(TORCH_STD_RGB, jnp.float32)


def deprocess_input(x: Any, mode: str = "caffe") -> jnp.ndarray:
    """The inverse of :func:`preprocess_input`: preprocessed ``[..., 3]`` back to RGB pixels (float32, unclipped)."""
    _check_mode(mode)
    x = jnp.asarray(x, jnp.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"deprocess_input expects channels last, got shape {x.shape}; transpose NCHW to NHWC")
    if mode == "caffe":
        return (x + jnp.asarray(CAFFE_MEAN_BGR, jnp.float32))[..., ::-1]
    return (x * jnp.asarray(TORCH_STD_RGB, jnp.float32) + jnp.asarray(TORCH_MEAN_RGB, jnp.float32)) * 255.0


def decode_predictions(probs: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Top-``top`` classes per example, as Keras' ``decode_predictions`` returns them.

    Args:
        probs: ``[batch, 1000]`` probabilities (or any scores: logits rank the same).
        top: how many classes per example.

    Returns:
        One list per example of ``(wordnet_id, class_name, score)`` tuples, highest score first.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"decode_predictions expects [batch, {NUM_CLASSES}] scores, got shape {probs.shape}; add a batch axis "
            "with probs[None] for one example"
        )
    if not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"top={top} out of range; use 1..{NUM_CLASSES}")
    index = class_index()
    results = []
    for row in probs:
        # Same selection and ordering as Keras (argsort, reversed tail, then a stable sort by score).
        best = row.argsort()[-top:][::-1]
        result = [(*index[int(i)], row[i]) for i in best]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results
