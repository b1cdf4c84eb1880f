"""The Network convention: named activations, taps, shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool.models import activation_shapes, forward, forward_with_taps, logits_fn, mnist_cnn, zero_taps
from jaxfool.models.layers import FEW_CHANNELS, conv2d, max_pool_2x2


def test_named_activations_have_the_study_shapes():
    net = mnist_cnn()
    params = net.init(key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    logits, acts = forward(net, params, x, layers=net.layer_names)
    assert {k: v.shape for k, v in acts.items()} == {
        "inputs": (3, 28, 28, 1), "conv0": (3, 14, 14, 32), "conv1": (3, 7, 7, 64), "fc": (3, 1024),
        "logits": (3, 10)}
    assert logits.dtype == jnp.float32
    np.testing.assert_array_equal(acts["logits"], logits)
    np.testing.assert_array_equal(acts["inputs"], x)
    np.testing.assert_array_equal(logits_fn(net, params)(x), logits)
    assert activation_shapes(net, params, x, ["conv1"])["conv1"].shape == (3, 7, 7, 64)


def test_fc_is_before_relu_and_conv_after():
    net = mnist_cnn()
    params = net.init(key=jax.random.key(0))
    _, acts = forward(net, params, jax.random.uniform(jax.random.key(1), (4, 28, 28, 1)), layers=("conv1", "fc"))
    assert float(acts["conv1"].min()) >= 0.0
    assert float(acts["fc"].min()) < 0.0


def test_tap_gradient_is_the_activation_gradient_by_hand():
    net = mnist_cnn()
    params = net.init(key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    taps = zero_taps(net, params, x, ["conv0", "fc"])
    logits, acts = forward_with_taps(net, params, x, taps)
    np.testing.assert_array_equal(logits, forward(net, params, x)[0])
    grads = jax.grad(lambda t: forward_with_taps(net, params, x, t)[0][:, 3].sum())(taps)
    # logits = relu(fc) @ W + b, so d logit_3 / d fc = 1[fc > 0] * W[:, 3]
    expected = (acts["fc"] > 0) * params["logits"]["kernel"][:, 3]
    np.testing.assert_allclose(grads["fc"], expected, atol=1e-7)
    assert grads["conv0"].shape == (2, 14, 14, 32)


def test_max_pool_2x2_by_hand():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(max_pool_2x2(x)[0, :, :, 0], [[5.0, 7.0], [13.0, 15.0]])
    assert max_pool_2x2(jnp.zeros((1, 5, 7, 2))).shape == (1, 2, 3, 2)


def test_max_pool_gradient_goes_to_the_first_tied_maximum_by_hand():
    # window 1 ties everywhere, window 2 ties at its second and fourth cells, window 3 has one maximum
    x = jnp.array([[1.0, 1.0, 0.0, 2.0, 3.0, 0.0], [1.0, 1.0, 1.0, 2.0, 0.0, 0.0]]).reshape(1, 2, 6, 1)
    grad = jax.grad(lambda v: (max_pool_2x2(v) * jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1)).sum())(x)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[1.0, 0.0, 0.0, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("pool", ["2x2", "3x3_s2"])
def test_max_pool_gradients_equal_pytorchs_on_tied_inputs(pool):
    torch = pytest.importorskip("torch")
    from jaxfool.models.resnet import max_pool_3x3_s2

    # post-ReLU values on a coarse grid: most windows hold tied maxima, zeros among them
    x = jax.nn.relu(jnp.round(jax.random.normal(jax.random.key(0), (2, 12, 10, 3))))
    jax_pool, torch_pool = {
        "2x2": (max_pool_2x2, lambda t: torch.nn.functional.max_pool2d(t, 2)),
        "3x3_s2": (max_pool_3x3_s2, lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1)),
    }[pool]
    out, vjp = jax.vjp(jax_pool, x)
    g = jax.random.normal(jax.random.key(1), out.shape)
    xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2), requires_grad=True)
    out_t = torch_pool(xt)
    out_t.backward(torch.tensor(np.asarray(g).transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(out, out_t.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(vjp(g)[0], xt.grad.numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("cin, strides, padding", [
    (1, (1, 1), ((2, 2), (1, 3))),  # few channels: the patch matmul
    (3, (1, 1), ((0, 0), (2, 0))),
    (1, (2, 2), ((1, 1), (2, 2))),  # strided: the convolution's own gradient
    (8, (1, 1), ((1, 1), (2, 2))),  # wider: the canonical transposed convolution
])
def test_conv2d_equals_lax_convolution_in_values_and_both_gradients(cin, strides, padding):
    kx, kk, kg = jax.random.split(jax.random.key(0), 3)
    x, kernel = jax.random.normal(kx, (2, 9, 8, cin)), jax.random.normal(kk, (3, 5, cin, 4))
    lax_conv = lambda v, k: jax.lax.conv_general_dilated(v, k, strides, padding,
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ours = lambda v, k: conv2d(v, k, strides, padding)
    np.testing.assert_array_equal(ours(x, kernel), lax_conv(x, kernel))  # undifferentiated: the same op
    (out, vjp), (ref, ref_vjp) = jax.vjp(ours, x, kernel), jax.vjp(lax_conv, x, kernel)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(kg, ref.shape)
    for got, want in zip(vjp(g), ref_vjp(g)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # The input gradient of a few-channel stride-1 convolution has no convolution left in it.
    hlo = jax.jit(jax.grad(lambda v: jnp.sum(ours(v, kernel) ** 2))).lower(x).compile().as_text()
    assert ("convolution(" in hlo) == (cin > FEW_CHANNELS or strides != (1, 1))
