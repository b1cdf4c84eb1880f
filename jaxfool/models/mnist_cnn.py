"""The MNIST CNN of the backwork study (jalexvig/cnn_backwork, after the TensorFlow "deep MNIST" tutorial).

conv 5x5x32 SAME -> ReLU -> max-pool 2x2 -> conv 5x5x64 SAME -> ReLU -> max-pool 2x2 -> dense 1024 -> ReLU
-> dense ``num_classes``. Inputs are ``[batch, 28, 28, 1]`` pixels in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax

from jaxfool.models.layers import max_pool_2x2
from jaxfool.models.network import Network, Tap

LAYERS = ("inputs", "conv0", "conv1", "fc", "logits")


# The study's initialisation (the TensorFlow tutorial's): weights ~ truncated normal with stddev 0.1, biases 0.1.
# It gives a far larger logit scale than flax's LeCun default, hence a more confident network -- which is
# what the backwork search exploits, so it is kept to reproduce the study.
_KERNEL_INIT = nn.initializers.truncated_normal(stddev=0.1)
_BIAS_INIT = nn.initializers.constant(0.1)


class MnistCNN(nn.Module):
    """Named activations: ``inputs``, ``conv0`` and ``conv1`` (after ReLU and pooling), ``fc`` (dense 1024
    before its ReLU, as in the study) and ``logits``.

    ``relu`` is swappable (another nonlinearity without a second definition); guided backprop does not need it:
    it swaps ``jax.nn.relu`` calls in any model (:func:`jaxfool.explain.guided`).
    """

    num_classes: int = 10
    relu: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array, taps: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        t = Tap(taps)
        x = t("inputs", x)
        for i, features in enumerate((32, 64)):
            x = nn.Conv(features, (5, 5), padding="SAME", kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT, name=f"conv{i}")(x)
            # Pooling before the ReLU gives the same values as after it (both are monotone) on 4x fewer elements,
            # and with first-maximum pool gradients the same gradients as the study's ReLU-then-pool order.
            x = t(f"conv{i}", self.relu(max_pool_2x2(x)))
        x = t("fc", nn.Dense(1024, kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT, name="fc")(x.reshape(x.shape[0], -1)))
        t("logits", nn.Dense(self.num_classes, kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT, name="logits")(self.relu(x)))
        return t.activations


def mnist_cnn(num_classes: int = 10) -> Network:
    """The backwork MNIST CNN as a :class:`~jaxfool.models.Network` (11 classes adds a "fooling" class)."""
    names = tuple(str(i) for i in range(10)) + ("fooling",) * (num_classes - 10)
    return Network(
        name="mnist_cnn" if num_classes == 10 else f"mnist_cnn{num_classes}",
        module=MnistCNN(num_classes=num_classes),
        input_shape=(28, 28, 1),
        layer_names=LAYERS,
        bounds=(0.0, 1.0),
        num_classes=num_classes,
        class_names=names[:num_classes],
    )
