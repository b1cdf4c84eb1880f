"""ResNet50 and ResNet101 (He et al., 2015) as ``keras.applications`` builds them, with Keras' layer names.

``conv1_conv`` (7x7/2, 64) -> ``conv1_bn`` -> ``conv1_relu`` -> ``pool1_pool`` (3x3/2 max), then four stages
``conv2`` ... ``conv5`` of bottleneck blocks (1x1, 3x3, 1x1 convolutions with ``4 * filters`` outputs, each
followed by batch-norm, added to a shortcut; the first block of a stage has a projection shortcut ``_0_conv``),
then with the classifier ``avg_pool`` (global average) and ``predictions`` (1000).

Parameters are keyed by Keras layer name with Keras' shapes: convolutions ``{'kernel': HWIO, 'bias'}``,
batch-norm ``{'gamma', 'beta', 'moving_mean', 'moving_variance'}`` (per channel), so the official Keras files
map onto them one to one (:mod:`jaxfool.weights`). Batch-norm always runs in inference mode. With
``batch_norm="folded"`` the parameters hold only convolutions, each batch-norm folded into the convolution
before it (:func:`fold_batch_norm`): the same function with one elementwise pass fewer per convolution.

Two variants of the bottleneck: ``stride_on="1x1"`` is Keras' (the original paper's, "v1": a stage's stride on
the first 1x1 convolution), ``stride_on="3x3"`` is torchvision's ("v1.5": the stride on the 3x3 convolution,
no convolution biases, batch-norm epsilon 1e-5 instead of Keras' 1.001e-5). Each set of weights needs its own;
torchvision's missing biases are zeros here, so both families share one parameter layout.

The named activations are ``inputs``, ``conv1_relu``, ``pool1_pool``, every block output ``convS_blockB_out``
(after the addition and its ReLU, as Keras names them) and with the classifier ``avg_pool`` and ``predictions``,
which holds the pre-softmax **logits**.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import imagenet
from jaxfool.models.layers import first_max
from jaxfool.models.network import Network, Tap

# Blocks per stage conv2..conv5; bottleneck widths 64, 128, 256, 512 (outputs 4x that).
DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
FILTERS = (64, 128, 256, 512)
IMAGE_SIZE = 224
NUM_CLASSES = 1000
KERAS_EPSILON = 1.001e-5
TORCH_EPSILON = 1e-5
PREPROCESSING = ("caffe", "torch", "none")
BATCH_NORM = ("separate", "folded")
STRIDE_ON = ("1x1", "3x3")
BN_KINDS = ("gamma", "beta", "moving_mean", "moving_variance")
_KERNEL_INIT = nn.initializers.glorot_uniform()  # Keras' Conv2D/Dense default, so init matches weights=None


def block_names(depths: tuple[int, ...]) -> tuple[str, ...]:
    """``('conv2_block1', ..., 'conv5_block3')``: every bottleneck block, in forward order."""
    return tuple(f"conv{s}_block{b}" for s, n in enumerate(depths, 2) for b in range(1, n + 1))


def conv_names(depths: tuple[int, ...]) -> tuple[str, ...]:
    """Every convolution's layer name (``conv1_conv``, ``conv2_block1_0_conv``, ...); each has a ``_bn`` twin."""
    names = ["conv1_conv"]
    for block in block_names(depths):
        shortcut = (f"{block}_0_conv",) if block.endswith("_block1") else ()
        names += [*shortcut, f"{block}_1_conv", f"{block}_2_conv", f"{block}_3_conv"]
    return tuple(names)


def layer_names(depths: tuple[int, ...], include_top: bool = True) -> tuple[str, ...]:
    """The named activations, in forward order (the last one is the output)."""
    outs = tuple(f"{b}_out" for b in block_names(depths))
    return ("inputs", "conv1_relu", "pool1_pool", *outs, *(("avg_pool", "predictions") if include_top else ()))


