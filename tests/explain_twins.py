"""Small models for the explanation tests: JAX networks and their PyTorch twins with identical weights.

The twins let Captum, the reference implementation, compute the same attributions: weights are copied
HWIO -> OIHW for convolutions and transposed for dense layers; the torch models take NCHW input but flatten
in NHWC order, so one set of dense weights serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import torch_twins
from jaxfool.models.layers import max_pool_2x2
from jaxfool.models.network import Network, Tap


class TinyCNN(nn.Module):
    """conv 3x3 SAME (4) -> ReLU -> conv 3x3 VALID (6) -> ReLU -> max-pool 2x2 -> dense (5)."""

    num_classes: int = 5
    relu: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x, taps: Mapping[str, jax.Array] | None = None):
        t = Tap(taps)
        x = t("inputs", x)
        x = t("conv_a", self.relu(nn.Conv(4, (3, 3), padding="SAME", name="conv_a")(x)))
        x = t("conv_b", self.relu(nn.Conv(6, (3, 3), padding="VALID", name="conv_b")(x)))
        x = t("pool", max_pool_2x2(x))
        t("logits", nn.Dense(self.num_classes, name="logits")(x.reshape(x.shape[0], -1)))
        return t.activations


def tiny_cnn(size: int = 12, channels: int = 3) -> Network:
    return Network(
        name="tiny_cnn",
        module=TinyCNN(),
        input_shape=(size, size, channels),
        layer_names=("inputs", "conv_a", "conv_b", "pool", "logits"),
        bounds=(0.0, 1.0),
        num_classes=5,
    )


class Linear(nn.Module):
    """``logits = flatten(x) @ kernel``; the input is tapped as ``inputs``: hand-checkable attributions."""

    num_classes: int = 2

    @nn.compact
    def __call__(self, x, taps=None):
        t = Tap(taps)
        x = t("inputs", x)
        t("logits", nn.Dense(self.num_classes, use_bias=False, name="dense")(x.reshape(x.shape[0], -1)))
        return t.activations


def linear_model(shape: tuple[int, int, int], kernel: np.ndarray) -> tuple[Network, dict]:
    """A :class:`Linear` network on ``shape`` with the given ``[H*W*C, classes]`` kernel."""
    net = Network(
        name="linear",
        module=Linear(num_classes=kernel.shape[1]),
        input_shape=shape,
        layer_names=("inputs", "logits"),
        bounds=(0.0, 1.0),
        num_classes=kernel.shape[1],
    )
    return net, {"dense": {"kernel": jnp.asarray(kernel, jnp.float32)}}


def tiny_setup(seed: int = 7):
    """``(net, params, x)``: :func:`tiny_cnn` with :func:`tiny_params` and one uniform image."""
    net = tiny_cnn()
    params = tiny_params(net)
    x = np.random.default_rng(seed).uniform(size=net.input_shape).astype(np.float32)
    return net, params, x


def _torch():
    import pytest

    return pytest.importorskip("torch")


def torch_tiny_cnn(params):
    """The torch twin of :class:`TinyCNN`; modules named after the JAX layers (``relu_a`` = ``conv_a``)."""
    torch = _torch()

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_a, self.relu_a = torch_twins.conv(params["conv_a"], 1), torch.nn.ReLU()
            self.conv_b, self.relu_b = torch_twins.conv(params["conv_b"], 0), torch.nn.ReLU()
            self.pool = torch.nn.MaxPool2d(2)
            self.logits = torch_twins.dense(params["logits"])

        def forward(self, x):
            x = self.pool(self.relu_b(self.conv_b(self.relu_a(self.conv_a(x)))))
            return self.logits(x.permute(0, 2, 3, 1).flatten(1))

    return Twin().eval()


def torch_mnist_cnn(params):
    """The torch twin of :class:`jaxfool.models.MnistCNN` (:func:`jaxfool.torch_twins.mnist_cnn`)."""
    _torch()
    return torch_twins.mnist_cnn(params)


def nchw(x) -> "object":
    """``[H, W, C]`` (or ``[N, H, W, C]``) array -> ``[N, C, H, W]`` torch tensor."""
    _torch()
    return torch_twins.nchw(x)


def tiny_params(net: Network, seed: int = 0, scale: float = 0.5):
    """Gaussian parameters with std ``scale``: logits of order 10, CAMs of order 1 (default init gives ~1e-3,
    too small for an absolute tolerance to mean anything). NumPy draws them: no JAX compilation."""
    shapes = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape), jnp.float32), shapes)


def assert_close(ours, ref, tol: float = 1e-5) -> None:
    """``max |ours - ref| <= tol * max(1, max |ref|)``: absolute for maps of order 1, relative above."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    err, scale = np.abs(ours - ref).max(), max(1.0, np.abs(ref).max())
    assert err <= tol * scale, f"max abs difference {err:.3g} > {tol:g} * {scale:.3g}"
