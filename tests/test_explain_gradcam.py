"""Grad-CAM, Grad-CAM++, Layer-CAM, all layers at once, guided backprop: by hand and against Captum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from explain_twins import (
    assert_close,
    linear_model,
    nchw,
    tiny_cnn,
    tiny_params,
    tiny_setup,
    torch_mnist_cnn,
    torch_tiny_cnn,
)

from jaxfool import explain
from jaxfool.explain._common import input_gradients

TINY_LAYERS = ("conv_a", "conv_b", "pool")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
    pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations"),
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_setup(seed=7)


@pytest.fixture(scope="module")
def hand():
    """A linear model on a 2x2x2 image: class 0's gradient w.r.t. the input is its kernel column ``v``."""
    a = np.stack([[[1, 2], [3, 4]], [[0, 1], [1, 0]]], axis=-1).astype(np.float32)  # [2, 2, 2]
    v = np.stack([[[1, 0], [0, 1]], [[2, 2], [-2, 2]]], axis=-1).astype(np.float32)
    kernel = np.stack([v.reshape(-1), -v.reshape(-1)], axis=1)  # [8, 2]
    net, params = linear_model((2, 2, 2), kernel)
    return net, params, a / 4  # inside bounds [0, 1]; the maps below scale with it


def test_grad_cam_by_hand(hand):
    net, params, x = hand
    # Channel weights: mean of v per channel = (0.5, 1); map = 0.5 * a0 + 1 * a1, with a = 4 x.
    expected = np.array([[0.5, 2.0], [2.5, 2.0]]) / 4
    cam = explain.grad_cam(net, params, x, 0, layer="inputs", relu=False, upsample=False)
    np.testing.assert_allclose(cam, expected, rtol=1e-6)
    # Class 1 has the opposite kernel: the map flips sign, and the ReLU zeroes it.
    np.testing.assert_allclose(explain.grad_cam(net, params, x, 1, layer="inputs", relu=False, upsample=False),
                               -expected, rtol=1e-6)
    np.testing.assert_array_equal(explain.grad_cam(net, params, x, 1, layer="inputs", upsample=False), 0)


def test_layer_gradients_by_hand(hand):
    net, params, x = hand
    acts, grads = explain.layer_gradients(net, params, x, 1, layers=["inputs"])
    np.testing.assert_array_equal(acts["inputs"], x)
    np.testing.assert_array_equal(grads["inputs"], -np.asarray(params["dense"]["kernel"][:, 0]).reshape(2, 2, 2))


def test_layer_cam_and_grad_cam_plus_plus_by_hand(hand):
    net, params, x = hand
    # Layer-CAM: sum_c relu(v_c) * a_c = [[1,0],[0,4]] + [[0,2],[0,0]] (a = 4 x).
    np.testing.assert_allclose(explain.layer_cam(net, params, x, 0, layer="inputs", upsample=False),
                               np.array([[1.0, 2.0], [0.0, 4.0]]) / 4, rtol=1e-6)
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(a_c) g^3) with sum(a_c) = (10, 2) / 4.
    s0, s1 = 10 / 4, 2 / 4
    w0 = 2 * (1 / (2 + s0))  # two gradients of 1 in channel 0
    w1 = 3 * 2 * (4 / (8 + s1 * 8))  # three gradients of 2 in channel 1 (the -2 is rectified away)
    a0, a1 = x[..., 0], x[..., 1]
    np.testing.assert_allclose(explain.grad_cam_plus_plus(net, params, x, 0, layer="inputs", upsample=False),
                               w0 * a0 + w1 * a1, rtol=1e-6)


def test_upsampling_nearest_by_hand(hand):
    net, params, x = hand
    small = explain.grad_cam(net, params, x, 0, layer="inputs", relu=False, upsample=False)
    # The input is 2x2, so upsampling is the identity; a 2x2 map shown at 4x4 repeats each value 2x2 times.
    np.testing.assert_array_equal(explain.grad_cam(net, params, x, 0, layer="inputs", relu=False), small)
    np.testing.assert_array_equal(jax.image.resize(small, (4, 4), "nearest"), np.kron(small, np.ones((2, 2))))


