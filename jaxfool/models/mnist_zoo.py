"""More MNIST architectures for the transfer table: an MLP and a residual CNN.

Both follow the :class:`~jaxfool.models.Network` convention (named activations through :class:`Tap`, logits
last) and take ``[batch, 28, 28, 1]`` pixels in ``[0, 1]``. The residual CNN uses GroupNorm rather than batch norm,
so the model stays a pure function of its parameters (no running statistics to thread through attacks), and
:class:`~jaxfool.models.layers.Conv`, whose input gradient stays fast inside attack loops on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax

from jaxfool.models.layers import Conv, max_pool_2x2
from jaxfool.models.network import Network, Tap

MLP_LAYERS = ("inputs", "fc0", "fc1", "logits")
RESNET_LAYERS = ("inputs", "stem", "block0", "block1", "block2", "pool", "logits")


class MnistMLP(nn.Module):
    """784 -> 512 -> ReLU -> 512 -> ReLU -> ``num_classes``; ``fc0``/``fc1`` are recorded after their ReLU."""

    num_classes: int = 10
    width: int = 512

    @nn.compact
    def __call__(self, x: jax.Array, taps: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        t = Tap(taps)
        x = t("inputs", x).reshape(x.shape[0], -1)
        for i in range(2):
            x = t(f"fc{i}", nn.relu(nn.Dense(self.width, name=f"fc{i}")(x)))
        t("logits", nn.Dense(self.num_classes, name="logits")(x))
        return t.activations


class _ResidualBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(relu(gn(conv(relu(gn(x))))))``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = Conv(self.features, (3, 3), name="conv0")(nn.relu(nn.GroupNorm(num_groups=8, name="norm0")(x)))
        h = Conv(self.features, (3, 3), name="conv1")(nn.relu(nn.GroupNorm(num_groups=8, name="norm1")(h)))
        return x + h


class MnistResNet(nn.Module):
    """Stem conv 3x3x32 -> block(32) -> pool -> conv 1x1x64 -> block(64) -> pool -> block(64) -> global average
    pool -> dense ``num_classes``: seven convolutions deep, residual, GroupNorm."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, taps: Mapping[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        t = Tap(taps)
        x = t("inputs", x)
        x = t("stem", Conv(32, (3, 3), name="stem")(x))
        x = t("block0", _ResidualBlock(32, name="block0")(x))
        x = Conv(64, (1, 1), name="widen")(max_pool_2x2(x))
        x = t("block1", _ResidualBlock(64, name="block1")(x))
        x = t("block2", _ResidualBlock(64, name="block2")(max_pool_2x2(x)))
        x = t("pool", nn.relu(nn.GroupNorm(num_groups=8, name="norm")(x)).mean(axis=(1, 2)))
        t("logits", nn.Dense(self.num_classes, name="logits")(x))
        return t.activations


def _network(name: str, module: nn.Module, layers: tuple[str, ...]) -> Network:
    return Network(
        name=name, module=module, input_shape=(28, 28, 1), layer_names=layers, bounds=(0.0, 1.0), num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
    )


def mnist_mlp() -> Network:
    """The two-hidden-layer MLP as a :class:`~jaxfool.models.Network`."""
    return _network("mnist_mlp", MnistMLP(), MLP_LAYERS)


def mnist_resnet() -> Network:
    """The residual GroupNorm CNN as a :class:`~jaxfool.models.Network`."""
    return _network("mnist_resnet", MnistResNet(), RESNET_LAYERS)
