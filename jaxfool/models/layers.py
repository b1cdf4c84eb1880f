"""Layers shared by the models."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def first_max(views: Sequence[jax.Array]) -> jax.Array:
    """Elementwise maximum of same-shaped ``views`` whose gradient goes to the *first* maximal view.

    PyTorch's and TensorFlow's max-pooling gradients go to the first maximum of each window (row-major order);
    ``jnp.max`` splits it equally among tied maxima. Ties are the rule on MNIST, whose blank background gives
    every window there the same convolution output, so the split changes input gradients (and every gradient
    attack and explanation built on them) against the reference frameworks on identical weights. Written as
    selects, which XLA:CPU differentiates 4-14x faster than ``jnp.max`` over the window axes and about 25x
    faster than ``lax.reduce_window``'s ``select_and_scatter`` (same first-maximum rule; the MNIST CNN's pools
    at batch 256).
    """
    top = functools.reduce(jnp.maximum, views)
    out = views[-1]
    for v in reversed(views[:-1]):
        out = jnp.where(v == top, v, out)
    return out


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling with stride 2 (``VALID``) of ``x: [batch, height, width, channels]``.

    The gradient goes to each window's first maximum, as in PyTorch and TensorFlow (:func:`first_max`). Odd
    trailing rows or columns are dropped, as with ``VALID`` padding.
    """
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2].reshape(b, h // 2, 2, w // 2, 2, c)
    return first_max([x[:, :, i, :, j] for i in (0, 1) for j in (0, 1)])


# --- Convolution whose input gradient XLA:CPU can run fast inside loops -------------------------------------------
#
# JAX differentiates a convolution with respect to its input as another convolution of the output gradient with
# the spatially flipped kernel, its input/output feature axes swapped by *dimension numbers* ("HWOI"). XLA:CPU
# rewrites such non-canonical convolutions into the canonical NHWC/HWIO form that its fast kernels (YNNPACK, Eigen)
# accept -- but its ConvCanonicalization pass only visits the entry computation. Inside a ``lax.fori_loop``,
# ``lax.scan`` or ``lax.while_loop`` body the flipped-kernel convolution is left as it is and falls back to XLA's
# naive loop emitter, 3-4x slower per step (measured on the MNIST CNN: 1264 vs 333 ms per PGD step at batch 256).
# :class:`Conv` states its input gradient directly in canonical form, so an attack's step loop (and any other loop
# that differentiates through the model) runs at the speed of a top-level computation.

_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
    """2-D convolution of ``x: [batch, H, W, C_in]`` with ``kernel: [kh, kw, C_in, C_out]`` (NHWC / HWIO).

    Same values as ``lax.conv_general_dilated``; the input gradient is written as a canonical NHWC/HWIO
    convolution (see the comment above). ``padding`` is explicit ``((top, bottom), (left, right))``.
    Reverse mode only (``jax.grad``/``jax.vjp``, also nested); forward mode (``jax.jvp``) is not defined.
    """
    return _conv(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
    return _conv(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, g):
    x, kernel = residuals
    _, kernel_vjp = jax.vjp(lambda k: _conv(x, k, strides, padding), kernel)
    if strides != (1, 1):  # a strided input gradient needs base dilation, which no fast kernel takes anyway
        _, x_vjp = jax.vjp(lambda v: _conv(v, kernel, strides, padding), x)
        return x_vjp(g)[0], kernel_vjp(g)[0]
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # HWIO of the transposed convolution
    pads = ((kh - 1 - padding[0][0], kh - 1 - padding[0][1]), (kw - 1 - padding[1][0], kw - 1 - padding[1][1]))
    return _conv(g, flipped, (1, 1), pads), kernel_vjp(g)[0]


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv(nn.Module):
    """Drop-in for ``flax.linen.Conv`` (2-D, NHWC; same ``kernel``/``bias`` parameters and initialisers) built on
    :func:`conv2d`, so gradients through it stay fast inside ``lax`` loops on CPU."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (*self.kernel_size, x.shape[-1], self.features), jnp.float32
        )
        pads = tuple(jax.lax.padtype_to_pads(x.shape[1:3], self.kernel_size, self.strides, self.padding))
        y = conv2d(x, kernel, tuple(self.strides), tuple(tuple(p) for p in pads))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return y


def _canonical_conv_interceptor(next_fun, args, kwargs, context):
    """Runs an eligible ``flax.linen.Conv`` call through :func:`conv2d` with the module's own parameters."""
    module = context.module
    if type(module) is not nn.Conv or context.method_name != "__call__" or kwargs or len(args) != 1:
        return next_fun(*args, **kwargs)
    x = args[0]
    ones = (None, 1, (1, 1))
    eligible = (
        getattr(x, "ndim", 0) == 4 and len(module.kernel_size) == 2 and module.feature_group_count == 1
        and module.mask is None and module.input_dilation in ones and module.kernel_dilation in ones
        and module.dtype in (None, jnp.float32) and x.dtype == jnp.float32
        and module.has_variable("params", "kernel") and (not module.use_bias or module.has_variable("params", "bias"))
        and (module.padding in ("SAME", "VALID") or not isinstance(module.padding, str))
    )
    if not eligible:
        return next_fun(*args, **kwargs)
    strides = (1, 1) if module.strides in (None, 1) else tuple(module.strides)
    if isinstance(module.padding, str):
        pads = jax.lax.padtype_to_pads(x.shape[1:3], module.kernel_size, strides, module.padding)
    else:
        pads = [(p, p) if isinstance(p, int) else p for p in module.padding]
    y = conv2d(x, module.get_variable("params", "kernel"), strides, tuple(tuple(p) for p in pads))
    return y + module.get_variable("params", "bias") if module.use_bias else y


def canonical_conv_gradients():
    """Context manager under which every eligible ``flax.linen.Conv`` (2-D, float32, no dilation or groups) runs
    through :func:`conv2d`: same parameters and values, but input gradients XLA:CPU runs fast inside loops.

    It acts while a model is traced, so wrap the model call, e.g. in an attack's model function
    (:func:`jaxfool.attacks.network_model` does this).
    """
    return nn.intercept_methods(_canonical_conv_interceptor)