def param_shapes(depths: tuple[int, ...], include_top: bool = True) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{layer: {kind: shape}}`` of the ``batch_norm="separate"`` parameters (conv HWIO, dense ``(in, out)``)."""
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}

    def conv_bn(name: str, size: int, n_in: int, n_out: int) -> None:
        shapes[f"{name}_conv"] = {"kernel": (size, size, n_in, n_out), "bias": (n_out,)}
        shapes[f"{name}_bn"] = {kind: (n_out,) for kind in BN_KINDS}

    conv_bn("conv1", 7, 3, 64)
    channels = 64
    for s, (n, filters) in enumerate(zip(depths, FILTERS, strict=True), 2):
        for b in range(1, n + 1):
            name = f"conv{s}_block{b}"
            if b == 1:
                conv_bn(f"{name}_0", 1, channels, 4 * filters)
            conv_bn(f"{name}_1", 1, channels, filters)
            conv_bn(f"{name}_2", 3, filters, filters)
            conv_bn(f"{name}_3", 1, filters, 4 * filters)
            channels = 4 * filters
    if include_top:
        shapes["predictions"] = {"kernel": (channels, NUM_CLASSES), "bias": (NUM_CLASSES,)}
    return shapes


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """Keras' ``ZeroPadding2D(1)`` + ``MaxPooling2D(3, strides=2)`` on ``x: [batch, H, W, C]``.

    The maximum of the nine strided views (:func:`~jaxfool.models.layers.first_max`: the gradient goes to each
    window's first maximum, as in PyTorch and TensorFlow, and XLA:CPU differentiates it 17x faster than a max
    over stacked views). Padded with ``-inf``, as torchvision pads: on post-ReLU (non-negative) inputs the values
    equal Keras' zero padding, and a tie between a zero and the padding cannot take the gradient from the zero.
    """
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    h, w = (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1
    return first_max([x[:, i : i + 2 * h - 1 : 2, j : j + 2 * w - 1 : 2] for i in range(3) for j in range(3)])


class BatchNorm(nn.Module):
    """Inference-mode batch-norm with Keras' parameter names: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    epsilon: float = KERAS_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = (x.shape[-1],)
        gamma = self.param("gamma", nn.initializers.ones_init(), c, jnp.float32)
        beta = self.param("beta", nn.initializers.zeros_init(), c, jnp.float32)
        mean = self.param("moving_mean", nn.initializers.zeros_init(), c, jnp.float32)
        var = self.param("moving_variance", nn.initializers.ones_init(), c, jnp.float32)
        scale = gamma * jax.lax.rsqrt(var + self.epsilon)
        return x * scale + (beta - mean * scale)


class ResNet(nn.Module):
    """ResNet v1 mapping ``x [batch, height, width, 3]`` to the dict of its named activations.

    Attributes:
        depths: blocks per stage, :data:`DEPTHS` (``(3, 4, 6, 3)`` is ResNet50, ``(3, 4, 23, 3)`` ResNet101).
        include_top: with ``avg_pool`` and ``predictions`` (global pooling: any input of at least 32x32 works)
            or without (output ``conv5_blockN_out``).
        preprocessing: ``"caffe"`` (raw RGB in ``[0, 255]``, Keras weights), ``"torch"`` (raw RGB in
            ``[0, 255]``, torchvision weights) or ``"none"`` (already preprocessed); see
            :func:`jaxfool.imagenet.preprocess_input`.
        batch_norm: ``"separate"`` (conv, then batch-norm parameters) or ``"folded"`` (batch-norm folded into
            the convolutions by :func:`fold_batch_norm`; no ``_bn`` parameters).
        stride_on: ``"1x1"`` (Keras, v1) or ``"3x3"`` (torchvision, v1.5).
        bn_epsilon: batch-norm epsilon (Keras 1.001e-5, torchvision 1e-5).
        num_classes: outputs of ``predictions``.
        relu: the nonlinearity, swappable (guided backprop).
    """

    depths: tuple[int, ...] = DEPTHS["resnet50"]
    include_top: bool = True
    preprocessing: str = "caffe"
    batch_norm: str = "separate"
    stride_on: str = "1x1"
    bn_epsilon: float = KERAS_EPSILON
    num_classes: int = NUM_CLASSES
    relu: Callable[[jax.Array], jax.Array] = nn.relu

    def _conv_bn(self, x: jax.Array, name: str, features: int, size: int, stride: int) -> jax.Array:
        folded = self.batch_norm == "folded"
        pad = (size - 1) // 2
        conv = nn.Conv(
            features, (size, size), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
            kernel_init=_KERNEL_INIT, name=f"{name}_conv",
        )
        x = conv(x)
        return x if folded else BatchNorm(self.bn_epsilon, name=f"{name}_bn")(x)

    @nn.compact
    def __call__(self, x: jax.Array, taps: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        for attr, valid in (("preprocessing", PREPROCESSING), ("batch_norm", BATCH_NORM), ("stride_on", STRIDE_ON)):
            if getattr(self, attr) not in valid:
                raise ValueError(f"unknown {attr} {getattr(self, attr)!r}; use one of {', '.join(valid)}")
        t = Tap(taps)
        x = t("inputs", x)
        if self.preprocessing != "none":
            x = imagenet.preprocess_input(x, self.preprocessing)
        x = t("conv1_relu", self.relu(self._conv_bn(x, "conv1", 64, 7, 2)))
        x = t("pool1_pool", max_pool_3x3_s2(x))
        for s, (n, filters) in enumerate(zip(self.depths, FILTERS, strict=True), 2):
            for b in range(1, n + 1):
                name, stride = f"conv{s}_block{b}", 2 if b == 1 and s > 2 else 1
                shortcut = self._conv_bn(x, f"{name}_0", 4 * filters, 1, stride) if b == 1 else x
                s1, s3 = (stride, 1) if self.stride_on == "1x1" else (1, stride)
                y = self.relu(self._conv_bn(x, f"{name}_1", filters, 1, s1))
                y = self.relu(self._conv_bn(y, f"{name}_2", filters, 3, s3))
                y = self._conv_bn(y, f"{name}_3", 4 * filters, 1, 1)
                x = t(f"{name}_out", self.relu(shortcut + y))
        if not self.include_top:
            return t.activations
        x = t("avg_pool", x.mean(axis=(1, 2)))
        t("predictions", nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT, name="predictions")(x))
        return t.activations


