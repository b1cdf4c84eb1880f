"""Models as pure functions with named activations, jaxfool's own or adapted from Linen, NNX, Equinox or a function."""

from jaxfool.models.adapters import from_equinox, from_function, from_linen, from_nnx
from jaxfool.models.mnist_cnn import MnistCNN, mnist_cnn
from jaxfool.models.network import (
    Network,
    activation_shapes,
    forward,
    forward_with_taps,
    logits_fn,
    predict_proba,
    Tap,
    zero_taps,
)
from jaxfool.models.resnet import ResNet, resnet, resnet50, resnet101
from jaxfool.models.vgg16 import VGG16, vgg16

__all__ = [
    "MnistCNN",
    "Network",
    "activation_shapes",
    "forward",
    "forward_with_taps",
    "from_equinox",
    "from_function",
    "from_linen",
    "from_nnx",
    "logits_fn",
    "mnist_cnn",
    "predict_proba",
    "ResNet",
    "resnet",
    "resnet101",
    "resnet50",
    "Tap",
    "VGG16",
    "vgg16",
    "zero_taps",
]
