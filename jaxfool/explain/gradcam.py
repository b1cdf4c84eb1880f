"""Class activation maps from gradients: Grad-CAM, Grad-CAM++ and Layer-CAM, at one layer or at every layer.

All three weight the channels of a layer's activation ``A [h, w, c]`` by the gradient ``G`` of the class score
with respect to it, and sum over channels:

* Grad-CAM (Selvaraju et al., 2017): ``sum_c mean_hw(G)[c] * A[..., c]``;
* Grad-CAM++ (Chattopadhay et al., 2018): channel weights ``sum_hw(alpha * relu(G))`` with
  ``alpha = G^2 / (2 G^2 + sum_hw(A) G^3)`` (the closed form for an exponential score);
* Layer-CAM (Jiang et al., 2021): ``sum_c relu(G) * A``, a weight per position;
* XGrad-CAM (Fu et al., 2020): channel weights ``sum_hw(G * A) / (sum_hw(A) + 1e-7)``;
* HiResCAM (Draelos & Carin, 2020): ``sum_c G * A``, the element-wise product (faithful to the score for
  models that end in global pooling and one dense layer);
* Eigen-CAM (Muhammad & Yeasin, 2020): the projection of the centred activations on their first principal
  component (no gradient), sign-corrected so the larger extreme is positive (the SVD's sign is arbitrary).

All follow pytorch-grad-cam's definitions (tests hold them to it); gradient-free perturbation CAMs (Score-CAM,
Ablation-CAM) are in :mod:`jaxfool.explain.perturbation_cams`.

Gradients at every requested layer come from one forward and one backward pass: the layers are tapped with
zeros (:func:`jaxfool.models.zero_taps`) and differentiated with respect to the taps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, class_score
from jaxfool.models.network import Network, Params, activation_shapes, forward_with_taps, zero_taps

Array = jax.Array

METHODS = ("grad_cam", "grad_cam++", "layer_cam", "xgrad_cam", "hires_cam", "eigen_cam")
RESIZE_METHODS = ("bilinear", "nearest", "bicubic")


def spatial_layers(net: Network, params: Params, x: Array) -> tuple[str, ...]:
    """The named layers of ``net`` whose activation for ``x [H, W, C]`` is a ``[h, w, c]`` map."""
    param_shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.result_type(p)), params)
    leaves, tree = jax.tree.flatten(param_shapes)
    return _spatial_layers(net, jax.ShapeDtypeStruct(x.shape, x.dtype), tuple(leaves), tree)


@functools.lru_cache(maxsize=64)
def _spatial_layers(net, x, param_leaves, param_tree) -> tuple[str, ...]:
    # Cached: tracing a big model for shapes on every call would cost more than the CAM itself.
    params = jax.tree.unflatten(param_tree, param_leaves)
    shapes = activation_shapes(net, params, jax.ShapeDtypeStruct((1, *x.shape), x.dtype), net.layer_names)
    return tuple(name for name in net.layer_names if len(shapes[name].shape) == 4)


def layer_gradients(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    layers: Sequence[str],
    score: str = "logit",
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Activations of ``layers`` and the gradient of the class score at each, from one forward+backward pass.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        layers: names from ``net.layer_names``.
        score: ``"logit"`` or ``"probability"`` of class ``label``.

    Returns:
        ``({name: activation [...]}, {name: gradient [...]})`` without the batch axis.
    """
    check_example(net, x, label)
    return _layer_gradients(net, params, x, label, layers=net.check_layers(layers), score=check_score(score))


@functools.partial(xla.jit, static_argnames=("net", "layers", "score"))
def _layer_gradients(net, params, x, label, *, layers, score):
    xb = x[None]
    taps = zero_taps(net, params, xb, layers)

    def score_of(taps):
        logits, acts = forward_with_taps(net, params, xb, taps)
        return class_score(logits[0], label, score), acts

    grads, acts = jax.grad(score_of, has_aux=True)(taps)
    return {k: v[0] for k, v in acts.items()}, {k: v[0] for k, v in grads.items()}


def _cam(act: Array, grad: Array, method: str) -> Array:
    """``act, grad [h, w, c]`` -> the unrectified map ``[h, w]``."""
    if method == "grad_cam":
        return jnp.einsum("hwc,c->hw", act, grad.mean(axis=(0, 1)))
    if method == "layer_cam":
        return jnp.einsum("hwc,hwc->hw", act, jax.nn.relu(grad))
    if method == "hires_cam":
        return jnp.einsum("hwc,hwc->hw", act, grad)
    if method == "xgrad_cam":
        return jnp.einsum("hwc,c->hw", act, (grad * act).sum(axis=(0, 1)) / (act.sum(axis=(0, 1)) + 1e-7))
    if method == "eigen_cam":
        return eigen_projection(act)
    # Grad-CAM++: zero where the gradient is zero, as in the reference implementations (avoids 0/0).
    g2 = grad**2
    denom = 2 * g2 + act.sum(axis=(0, 1)) * g2 * grad
    alpha = jnp.where(grad != 0, g2 / jnp.where(denom != 0, denom, 1), 0)
    weights = (alpha * jax.nn.relu(grad)).sum(axis=(0, 1))
    return jnp.einsum("hwc,c->hw", act, weights)