def fold_batch_norm(params: Mapping[str, Mapping[str, jax.Array]], *, epsilon: float = KERAS_EPSILON) -> dict:
    """Folds every ``<name>_bn`` into the convolution ``<name>_conv`` before it (inference mode).

    ``kernel' = kernel * s`` and ``bias' = (bias - moving_mean) * s + beta`` with
    ``s = gamma / sqrt(moving_variance + epsilon)``; a convolution without bias (torchvision) counts as bias 0.
    Computed in float64 with numpy, then cast to float32, so folding adds no rounding of its own.

    Args:
        params: ``batch_norm="separate"`` parameters (numpy or JAX arrays).
        epsilon: the batch-norm epsilon the weights were trained with.

    Returns:
        ``batch_norm="folded"`` parameters (numpy float32): the convolutions with biases and ``predictions``.
    """
    folded = {}
    for name, p in params.items():
        if name.endswith("_bn"):
            continue
        p = {k: np.asarray(v, np.float64) for k, v in p.items()}
        bn = params.get(name[: -len("_conv")] + "_bn") if name.endswith("_conv") else None
        if bn is not None:
            bn = {k: np.asarray(v, np.float64) for k, v in bn.items()}
            scale = bn["gamma"] / np.sqrt(bn["moving_variance"] + epsilon)
            bias = p.get("bias", np.zeros_like(scale))
            p = {"kernel": p["kernel"] * scale, "bias": (bias - bn["moving_mean"]) * scale + bn["beta"]}
        folded[name] = {k: v.astype(np.float32) for k, v in p.items()}
    return folded


def resnet(
    depth: int = 50,
    *,
    include_top: bool = True,
    preprocess: bool | str = True,
    batch_norm: str = "separate",
    stride_on: str = "1x1",
) -> Network:
    """ResNet50 or ResNet101 as a :class:`~jaxfool.models.Network`.

    Args:
        depth: 50 or 101.
        include_top: with the 1000-way classifier (``predictions`` are the logits) or without (output
            ``conv5_block3_out``). Either takes any input size of at least 32x32 (global pooling).
        preprocess: ``True``/``"caffe"`` (Keras weights), ``"torch"`` (torchvision weights): raw RGB pixels in
            ``(0, 255)`` in; ``False``/``"none"``: preprocessed input in.
        batch_norm: ``"separate"`` or ``"folded"`` (parameters from :func:`fold_batch_norm`).
        stride_on: ``"1x1"`` (Keras' weights) or ``"3x3"`` (torchvision's), which also sets the convolution
            biases and batch-norm epsilon of that family.

    Returns:
        The network; ``class_names`` are the 1000 ImageNet names when ``include_top``.
    """
    name = f"resnet{depth}"
    if name not in DEPTHS:
        raise ValueError(f"unknown ResNet depth {depth}; use one of 50, 101")
    mode = {True: "caffe", False: "none"}[preprocess] if isinstance(preprocess, bool) else preprocess
    if mode not in PREPROCESSING:
        raise ValueError(f"unknown preprocess {preprocess!r}; use True/'caffe', 'torch' or False/'none'")
    if stride_on not in STRIDE_ON:
        raise ValueError(f"unknown stride_on {stride_on!r}; use '1x1' (Keras weights) or '3x3' (torchvision)")
    if batch_norm not in BATCH_NORM:
        raise ValueError(f"unknown batch_norm {batch_norm!r}; use 'separate' or 'folded'")
    keras = stride_on == "1x1"
    module = ResNet(
        depths=DEPTHS[name], include_top=include_top, preprocessing=mode, batch_norm=batch_norm,
        stride_on=stride_on, bn_epsilon=KERAS_EPSILON if keras else TORCH_EPSILON,
    )
    if mode == "none":
        bounds = (-max(imagenet.CAFFE_MEAN_BGR), 255.0 - min(imagenet.CAFFE_MEAN_BGR))
    else:
        bounds = (0.0, 255.0)
    suffix = ("" if include_top else "_notop") + ("" if mode == "caffe" else f"_{mode}")
    suffix += ("" if keras else "_v1.5") + ("_folded" if batch_norm == "folded" else "")
    return Network(
        name=f"{name}{suffix}",
        module=module,
        input_shape=(None, None, 3),
        layer_names=layer_names(DEPTHS[name], include_top),
        bounds=bounds,
        num_classes=NUM_CLASSES if include_top else 0,
        class_names=imagenet.class_names() if include_top else None,
    )


def resnet50(**kwargs) -> Network:
    """:func:`resnet` with ``depth=50``."""
    return resnet(50, **kwargs)


def resnet101(**kwargs) -> Network:
    """:func:`resnet` with ``depth=101``."""
    return resnet(101, **kwargs)
