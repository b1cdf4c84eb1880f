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

# A convolution with few input channels, such as the MNIST CNN's first layer (5x5, 1 -> 32), is a poor shape for
# XLA:CPU's convolution kernels: at batch 256 its input gradient (32 -> 1 channel) took 16-20 ms for 0.3 GFLOP.
# Lowered to a matmul of its ``kh * kw * C_in`` patches, the input gradient is one matmul into the patch
# gradients, each padded back to its shift and summed (autodiff's transpose of the patch slices): 4.2 ms. The
# forward pass as a matmul also keeps XLA from fusing an elementwise form of the convolution into each of the
# max-pool's consumers, which recomputed it five times. Whole input gradient of the MNIST CNN, inside a loop,
# best of 30: 141.2 -> 126.5 ms (PyTorch 134.2 ms in the same process). Wider inputs keep the convolution
# kernels: the 32 -> 64 layer's patch matmul alone (25.8-35.6 ms) is no faster than its convolution (30 ms).
# Outside differentiation the convolution kernel is kept: VGG16's first layer (3 -> 64 at 224x224, batch 8) runs
# its forward pass in 46 ms, against 81 ms as a patch matmul, though its gradient is faster as one (93 vs 175 ms).
FEW_CHANNELS = 4


def _few_channels(kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]) -> bool:
    return strides == (1, 1) and kernel.shape[2] <= FEW_CHANNELS and min(min(p) for p in padding) >= 0


def _patch_conv(x: jax.Array, kernel: jax.Array, padding: tuple[tuple[int, int], ...]) -> jax.Array:
    """Stride-1 convolution as a matmul of ``x``'s ``[batch, oh, ow, kh * kw * C_in]`` patches."""
    kh, kw, cin, cout = kernel.shape
    oh, ow = (x.shape[d + 1] + sum(padding[d]) - kernel.shape[d] + 1 for d in (0, 1))
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + oh, j:j + ow] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ kernel.reshape(kh * kw * cin, cout)


def _lax_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
    """The convolution as it runs under differentiation."""
    if _few_channels(kernel, strides, padding):
        return _patch_conv(x, kernel, padding)
    return _lax_conv(x, kernel, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
    """2-D convolution of ``x: [batch, H, W, C_in]`` with ``kernel: [kh, kw, C_in, C_out]`` (NHWC / HWIO).

    Called outside differentiation it is ``lax.conv_general_dilated``. Under ``jax.grad``/``jax.vjp`` the input
    gradient is written as a canonical NHWC/HWIO convolution; inputs with at most :data:`FEW_CHANNELS` channels run
    as a patch matmul and its transpose instead (the same values to float rounding; see the comment above).
    ``padding`` is explicit ``((top, bottom), (left, right))``. Reverse mode only (also nested); forward mode
    (``jax.jvp``) is not defined.
    """
    return _lax_conv(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
    return _conv(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, g):
    x, kernel = residuals
    kernel_grad = jax.vjp(lambda k: _lax_conv(x, k, strides, padding), kernel)[1](g)[0]
    if strides != (1, 1) or _few_channels(kernel, strides, padding):
        # A strided input gradient needs base dilation, which no fast kernel takes anyway; the patch matmul's
        # transpose has no convolution in it.
        _, x_vjp = jax.vjp(lambda v: _conv(v, kernel, strides, padding), x)
        return x_vjp(g)[0], kernel_grad
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # HWIO of the transposed convolution
    pads = ((kh - 1 - padding[0][0], kh - 1 - padding[0][1]), (kw - 1 - padding[1][0], kw - 1 - padding[1][1]))
    return _conv(g, flipped, (1, 1), pads), kernel_grad


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
