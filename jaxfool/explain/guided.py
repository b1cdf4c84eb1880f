"""Guided backpropagation (Springenberg et al., 2015) and Guided Grad-CAM (Selvaraju et al., 2017).

Guided backpropagation is the input gradient of the class score where every ReLU passes back only positive
gradients at positive inputs. The rule lives in :func:`guided_relu` (a ``jax.custom_vjp``), substituted for
the model's ``relu`` attribute, so no second model definition is needed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxfool import xla
from jaxfool.explain._common import check_example, check_score, input_gradients
from jaxfool.explain.gradcam import grad_cam
from jaxfool.models.network import Network, Params

Array = jax.Array


@jax.custom_vjp
def guided_relu(x: Array) -> Array:
    """``max(x, 0)`` whose backward pass is ``g * (x > 0) * (g > 0)`` (the guided-backprop rule)."""
    return jnp.maximum(x, 0)


def _guided_relu_fwd(x):
    return jnp.maximum(x, 0), x


def _guided_relu_bwd(x, g):
    return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_relu_fwd, _guided_relu_bwd)


def guided_network(net: Network) -> Network:
    """``net`` with every ReLU replaced by :func:`guided_relu` (same parameters, same forward values).

    The model's flax module must expose its nonlinearity as a ``relu`` attribute, as jaxfool's models do.
    """
    if not hasattr(net.module, "relu"):
        raise ValueError(
            f"{net.name}'s module {type(net.module).__name__} has no `relu` attribute to swap; "
            "guided backprop needs models that take their ReLU as a module attribute"
        )
    return dataclasses.replace(net, name=f"{net.name}_guided", module=net.module.clone(relu=guided_relu))


@xla.jit(static_argnames=("net", "score"))
def _guided_backprop(net, params, x, label, score):
    return input_gradients(guided_network(net), params, x[None], label, score=score)[0]


def guided_backprop(
    net: Network, params: Params, x: Array, label: Array | int, *, score: str = "logit"
) -> Array:
    """Guided backpropagation of class ``label``: ``[H, W, C]`` (Captum's ``GuidedBackprop``).

    Args:
        net: the network (its module must have a swappable ``relu``).
        params: its parameters.
        x: one example ``[H, W, C]``.
        label: the class index to explain.
        score: ``"logit"`` or ``"probability"``.
    """
    check_example(net, x, label)
    return _guided_backprop(net, params, x, label, check_score(score))


def guided_grad_cam(
    net: Network,
    params: Params,
    x: Array,
    label: Array | int,
    *,
    layer: str,
    score: str = "logit",
    resize: str = "bilinear",
) -> Array:
    """Guided Grad-CAM: guided backprop ``[H, W, C]`` times the upsampled, rectified Grad-CAM at ``layer``.

    ``resize="nearest"`` reproduces Captum's ``GuidedGradCam`` (which upsamples by nearest neighbour).
    """
    cam = grad_cam(net, params, x, label, layer=layer, score=score, relu=True, resize=resize)
    return guided_backprop(net, params, x, label, score=score) * cam[..., None]
