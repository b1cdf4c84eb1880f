"""VGG16 (Simonyan & Zisserman, 2014) as ``keras.applications.VGG16`` builds it, with Keras' layer names.

Thirteen 3x3 ``SAME`` convolutions with ReLU in five blocks, each block closed by a 2x2 max-pool, then (with
the classifier) ``flatten`` -> ``fc1`` (4096, ReLU) -> ``fc2`` (4096, ReLU) -> ``predictions`` (1000).

Parameters are keyed by Keras layer name with Keras' shapes (``params['block1_conv1']['kernel']`` is HWIO
``[3, 3, 3, 64]``, ``params['fc1']['kernel']`` is ``[25088, 4096]`` over the NHWC flatten of
``block5_pool``), so the official Keras file maps onto them one to one (see :mod:`jaxfool.weights`).

The named activations are ``inputs``, every ``blockB_convN`` (after its ReLU, as Keras' ``Conv2D(...,
activation='relu')`` outputs), every ``blockB_pool``, and with the classifier ``flatten``, ``fc1``, ``fc2``
(after ReLU) and ``predictions``. Unlike Keras, ``predictions`` holds the pre-softmax **logits**: the class
probabilities Keras returns are ``jax.nn.softmax`` of them (:func:`jaxfool.models.predict_proba`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax

from jaxfool import imagenet
from jaxfool.models.layers import max_pool_2x2
from jaxfool.models.network import Network, Tap

# (number of convolutions, output channels) per block.
BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, (n, _) in enumerate(BLOCKS, 1) for i in range(1, n + 1))
FEATURE_LAYERS = tuple(
    name
    for b, (n, _) in enumerate(BLOCKS, 1)
    for name in (*(f"block{b}_conv{i}" for i in range(1, n + 1)), f"block{b}_pool")
)
TOP_LAYERS = ("flatten", "fc1", "fc2", "predictions")
IMAGE_SIZE = 224
NUM_CLASSES = 1000
PREPROCESSING = ("caffe", "torch", "none")
# Keras' default for Conv2D and Dense (biases start at zero in both), so `Network.init` draws weights
# distributed as keras.applications.VGG16(weights=None)'s.
_KERNEL_INIT = nn.initializers.glorot_uniform()


def layer_names(include_top: bool = True) -> tuple[str, ...]:
    """The named activations of VGG16, in forward order (the last one is the output)."""
    return ("inputs", *FEATURE_LAYERS, *(TOP_LAYERS if include_top else ()))


class VGG16(nn.Module):
    """VGG16 mapping ``x [batch, height, width, 3]`` to the dict of its named activations.

    Attributes:
        include_top: with the classifier (input must be 224x224) or without it (any input of at least 32x32;
            the output is ``block5_pool``).
        preprocessing: ``"caffe"``: ``x`` is raw RGB in ``[0, 255]``, converted inside as Keras'
            ``preprocess_input`` does (to BGR, minus the ImageNet mean), for the Keras weights; ``"torch"``:
            raw RGB in ``[0, 255]`` normalised as torchvision's weights expect; ``"none"``: ``x`` is already
            preprocessed. Preprocessing inside the model makes attack budgets pixel units.
        num_classes: outputs of ``predictions``.
        relu: the nonlinearity after every convolution and hidden dense layer; swappable (guided backprop does
            not need it: :func:`jaxfool.explain.guided` swaps ``jax.nn.relu`` calls in any model).
    """

    include_top: bool = True
    preprocessing: str = "caffe"
    num_classes: int = NUM_CLASSES
    relu: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array, taps: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"unknown preprocessing {self.preprocessing!r}; use one of {', '.join(PREPROCESSING)}")
        t = Tap(taps)
        x = t("inputs", x)
        if self.preprocessing != "none":
            x = imagenet.preprocess_input(x, self.preprocessing)
        for b, (n, features) in enumerate(BLOCKS, 1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                conv = nn.Conv(features, (3, 3), padding="SAME", kernel_init=_KERNEL_INIT, name=name)
                x = t(name, self.relu(conv(x)))
            x = t(f"block{b}_pool", max_pool_2x2(x))
        if not self.include_top:
            return t.activations
        x = t("flatten", x.reshape(x.shape[0], -1))
        x = t("fc1", self.relu(nn.Dense(4096, kernel_init=_KERNEL_INIT, name="fc1")(x)))
        x = t("fc2", self.relu(nn.Dense(4096, kernel_init=_KERNEL_INIT, name="fc2")(x)))
        t("predictions", nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT, name="predictions")(x))
        return t.activations


def vgg16(include_top: bool = True, preprocess: bool | str = True) -> Network:
    """VGG16 as a :class:`~jaxfool.models.Network`.

    Args:
        include_top: with the 1000-way classifier (input ``[224, 224, 3]``, ``predictions`` are the logits)
            or without (input ``[any, any, 3]``, output ``block5_pool``; ``num_classes`` is 0).
        preprocess: ``True`` or ``"caffe"`` (Keras weights) / ``"torch"`` (torchvision weights): the network
            takes raw RGB pixels with bounds ``(0, 255)`` and preprocesses them inside. ``False`` or
            ``"none"``: it takes caffe-preprocessed BGR input; bounds are then the loosest per-channel range
            ``(-123.68, 151.061)``.

    Returns:
        The network; ``class_names`` are the 1000 ImageNet names shipped with jaxfool when ``include_top``.
    """
    mode = {True: "caffe", False: "none"}[preprocess] if isinstance(preprocess, bool) else preprocess
    if mode not in PREPROCESSING:
        raise ValueError(f"unknown preprocess {preprocess!r}; use True/'caffe', 'torch' or False/'none'")
    if mode == "none":
        bounds = (-max(imagenet.CAFFE_MEAN_BGR), 255.0 - min(imagenet.CAFFE_MEAN_BGR))
    else:
        bounds = (0.0, 255.0)
    class_names = imagenet.class_names() if include_top else None
    suffix = ("" if include_top else "_notop") + ("" if mode == "caffe" else f"_{mode}")
    size = IMAGE_SIZE if include_top else None
    return Network(
        name=f"vgg16{suffix}",
        module=VGG16(include_top=include_top, preprocessing=mode),
        input_shape=(size, size, 3),
        layer_names=layer_names(include_top),
        bounds=bounds,
        num_classes=NUM_CLASSES if include_top else 0,
        class_names=class_names,
    )