@pytest.mark.parametrize("layer", TINY_LAYERS)
def test_grad_cam_equals_captum_layer_grad_cam(tiny, layer):
    captum = pytest.importorskip("captum.attr")
    net, params, x = tiny
    twin = torch_tiny_cnn(params)
    module = {"conv_a": twin.relu_a, "conv_b": twin.relu_b, "pool": twin.pool}[layer]
    gc = captum.LayerGradCam(twin, module)
    for label in range(net.num_classes):
        raw = gc.attribute(nchw(x), label).detach().numpy()[0, 0]
        assert_close(explain.grad_cam(net, params, x, label, layer=layer, relu=False, upsample=False), raw)
        up = captum.LayerAttribution.interpolate(gc.attribute(nchw(x), label, relu_attributions=True),
                                                 x.shape[:2], "bilinear")
        assert_close(explain.grad_cam(net, params, x, label, layer=layer), up.detach().numpy()[0, 0])


def test_grad_cam_probability_score_equals_captum(tiny):
    captum = pytest.importorskip("captum.attr")
    torch = pytest.importorskip("torch")
    net, params, x = tiny
    twin = torch_tiny_cnn(params)

    class Softmax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.twin = twin

        def forward(self, v):
            return torch.softmax(self.twin(v), dim=-1)

    model = Softmax()
    for label in range(net.num_classes):
        raw = captum.LayerGradCam(model, model.twin.relu_b).attribute(nchw(x), label).detach().numpy()[0, 0]
        ours = explain.grad_cam(net, params, x, label, layer="conv_b", score="probability", relu=False, upsample=False)
        assert_close(ours, raw)


def test_grad_cam_equals_captum_on_trained_mnist(trained_mnist, mnist):
    captum = pytest.importorskip("captum.attr")
    net, params = trained_mnist
    twin = torch_mnist_cnn(params)
    for x, label in zip(mnist.test_images[:3], mnist.test_labels[:3], strict=True):
        for layer, module in (("conv0", twin.relu0), ("conv1", twin.relu1)):
            raw = captum.LayerGradCam(twin, module).attribute(nchw(x), int(label)).detach().numpy()[0, 0]
            assert_close(explain.grad_cam(net, params, x, int(label), layer=layer, relu=False, upsample=False), raw)


@pytest.mark.parametrize("method", explain.METHODS)
def test_all_layers_from_one_pass_equal_per_layer_maps(tiny, method):
    single = {"grad_cam": explain.grad_cam, "grad_cam++": explain.grad_cam_plus_plus, "layer_cam": explain.layer_cam,
              "xgrad_cam": explain.xgrad_cam, "hires_cam": explain.hires_cam, "eigen_cam": explain.eigen_cam}
    net, params, x = tiny
    maps = explain.cams(net, params, x, 3, method=method)
    assert tuple(maps) == TINY_LAYERS  # default: every spatial layer after the input
    for layer, cam in maps.items():
        assert cam.shape == x.shape[:2]
        np.testing.assert_allclose(cam, single[method](net, params, x, 3, layer=layer), rtol=1e-5, atol=1e-6)


def test_all_layers_equal_per_layer_maps_on_trained_mnist(trained_mnist, mnist):
    net, params = trained_mnist
    x, label = mnist.test_images[0], int(mnist.test_labels[0])
    maps = explain.cams(net, params, x, label, upsample=False)
    assert [m.shape for m in maps.values()] == [(14, 14), (7, 7)]
    for layer, cam in maps.items():
        np.testing.assert_allclose(cam, explain.grad_cam(net, params, x, label, layer=layer, upsample=False),
                                   rtol=1e-5, atol=1e-6)


def test_all_layers_cost_at_most_one_and_a_half_forward_backward():
    """XLA's own flop count of the compiled programs: deterministic, unlike wall time on a shared CPU."""
    net = tiny_cnn(size=16)
    # On the CPU backend on any machine: XLA:GPU counts the flops of its fusions differently.
    cpu = jax.devices("cpu")[0]
    params = jax.device_put(tiny_params(net), cpu)
    x = jax.device_put(jnp.zeros(net.input_shape), cpu)
    flops = lambda f: f.lower(params, x).compile().cost_analysis()["flops"]  # noqa: E731
    all_layers = flops(jax.jit(lambda p, v: explain.cams(net, p, v, 0, layers=TINY_LAYERS)))
    one_pass = flops(jax.jit(lambda p, v: input_gradients(net, p, v[None], 0)))
    assert all_layers <= 1.5 * one_pass, (all_layers, one_pass)
    # ... whereas one Grad-CAM call per layer costs about one pass each.
    per_layer = sum(flops(jax.jit(lambda p, v, n=n: explain.grad_cam(net, p, v, 0, layer=n))) for n in TINY_LAYERS)
    assert per_layer > 1.5 * all_layers