def eigen_projection(act: Array) -> Array:
    """``act [h, w, c]`` -> ``[h, w]``: the centred activations projected on their first principal direction.

    pytorch-grad-cam's ``get_2d_projection``, with one sign convention added: the SVD determines the direction
    only up to sign (LAPACK builds differ), so the map is flipped when its most negative value is larger in
    magnitude than its most positive one (Seg-Eigen-CAM's correction), which makes it reproducible.
    """
    flat = act.reshape(-1, act.shape[-1])
    flat = flat - flat.mean(axis=0)
    _, _, vt = jnp.linalg.svd(flat, full_matrices=False)
    projection = flat @ vt[0]
    projection = jnp.where(-projection.min() > projection.max(), -projection, projection)
    return projection.reshape(act.shape[:2])


@functools.partial(xla.jit, static_argnames=("net", "layers", "method", "score", "relu", "size", "resize"))
def _cams(net, params, x, label, *, layers, method, score, relu, size, resize):
    acts, grads = _layer_gradients(net, params, x, label, layers=layers, score=score)
    out = {}
    for name in layers:
        cam = _cam(acts[name], grads[name], method)
        if relu:
            cam = jax.nn.relu(cam)
        if size is not None and cam.shape != size:
            cam = jax.image.resize(cam, size, method=resize)
        out[name] = cam
    return out


def cams(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    layers: Sequence[str] | None = None,
    method: str = "grad_cam",
    score: str = "logit",
    relu: bool = True,
    upsample: bool = True,
    resize: str = "bilinear",
) -> dict[str, Array]:
    """Class activation maps at many layers from ONE forward and ONE backward pass.

    Args:
        net: the network.
        params: its parameters.
        x: one example ``[H, W, C]`` in the network's input units.
        label: the class index to explain.
        layers: spatial layers (activations ``[h, w, c]``); default: every spatial layer after the input.
        method: one of :data:`METHODS` (see the module docstring).
        score: differentiate the class ``"logit"`` (default, as Grad-CAM does) or its ``"probability"``.
        relu: keep only the positive evidence (Grad-CAM's final ReLU).
        upsample: resize each map to ``[H, W]`` with ``jax.image.resize``; otherwise keep ``[h, w]``.
        resize: ``jax.image.resize`` method: ``"bilinear"`` (as cv2.resize in the sources), ``"nearest"``
            or ``"bicubic"``.

    Returns:
        ``{layer: map [H, W]}`` (or ``[h, w]`` without ``upsample``), in the order of ``layers``.
        Jittable and vmappable (``jax.vmap(lambda x, y: cams(net, params, x, y))``).
    """
    check_example(net, x, label)
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; use one of: {', '.join(METHODS)}")
    if resize not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {resize!r}; use one of: {', '.join(RESIZE_METHODS)}")
    check_score(score)
    spatial = spatial_layers(net, params, x)
    if layers is None:
        layers = tuple(name for name in spatial if name != net.layer_names[0])
        if not layers:
            raise ValueError(f"CAMs need a spatial layer [height, width, channels] and {net.name} names none after "
                             f"its input (layers: {', '.join(net.layer_names)})"
                             + (f"; {net.module.layer_help}" if getattr(net.module, "layer_help", None) else ""))
    layers = net.check_layers(layers)
    for name in layers:
        if name not in spatial:
            raise ValueError(
                f"CAMs need a spatial layer [height, width, channels]; {name!r} of {net.name} is not one; "
                f"spatial layers: {', '.join(spatial)}"
            )
    size = tuple(x.shape[:2]) if upsample else None
    return _cams(net, params, x, label, layers=layers, method=method, score=score, relu=relu, size=size,
                 resize=resize)


def _single_layer(method: str, doc: str) -> Callable[..., Array]:
    """The one-layer form of :func:`cams` for ``method``: same arguments, ``layer=`` instead of ``layers=``."""

    def cam(
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
    ) -> Array:
        return cams(net, params, x, label, layers=(layer,), method=method, score=score, relu=relu,
                    upsample=upsample, resize=resize)[layer]

    cam.__name__ = cam.__qualname__ = {"grad_cam++": "grad_cam_plus_plus"}.get(method, method)
    cam.__doc__ = (f"{doc}: ``[H, W]`` (``[h, w]`` without ``upsample``).\n\n    ``x`` is one example ``[H, W, C]``; "
                   "the other arguments are those of :func:`cams`.")
    return cam


grad_cam = _single_layer("grad_cam", "Grad-CAM of class ``label`` at ``layer``. Without ``relu`` and ``upsample`` "
                         "this is Captum's ``LayerGradCam(...).attribute(x, label)`` on the layer's output")
grad_cam_plus_plus = _single_layer("grad_cam++", "Grad-CAM++ of class ``label`` at ``layer``")
layer_cam = _single_layer("layer_cam", "Layer-CAM of class ``label`` at ``layer``")
xgrad_cam = _single_layer("xgrad_cam", "XGrad-CAM of class ``label`` at ``layer``")
hires_cam = _single_layer("hires_cam", "HiResCAM of class ``label`` at ``layer``")
eigen_cam = _single_layer("eigen_cam", "Eigen-CAM at ``layer`` (class-agnostic: ``label`` keeps the signature)")
