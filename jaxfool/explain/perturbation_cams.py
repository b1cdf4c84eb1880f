"""Gradient-free class activation maps: Score-CAM and Ablation-CAM, as batched, memory-bounded programs.

Both weight the channels of a layer's activation ``A [h, w, c]`` by how the class score responds when the
input or the activation is perturbed channel by channel, then sum ``sum_c w_c A[..., c]`` as Grad-CAM does:

* Score-CAM (Wang et al., 2020): each channel, upsampled to the input size (bilinear, corners aligned) and
  min-max normalised to ``[0, 1]``, masks the input; ``w = softmax_c(score(x * mask_c))``;
* Ablation-CAM (Desai & Ramaswamy, 2020): each channel of ``A`` is ablated in turn (set to 0 for non-negative
  activations, else to ``min(A) - 1e7``) and the network run on from that layer;
  ``w_c = (score - score_without_c) / score``.

Definitions follow pytorch-grad-cam's ``ScoreCAM`` and ``AblationCAM`` (the tests hold them to it). The c
perturbed forward passes are one program: a ``lax.while_loop`` over chunks of ``batch_size`` vmapped passes
(:func:`jaxfool.explain._common.chunk_loop`), so peak memory is one chunk's activations + the weights, under the
caller's ``jit`` too (unrolled chunks let XLA:CPU's scheduler keep several in flight). Score-CAM scores the
all-zero mask of constant channels once and skips their passes (:func:`score_cam_scores`). Ablation taps the
layer (:func:`jaxfool.models.forward_with_taps`), so the layers below it run once, not once per channel:
vmapping over the taps batches only what depends on them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, chunk_loop, chunked, class_score
from jaxfool.explain.gradcam import RESIZE_METHODS, spatial_layers
from jaxfool.models.network import Network, Params, forward, forward_with_taps

Array = jax.Array

#: Ablated channels of activations that can be negative are set this far below the activation's minimum.
ABLATION_VALUE = 1e7


def align_corners_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` bilinear interpolation weights with corners aligned (PyTorch's
    ``UpsamplingBilinear2d``): output ``i`` samples the input at ``i * (size_in - 1) / (size_out - 1)``."""
    pos = np.arange(size_out) * ((size_in - 1) / max(size_out - 1, 1))
    lo = np.clip(np.floor(pos).astype(int), 0, size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = pos - lo
    m = np.zeros((size_out, size_in), np.float64)
    np.add.at(m, (np.arange(size_out), lo), 1 - frac)
    np.add.at(m, (np.arange(size_out), hi), frac)
    return m.astype(np.float32)


def score_cam_masks(act: Array, size: tuple[int, int]) -> Array:
    """Score-CAM's input masks: ``act [h, w, c]`` upsampled to ``size`` with corners aligned and min-max
    normalised per channel; ``[c, H, W]`` in ``[0, 1]`` (a constant channel gives an all-zero mask)."""
    rows, cols = align_corners_matrix(act.shape[0], size[0]), align_corners_matrix(act.shape[1], size[1])
    up = jnp.einsum("Hh,hwc,Ww->cHW", rows, act, cols)
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return (up - lo) / (hi - lo + 1e-8)


def _finish(act: Array, weights: Array, relu: bool, size, resize: str) -> Array:
    cam = jnp.einsum("hwc,c->hw", act, weights)
    if relu:
        cam = jax.nn.relu(cam)
    if size is not None and cam.shape != size:
        cam = jax.image.resize(cam, size, method=resize)
    return cam


def score_cam_scores(net: Network, params: Params, x: Array, act: Array, label: Array | int, *, score: str,
                     batch_size: int) -> Array:
    """The class score of ``x [H, W, C]`` masked by each of ``act [h, w, c]``'s Score-CAM masks: ``[c]``.

    A channel whose upsampled map is constant has an all-zero mask, so its masked input is ``x * 0`` whatever
    the channel: that score is computed once (one extra pass of batch 1) and those channels' passes are
    skipped. The live channels go first (stable order) and a ``while_loop`` runs only the chunks that hold
    them, building each chunk's masked inputs inside the loop. Peak memory: one chunk's activations
    (``batch_size`` forward passes) + the weights + the ``c`` upsampled maps (``c * H * W`` floats); the
    ``c`` masked inputs never exist at once.
    """
    c, size = act.shape[-1], x.shape[:2]
    rows, cols = align_corners_matrix(act.shape[0], size[0]), align_corners_matrix(act.shape[1], size[1])
    up = jnp.einsum("Hh,hwc,Ww->cHW", rows, act, cols)
    lo, hi = up.min(axis=(1, 2)), up.max(axis=(1, 2))
    # hi == lo exactly: every (up - lo) is 0, so the mask is exactly 0 (the masks below are score_cam_masks').
    live = hi > lo
    order = jnp.argsort(~live, stable=True)
    chunk = max(1, min(int(batch_size), c))

    def scores_from(start: Array) -> Array:  # scores of the masked inputs of channels order[start : start + chunk]
        idx = jax.lax.dynamic_slice_in_dim(order, start, chunk)
        masks = (up[idx] - lo[idx, None, None]) / (hi - lo + 1e-8)[idx, None, None]
        logits = forward(net, params, x[None] * masks[..., None])[0]
        return jax.vmap(lambda lg: class_score(lg, label, score))(logits)

    ranked = chunk_loop(scores_from, c, chunk, count=live.sum())
    scores = jnp.zeros(c, ranked.dtype).at[order].set(ranked)
    dead = class_score(forward(net, params, x[None] * 0.0)[0][0], label, score)
    return jnp.where(live, scores, dead)


@functools.partial(xla.jit, static_argnames=("net", "layer", "score", "relu", "size", "resize", "batch_size"))
def _score_cam(net, params, x, label, *, layer, score, relu, size, resize, batch_size):
    act = forward(net, params, x[None], layers=(layer,))[1][layer][0]
    scores = score_cam_scores(net, params, x, act, label, score=score, batch_size=batch_size)
    return _finish(act, jax.nn.softmax(scores), relu, size, resize)


@functools.partial(xla.jit, static_argnames=("net", "layer", "score", "relu", "size", "resize", "batch_size"))
def _ablation_cam(net, params, x, label, *, layer, score, relu, size, resize, batch_size):
    logits, acts = forward(net, params, x[None], layers=(layer,))
    act = acts[layer][0]
    ablated = jnp.where(act.min() == 0, 0.0, act.min() - ABLATION_VALUE)

    def ablate(channels: Array) -> Array:  # [n] channel indices -> [n] scores without each
        def one(ch):
            tap = jnp.where(jnp.arange(act.shape[-1]) == ch, ablated - act, 0.0)[None]
            return class_score(forward_with_taps(net, params, x[None], {layer: tap})[0][0], label, score)

        return jax.vmap(one)(channels)

    original = class_score(logits[0], label, score)
    without = chunked(ablate, jnp.arange(act.shape[-1]), batch_size)
    return _finish(act, (original - without) / original, relu, size, resize)


def _check(net: Network, params: Params, x: Array, label, layer: str, score: str, resize: str, batch_size: int):
    check_example(net, x, label)
    check_score(score)
    if resize not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {resize!r}; use one of: {', '.join(RESIZE_METHODS)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    (layer,) = net.check_layers((layer,))
    spatial = spatial_layers(net, params, x)
    if layer not in spatial:
        raise ValueError(f"CAMs need a spatial layer [height, width, channels]; {layer!r} of {net.name} is not one; "
                         f"spatial layers: {', '.join(spatial)}")
    return layer


def score_cam(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    layer: str,
    score: str = "logit",
    relu: bool = True,
    upsample: bool = True,
    resize: str = "bilinear",
    batch_size: int = 64,
) -> Array:
    """Score-CAM of class ``label`` at ``layer``: ``[H, W]`` (``[h, w]`` without ``upsample``).

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        layer: a spatial layer of ``net``; its ``c`` channels cost ``c`` forward passes.
        score: the class ``"logit"`` (pytorch-grad-cam's ``ClassifierOutputTarget``) or its ``"probability"``.
        relu: keep only the positive evidence.
        upsample: resize the map to ``[H, W]`` (``jax.image.resize`` with ``resize``).
        resize: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        batch_size: masked inputs per forward pass. Peak memory is about ``batch_size x`` one input's
            activations + the weights + ``c`` upsampled maps (VGG16 ``block5_conv3`` at 224x224, 32: 0.8 GiB of
            temporaries + 0.5 GiB of weights); constant channels cost no pass.
    """
    layer = _check(net, params, x, label, layer, score, resize, batch_size)
    return _score_cam(net, params, x, label, layer=layer, score=score, relu=relu,
                      size=tuple(x.shape[:2]) if upsample else None, resize=resize, batch_size=int(batch_size))


def ablation_cam(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    layer: str,
    score: str = "logit",
    relu: bool = True,
    upsample: bool = True,
    resize: str = "bilinear",
    batch_size: int = 64,
) -> Array:
    """Ablation-CAM of class ``label`` at ``layer``: ``[H, W]``; arguments as :func:`score_cam` (``batch_size``
    ablated channels per pass). The score must not be 0 (weights are relative to it)."""
    layer = _check(net, params, x, label, layer, score, resize, batch_size)
    return _ablation_cam(net, params, x, label, layer=layer, score=score, relu=relu,
                         size=tuple(x.shape[:2]) if upsample else None, resize=resize, batch_size=int(batch_size))
