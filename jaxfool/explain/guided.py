"""Guided backpropagation (Springenberg et al., 2015) and Guided Grad-CAM (Selvaraju et al., 2017).

Guided backpropagation is the input gradient of the class score where every ReLU passes back only positive
gradients at positive inputs. The rule lives in :func:`guided_relu` (a ``jax.custom_vjp``); :func:`guided` traces
any model to a jaxpr and re-evaluates it with its ``jax.nn.relu`` calls replaced by that rule, so Linen, NNX,
Equinox models and plain functions need no edit and no second definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import DropVar, Literal, jaxprs_in_params

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


_CALLS = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call")


def _sub_jaxpr(eqn) -> tuple[Any, list] | None:
    """``(jaxpr, consts)`` of a call-like equation whose body can be evaluated inline, else ``None``."""
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if sub is not None:
            return (sub.jaxpr, list(sub.consts)) if hasattr(sub, "consts") else (sub, [])
    return None


def _is_relu(eqn) -> bool:
    """A ``custom_jvp`` call whose body, through nested jits, is ``max(x, 0)``: ``jax.nn.relu`` (= ``nn.relu``,
    ``nnx.relu``). A bare ``max(x, 0)`` is not matched: it is indistinguishable from any other maximum."""
    if eqn.primitive.name != "custom_jvp_call" or len(eqn.outvars) != 1:
        return False
    jaxpr, _ = _sub_jaxpr(eqn)
    while len(jaxpr.eqns) == 1 and _sub_jaxpr(jaxpr.eqns[0]) is not None and jaxpr.eqns[0].primitive.name != \
            "custom_jvp_call":
        jaxpr = _sub_jaxpr(jaxpr.eqns[0])[0]
    if len(jaxpr.eqns) != 1 or len(jaxpr.invars) != 1:
        return False
    (body,) = jaxpr.eqns
    zero = [v for v in body.invars if isinstance(v, Literal) and np.ndim(v.val) == 0 and v.val == 0]
    return body.primitive.name == "max" and len(zero) == 1 and jaxpr.invars[0] in body.invars


def _has_relu(jaxpr) -> bool:
    return any(_is_relu(e) or any(_has_relu(j) for j in subjaxprs_of(e)) for e in jaxpr.eqns)


def subjaxprs_of(eqn) -> list:
    return [j.jaxpr if hasattr(j, "jaxpr") else j for j in jaxprs_in_params(eqn.params)]


def _eval_guided(jaxpr, consts, args, found: list) -> list:
    """Evaluates ``jaxpr`` with every ReLU call replaced by :func:`guided_relu` (counted in ``found``)."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for var, val in zip(jaxpr.constvars, consts):
        env[var] = val
    for var, val in zip(jaxpr.invars, args):
        env[var] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if _is_relu(eqn):
            found.append(eqn)
            outs = [guided_relu(invals[0])]
        elif sub is not None and _has_relu(sub[0]):
            # Inline the body (its invars are all the operands): a custom_jvp/vjp rule around ReLUs gives way to
            # the derivative of its body, with the guided rule inside.
            outs = _eval_guided(sub[0], sub[1], invals, found)
        else:
            if any(_has_relu(j) for j in subjaxprs_of(eqn)):
                raise ValueError(f"guided backprop cannot substitute the ReLUs inside a {eqn.primitive.name} "
                                 "(lax.scan, cond or while loop) of this model")
            params = eqn.primitive.get_bind_params(eqn.params)
            subfuns, params = params if isinstance(params, tuple) else ((), params)  # JAX < 0.7: (subfuns, params)
            outs = eqn.primitive.bind(*subfuns, *invals, **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        for var, val in zip(eqn.outvars, outs):
            if not isinstance(var, DropVar):
                env[var] = val
    return [read(v) for v in jaxpr.outvars]


def guided(fn: Callable[..., Any], *, what: str = "the model") -> Callable[..., Any]:
    """``fn`` with every ``jax.nn.relu`` (``nn.relu``, ``nnx.relu``) replaced by :func:`guided_relu`.

    ``fn`` is traced to a jaxpr and re-evaluated with the ReLU calls swapped, recursing into nested jits and
    custom-derivative calls, so a Linen, NNX or Equinox model or a plain function needs no edit. Same forward
    values. A ReLU written as ``jnp.maximum(x, 0)`` looks like any maximum and is left alone: if ``fn`` has no
    ReLU call at all, calling the result raises a one-line error saying so.
    """

    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        found: list = []
        outs = _eval_guided(closed.jaxpr, closed.consts, jax.tree.leaves(args), found)
        if not found:
            raise ValueError(f"guided backprop found no jax.nn.relu call in {what}: a ReLU written as "
                             "jnp.maximum(x, 0) cannot be told from any other max; write it as jax.nn.relu")
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return wrapped


class _Guided:
    """``inner`` (a Linen module or an adapter) evaluated through :func:`guided`; same variables."""

    def __init__(self, inner: Any, name: str):
        self.inner, self.name = inner, name
        self.layer_help = getattr(inner, "layer_help", None)

    def __eq__(self, other):
        return isinstance(other, _Guided) and (self.inner, self.name) == (other.inner, other.name)

    def __hash__(self):
        return hash((_Guided, self.inner, self.name))

    def init(self, key: Array, x: Array):
        return self.inner.init(key, x)

    def apply(self, variables, x: Array, *, taps=None):
        forward = lambda v, x, t: self.inner.apply(v, x, taps=t)  # noqa: E731
        return guided(forward, what=self.name)(variables, x, dict(taps or {}))


def guided_network(net: Network) -> Network:
    """``net`` with every ReLU replaced by :func:`guided_relu` (same parameters, same forward values).

    Works on any network, jaxfool's own or adapted (:func:`jaxfool.models.from_linen` ...): see :func:`guided`.
    """
    return dataclasses.replace(net, name=f"{net.name}_guided", module=_Guided(net.module, net.name))


@xla.jit(static_argnames=("net", "score"))
def _guided_backprop(net, params, x, label, score):
    return input_gradients(guided_network(net), params, x[None], label, score=score)[0]


def guided_backprop(
    net: Network, params: Params, x: Array, label: Array | int, *, score: str = "logit"
) -> Array:
    """Guided backpropagation of class ``label``: ``[H, W, C]`` (Captum's ``GuidedBackprop``).

    Args:
        net: the network (any: its ``jax.nn.relu`` calls are found in its jaxpr).
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
