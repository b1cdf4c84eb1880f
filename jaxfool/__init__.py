"""jaxfool: fooling and explaining convolutional networks in JAX.

Subpackages and modules, one job each:

* :mod:`jaxfool.models` -- networks as pure functions with named activations (MNIST CNN, VGG16).
* :mod:`jaxfool.data` -- MNIST (TFDS, or the embedded offline subset).
* :mod:`jaxfool.train` / :mod:`jaxfool.zoo` -- optax training; trained models cached as checkpoints.
* :mod:`jaxfool.backwork` -- strongly classified spurious inputs (the backwork search).
* :mod:`jaxfool.checkpoints`, :mod:`jaxfool.runs`, :mod:`jaxfool.cli`, :mod:`jaxfool.plots` -- experiment plumbing.
"""

from jaxfool.backwork import BackworkConfig, BackworkResult, SweepConfig, run_backwork
from jaxfool.data import DataConfig, Mnist, load_mnist
from jaxfool.models import Network, forward, forward_with_taps, logits_fn, mnist_cnn, predict_proba, zero_taps
from jaxfool.train import TrainConfig, accuracy, train

__version__ = "0.1.0"

__all__ = [
    "BackworkConfig",
    "BackworkResult",
    "DataConfig",
    "Mnist",
    "Network",
    "SweepConfig",
    "TrainConfig",
    "accuracy",
    "forward",
    "forward_with_taps",
    "load_mnist",
    "logits_fn",
    "mnist_cnn",
    "predict_proba",
    "run_backwork",
    "train",
    "zero_taps",
]