def test_vmap_and_jit_match_per_example_calls(tiny):
    net, params, x = tiny
    xs = np.stack([x, x[::-1], x[:, ::-1]])
    labels = jnp.array([0, 2, 4])
    batched = jax.jit(jax.vmap(lambda v, y: explain.cams(net, params, v, y, method="grad_cam++")))(xs, labels)
    for i in range(3):
        one = explain.cams(net, params, xs[i], int(labels[i]), method="grad_cam++")
        for layer in one:
            np.testing.assert_allclose(batched[layer][i], one[layer], rtol=1e-5, atol=1e-6)


def test_guided_relu_gradient_rule_by_hand():
    x = jnp.array([-1.0, 2.0, 3.0, -4.0, 0.0])
    g = jnp.array([5.0, -6.0, 7.0, 8.0, 9.0])
    np.testing.assert_array_equal(explain.guided_relu(x), [0, 2, 3, 0, 0])
    # Passes back only positive gradients at positive inputs.
    _, vjp = jax.vjp(explain.guided_relu, x)
    np.testing.assert_array_equal(vjp(g)[0], [0, 0, 7, 0, 0])


def test_guided_network_keeps_forward_values(tiny, hand):
    net, params, x = tiny
    guided = explain.guided_network(net)
    out = lambda n: n.module.apply({"params": params}, x[None])["logits"]  # noqa: E731
    np.testing.assert_array_equal(out(guided), out(net))
    with pytest.raises(ValueError, match="guided backprop found no jax.nn.relu call in linear"):
        explain.guided_backprop(*hand, 0)


def test_guided_backprop_and_guided_grad_cam_equal_captum(tiny):
    captum = pytest.importorskip("captum.attr")
    net, params, x = tiny
    twin = torch_tiny_cnn(params)
    for label in (0, 3):
        gbp = captum.GuidedBackprop(twin).attribute(nchw(x), target=label).numpy()[0].transpose(1, 2, 0)
        assert_close(explain.guided_backprop(net, params, x, label), gbp)
        # Torch's "nearest-exact" is jax.image.resize's "nearest" (half-pixel centres).
        for ours, theirs in (("bilinear", "bilinear"), ("nearest", "nearest-exact")):
            ggc = captum.GuidedGradCam(twin, twin.relu_b).attribute(nchw(x), target=label, interpolate_mode=theirs)
            assert_close(explain.guided_grad_cam(net, params, x, label, layer="conv_b", resize=ours),
                         ggc.detach().numpy()[0].transpose(1, 2, 0))


def test_bad_inputs_give_one_line_errors(tiny):
    net, params, x = tiny
    cases = [
        (lambda: explain.grad_cam(net, params, x, 0, layer="conv9"),
         "unknown layer 'conv9' for tiny_cnn; valid layers: inputs, conv_a, conv_b, pool, logits"),
        (lambda: explain.grad_cam(net, params, x, 5, layer="conv_a"),
         "class index 5 out of range for tiny_cnn: use 0..4"),
        (lambda: explain.grad_cam(net, params, x, -1, layer="conv_a"), "class index -1 out of range"),
        (lambda: explain.grad_cam(net, params, x, 0, layer="logits"), "spatial layers: inputs, conv_a, conv_b, pool"),
        (lambda: explain.grad_cam(net, params, np.where(x > 0.5, np.nan, x), 0, layer="conv_a"), "NaN"),
        (lambda: explain.grad_cam(net, params, x[None], 0, layer="conv_a"), "has shape (1, 12, 12, 3), expected"),
        (lambda: explain.grad_cam(net, params, x * 255, 0, layer="conv_a"), "outside the model's bounds"),
        (lambda: explain.cams(net, params, x, 0, method="gradcam"), "unknown CAM method 'gradcam'; use one of"),
        (lambda: explain.grad_cam(net, params, x, 0, layer="conv_a", score="prob"), "unknown class score 'prob'"),
        (lambda: explain.grad_cam(net, params, x, np.array([0, 1]), layer="conv_a"), "class index must be one"),
        (lambda: explain.guided_backprop(net, params, x, 7), "class index 7 out of range"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
