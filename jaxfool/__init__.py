"""jaxfool: fooling and explaining convolutional networks in JAX.

Subpackages and modules, one job each:

* :mod:`jaxfool.models` -- networks as pure functions with named activations (MNIST CNN, VGG16, ResNet50/101).
* :mod:`jaxfool.data` -- MNIST (TFDS, or the embedded offline subset).
* :mod:`jaxfool.train` / :mod:`jaxfool.zoo` -- optax training; trained models cached as checkpoints.
* :mod:`jaxfool.backwork` -- strongly classified spurious inputs (the backwork search).
* :mod:`jaxfool.attacks` -- gradient attacks as per-example pure functions, sweeps, UAP, Perlin noise;
  :mod:`jaxfool.defences` -- adversarial training and defensive distillation.
* :mod:`jaxfool.explain` -- Grad-CAM family (all layers from one pass), guided backprop, occlusion, agreement.
* :mod:`jaxfool.imagenet`, :mod:`jaxfool.images`, :mod:`jaxfool.weights` -- ImageNet pre/post-processing, image
  folders, VGG16 / ResNet weight import (Keras HDF5, torchvision) into orbax checkpoints; :mod:`jaxfool.xla` -- CPU
  compiler options for CNNs.
* :mod:`jaxfool.checkpoints`, :mod:`jaxfool.runs`, :mod:`jaxfool.cli`, :mod:`jaxfool.plots` -- experiment plumbing.
"""

from jaxfool.backwork import BackworkConfig, BackworkResult, BackworkSweepConfig, run_backwork
from jaxfool.data import DataConfig, Mnist, load_mnist
from jaxfool.imagenet import decode_predictions, preprocess_input
from jaxfool.images import load_image_folder
from jaxfool.models import (
    Network,
    forward,
    forward_with_taps,
    logits_fn,
    mnist_cnn,
    predict_proba,
    vgg16,
    zero_taps,
)
from jaxfool.train import TrainConfig, accuracy, train
from jaxfool.weights import load_resnet50, load_resnet101, load_vgg16, vgg16_params

__version__ = "0.1.0"

__all__ = [
    "BackworkConfig",
    "BackworkResult",
    "BackworkSweepConfig",
    "DataConfig",
    "Mnist",
    "Network",
    "TrainConfig",
    "accuracy",
    "decode_predictions",
    "forward",
    "forward_with_taps",
    "load_image_folder",
    "load_mnist",
    "load_resnet101",
    "load_resnet50",
    "load_vgg16",
    "logits_fn",
    "mnist_cnn",
    "predict_proba",
    "preprocess_input",
    "run_backwork",
    "train",
    "vgg16",
    "vgg16_params",
    "zero_taps",
]
