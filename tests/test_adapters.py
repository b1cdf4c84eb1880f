"""Bring your own model: Linen, NNX and Equinox CNNs as their authors write them, adapted with no edit.

Each model is trained briefly on the embedded MNIST subset, then every consumer (all-layer CAMs, guided backprop,
occlusion, saliency, SmoothGrad, IG, a PGD sweep, backwork, filter and class visualisation) runs on the adapted
model and on the same network written in jaxfool's Tap convention with the same weights; they must agree to 1e-5.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxfool import attacks, explain, models
from jaxfool import visualize as V
from jaxfool.backwork import BackworkConfig, run_backwork
from jaxfool.explain._common import input_gradients
from jaxfool.models import Network, Tap
from tests.explain_twins import assert_close

MNIST = dict(input_shape=(28, 28, 1), bounds=(0.0, 1.0), num_classes=10)


# --------------------------------------------------------------------------------------------------------------
# The models as their authors write them.


class CNN(nn.Module):
    """A simple CNN model (flax examples/mnist/train.py)."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=32, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=64, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))  # flatten
        x = nn.Dense(features=256)(x)
        x = nn.relu(x)
        x = nn.Dense(features=10)(x)
        return x


class NnxCNN(nnx.Module):
    """A simple CNN model (flax's NNX MNIST tutorial)."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
        self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
        self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
        self.linear2 = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x):
        x = self.avg_pool(nnx.relu(self.conv1(x)))
        x = self.avg_pool(nnx.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)  # flatten
        x = nnx.relu(self.linear1(x))
        x = self.linear2(x)
        return x


def equinox_cnn(key):
    """Equinox's CNN tutorial model (built here so the module imports without Equinox)."""
    eqx = pytest.importorskip("equinox", reason="Equinox is an optional extra: pip install equinox")

    class EqxCNN(eqx.Module):
        layers: list

        def __init__(self, key):
            key1, key2, key3, key4 = jax.random.split(key, 4)
            # Standard CNN setup: convolutional layer, followed by flattening, with a small MLP on top.
            self.layers = [
                eqx.nn.Conv2d(1, 3, kernel_size=4, key=key1),
                eqx.nn.MaxPool2d(kernel_size=2),
                jax.nn.relu,
                jnp.ravel,
                eqx.nn.Linear(1728, 512, key=key2),
                jax.nn.sigmoid,
                eqx.nn.Linear(512, 64, key=key3),
                jax.nn.relu,
                eqx.nn.Linear(64, 10, key=key4),
                jax.nn.log_softmax,
            ]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    return EqxCNN(key)


# --------------------------------------------------------------------------------------------------------------
# The same networks in jaxfool's Tap convention, tapped where the adapters name layers.


class TapFlaxCNN(nn.Module):
    """The flax example's CNN with Taps at its submodule outputs; ``names`` are its four layers' names."""

    names: tuple[str, str, str, str] = ("Conv_0", "Conv_1", "Dense_0", "Dense_1")

    @nn.compact
    def __call__(self, x, taps=None):
        c0, c1, d0, d1 = self.names
        t = Tap(taps)
        x = t("inputs", x)
        x = nn.avg_pool(nn.relu(t(c0, nn.Conv(32, (3, 3), name=c0)(x))), (2, 2), strides=(2, 2))
        x = nn.avg_pool(nn.relu(t(c1, nn.Conv(64, (3, 3), name=c1)(x))), (2, 2), strides=(2, 2))
        x = nn.relu(t(d0, nn.Dense(256, name=d0)(x.reshape((x.shape[0], -1)))))
        t("logits", t(d1, nn.Dense(10, name=d1)(x)))
        return t.activations


class TapEqxCNN(nn.Module):
    """Equinox's tutorial CNN in the Tap convention, NHWC, with Equinox's weight layouts as parameters."""

    @nn.compact
    def __call__(self, x, taps=None):
        t = Tap(taps)
        shapes = {"w0": (3, 1, 4, 4), "b0": (3,), "w4": (512, 1728), "b4": (512,), "w6": (64, 512), "b6": (64,),
                  "w8": (10, 64), "b8": (10,)}
        p = lambda name: self.param(name, nn.initializers.zeros_init(), shapes[name])  # noqa: E731
        x = t("inputs", x)
        x = jax.lax.conv_general_dilated(x, p("w0"), (1, 1), "VALID", dimension_numbers=("NHWC", "OIHW", "NHWC"))
        x = t("layers.0", x + p("b0"))
        x = t("layers.1", jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 1, 1, 1), "VALID"))
        x = t("layers.2", jax.nn.relu(x))
        x = t("layers.3", jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1))  # ravel in Equinox's [c, h, w] order
        for i, act in ((4, jax.nn.sigmoid), (6, jax.nn.relu), (8, jax.nn.log_softmax)):
            x = t(f"layers.{i}", x @ p(f"w{i}").T + p(f"b{i}"))
            x = t(f"layers.{i + 1}", act(x))
        t("logits", x)
        return t.activations


def tap_network(module, layer_names) -> Network:
    return Network(name=f"tap_{type(module).__name__}", module=module, input_shape=(28, 28, 1),
                   layer_names=layer_names, bounds=(0.0, 1.0), num_classes=10)


# --------------------------------------------------------------------------------------------------------------
# Brief training and fixtures.


def fit(loss, params, mnist, *, steps=30, batch=64, learning_rate=1e-3):
    """``steps`` Adam steps of ``loss(params, x, y)`` on the embedded training digits."""
    opt = optax.adam(learning_rate)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    order = np.random.default_rng(0).permutation(len(mnist.train_labels))
    for i in range(steps):
        idx = order[i * batch : (i + 1) * batch]
        params, state = step(params, state, mnist.train_images[idx], mnist.train_labels[idx])
    return params


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@pytest.fixture(scope="module")
def linen(mnist):
    module = CNN()
    params = module.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))["params"]
    params = fit(lambda p, x, y: xent(module.apply({"params": p}, x), y), params, mnist)
    net, params = models.from_linen(module, params, **MNIST)
    twin = tap_network(TapFlaxCNN(), net.layer_names)
    return net, params, twin, params


@pytest.fixture(scope="module")
def nnx_model(mnist):
    graphdef, state = nnx.split(NnxCNN(rngs=nnx.Rngs(0)))
    loss = lambda p, x, y: xent(nnx.merge(graphdef, p)(x), y)  # noqa: E731
    trained = fit(loss, nnx.to_pure_dict(state), mnist)
    model = nnx.merge(graphdef, trained)
    model.eval()
    net, params = models.from_nnx(model, **MNIST)
    twin = tap_network(TapFlaxCNN(names=("conv1", "conv2", "linear1", "linear2")), net.layer_names)
    return net, params, twin, params


@pytest.fixture(scope="module")
def equinox(mnist):
    eqx = pytest.importorskip("equinox", reason="Equinox is an optional extra: pip install equinox")
    params, static = eqx.partition(equinox_cnn(jax.random.key(0)), eqx.is_inexact_array)

    def loss(p, x, y):
        log_p = jax.vmap(eqx.combine(p, static))(jnp.moveaxis(x, -1, 1))
        return -jnp.take_along_axis(log_p, y[:, None], axis=1).mean()

    model = eqx.combine(fit(loss, params, mnist), static)
    net, params = models.from_equinox(model, **MNIST)
    layers = model.layers
    twin_params = {"w0": layers[0].weight, "b0": layers[0].bias[:, 0, 0]}
    for i in (4, 6, 8):
        twin_params |= {f"w{i}": layers[i].weight, f"b{i}": layers[i].bias}
    return net, params, tap_network(TapEqxCNN(), net.layer_names), twin_params


# --------------------------------------------------------------------------------------------------------------
# Every consumer, on the adapted model and on its Tap twin.


def explanations(net, params, x, y, spatial, key):
    out = {}
    for method in explain.METHODS:  # all spatial layers from one pass
        for layer, cam in explain.cams(net, params, x, y, method=method).items():
            out[f"{method}/{layer}"] = cam
    out["guided_backprop"] = explain.guided_backprop(net, params, x, y)
    out["guided_grad_cam"] = explain.guided_grad_cam(net, params, x, y, layer=spatial[-1])
    out["occlusion"] = explain.occlusion(net, params, x, y, window=7, stride=7)
    out["saliency"] = explain.saliency(net, params, x, y)
    out["smooth_grad"] = explain.smooth_grad(net, params, x, y, key=key, num_samples=2)
    out["integrated_gradients"] = explain.integrated_gradients(net, params, x, y, steps=4)
    return out


def consumers(net, params, mnist, spatial, *, backwork=True):
    """Every method's output for one network, as ``{name: array}``. ``backwork=False`` replaces the search (its
    compile is the slowest part) by the activations its cost reads, to keep the suite's time."""
    xs, ys = jnp.asarray(mnist.test_images[:3]), jnp.asarray(mnist.test_labels[:3], jnp.int32)
    key = jax.random.key(1)
    # One jit for the explanation family: one compile, and XLA shares the passes the methods have in common.
    out = dict(jax.jit(lambda p, x, y: explanations(net, p, x, y, spatial, key))(params, xs[0], ys[0]))
    pgd = attacks.get_attack("pgd", steps=2)
    out["pgd_sweep"] = attacks.sweep(pgd, attacks.network_model(net, params), xs, ys,
                                     pgd.params(eps=jnp.array([0.05, 0.1])), key=key, bounds=net.bounds)
    chosen = net.with_layers(spatial)  # backwork on chosen layers
    if not backwork:
        out |= {f"activation/{k}": v for k, v in models.forward(chosen, params, xs, layers=spatial)[1].items()}
        return out | visualisations(net, params, spatial, key)
    config = BackworkConfig(images_per_label=2, max_steps=2, refs_per_label=16, labels=(0, 1),
                            layer_factors=(1e-3,) * len(spatial) + (10.0,))
    refs = np.concatenate([np.flatnonzero(mnist.train_labels == c)[:16] for c in config.labels])
    work = run_backwork(chosen, params, mnist.train_images[refs], mnist.train_labels[refs], config, key=key)
    out["backwork"], out["backwork_p"] = work.images, work.probs
    return out | visualisations(net, params, spatial, key)


def visualisations(net, params, spatial, key):
    out = {}
    ascent = V.AscentConfig(steps=3, step_size=0.05, clip=True, bounds=(0.0, 1.0))
    noise = V.Noise(centre=0.5, spread=0.1)
    classes = V.maximize_classes(net, params, [0, 3], ascent, noise, key=key)
    out["classes"], out["classes_p"] = classes.image, classes.values
    filters = V.visualize_filters(net, params, spatial[-1], [0, 2], ascent, noise, key=key)
    out["filters"], out["filters_v"] = filters.image, filters.values
    return out


def check_same(net, params, twin_net, twin_params, mnist, spatial, tol=1e-5, backwork=True):
    ours = consumers(net, params, mnist, spatial, backwork=backwork)
    theirs = consumers(twin_net, twin_params, mnist, spatial, backwork=backwork)
    assert ours.keys() == theirs.keys()
    assert {f"grad_cam/{n}" for n in spatial} <= ours.keys()
    for name in ours:
        try:
            assert_close(ours[name], theirs[name], tol)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None


def test_linen_example_cnn_runs_every_consumer_as_its_tap_twin(linen, mnist):
    net, params, twin, twin_params = linen
    assert net.layer_names == ("inputs", "Conv_0", "Conv_1", "Dense_0", "Dense_1", "logits")
    accuracy = (models.predict_proba(net, params, mnist.test_images[:500]).argmax(1) == mnist.test_labels[:500]).mean()
    assert accuracy > 0.6, accuracy  # trained, so the maps are not those of a random network
    check_same(net, params, twin, twin_params, mnist, ("Conv_0", "Conv_1"))


def test_nnx_tutorial_cnn_runs_every_consumer_as_its_tap_twin(nnx_model, mnist):
    net, params, twin, twin_params = nnx_model
    assert net.layer_names == ("inputs", "conv1", "conv2", "linear1", "linear2", "logits")
    assert isinstance(params, dict) and set(params["conv1"]) == {"kernel", "bias"}  # a plain pytree...
    closed = jax.make_jaxpr(lambda p, v: models.forward(net, p, v)[0])(params, jnp.zeros((1, 28, 28, 1)))
    assert max([np.size(c) for c in closed.consts], default=0) < 100  # ...of traced weights, not constants
    check_same(net, params, twin, twin_params, mnist, ("conv1", "conv2"), backwork=False)


def test_equinox_tutorial_cnn_runs_every_consumer_as_its_tap_twin(equinox, mnist):
    net, params, twin, twin_params = equinox
    assert net.layer_names == ("inputs", *(f"layers.{i}" for i in range(10)), "logits")
    check_same(net, params, twin, twin_params, mnist, ("layers.0", "layers.1", "layers.2"), backwork=False)


def test_preprocess_keeps_pixel_units(linen, mnist):
    net, params, *_ = linen
    mean, std = 0.1307, 0.3081
    normalised, _ = models.from_linen(net.module.model, params, preprocess=lambda x: (x - mean) / std, **MNIST)
    x = jnp.asarray(mnist.test_images[:2])
    # The same network on normalised pixels, with the normalisation folded into the first layer's bias/kernel.
    expected = net.module.model.apply({"params": params}, (x - mean) / std)
    np.testing.assert_allclose(models.forward(normalised, params, x)[0], expected, rtol=1e-6, atol=1e-6)
    grads = explain.saliency(normalised, params, x[0], 3, absolute=False)
    by_hand = jax.grad(lambda v: net.module.model.apply({"params": params}, ((v - mean) / std)[None])[0, 3])(x[0])
    np.testing.assert_allclose(grads, by_hand, rtol=1e-5, atol=1e-7)
    assert normalised.layer_names[0] == "inputs" and normalised.bounds == (0.0, 1.0)


def test_function_models_work_where_no_layers_are_needed(linen, mnist):
    net, params, *_ = linen
    f = lambda p, x: net.module.model.apply({"params": p}, x)  # noqa: E731
    fnet, fparams = models.from_function(f, params, **MNIST)
    assert fnet.layer_names == ("inputs", "logits")
    x, y = jnp.asarray(mnist.test_images[0]), int(mnist.test_labels[0])
    assert_close(explain.saliency(fnet, fparams, x, y), explain.saliency(net, params, x, y))
    assert_close(explain.occlusion(fnet, fparams, x, y, window=7), explain.occlusion(net, params, x, y, window=7))
    assert_close(explain.guided_backprop(fnet, fparams, x, y), explain.guided_backprop(net, params, x, y))


def test_all_layer_cams_on_an_adapted_model_cost_one_forward_backward():
    """XLA's flop count on the CPU backend (as tests/test_explain_gradcam.py measures the Tap models)."""
    module = CNN()
    cpu = jax.devices("cpu")[0]
    params = jax.device_put(module.init(jax.random.key(0), jnp.ones((1, 16, 16, 1)))["params"], cpu)
    net, params = models.from_linen(module, params, input_shape=(16, 16, 1), bounds=(0, 1), num_classes=10)
    x = jax.device_put(jnp.zeros(net.input_shape), cpu)
    flops = lambda f: f.lower(params, x).compile().cost_analysis()["flops"]  # noqa: E731
    layers = ("Conv_0", "Conv_1")
    all_layers = flops(jax.jit(lambda p, v: explain.cams(net, p, v, 0, layers=layers)))
    one_pass = flops(jax.jit(lambda p, v: input_gradients(net, p, v[None], 0)))
    assert all_layers <= 1.2 * one_pass, (all_layers, one_pass)


def test_guided_relu_is_found_in_nested_jits_and_not_in_a_bare_maximum():
    w = jnp.array([1.0, -1.0, 1.0])
    nested = jax.jit(lambda x: jax.jit(jax.nn.relu)(x) * w)
    x = jnp.array([1.0, 2.0, -1.0])
    # d/dx sum(relu(x) * w): plain (1, -1, 0); guided keeps only positive gradients at positive inputs: (1, 0, 0).
    np.testing.assert_array_equal(jax.grad(lambda v: nested(v).sum())(x), [1, -1, 0])
    np.testing.assert_array_equal(jax.grad(lambda v: explain.guided(nested)(v).sum())(x), [1, 0, 0])
    with pytest.raises(ValueError, match="no jax.nn.relu call in .*jnp.maximum"):
        explain.guided(lambda v: jnp.maximum(v, 0) * w)(x)


# --------------------------------------------------------------------------------------------------------------
# One-line errors.


class Dropping(nnx.Module):
    def __init__(self, *, rngs):
        self.linear = nnx.Linear(4, 3, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.drop(self.linear(x.reshape(x.shape[0], -1)))


class Normed(nnx.Module):
    def __init__(self, *, rngs):
        self.linear = nnx.Linear(4, 3, rngs=rngs)
        self.norm = nnx.BatchNorm(3, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.linear(x.reshape(x.shape[0], -1)))


class Listy(nn.Module):
    sizes: list

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.sizes[-1])(x.reshape(x.shape[0], -1))


class MaxReLU(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jnp.maximum(nn.Dense(5)(x.reshape(x.shape[0], -1)), 0))


def one_line_error(call, message):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    text = str(err.value)
    assert message in text and "\n" not in text, text


def test_bad_models_give_one_line_errors(linen, mnist):
    net, params, *_ = linen
    x = jnp.asarray(mnist.test_images[0])
    fnet, fparams = models.from_function(lambda p, v: net.module.model.apply({"params": p}, v), params, **MNIST)
    small = dict(input_shape=(2, 2, 1), bounds=(0.0, 1.0), num_classes=3)
    dropping, normed = Dropping(rngs=nnx.Rngs(0)), Normed(rngs=nnx.Rngs(0))
    max_net, max_params = models.from_linen(MaxReLU(), MaxReLU().init(jax.random.key(0), jnp.ones((1, 2, 2, 1))),
                                            **small)
    cases = [
        (lambda: explain.grad_cam(net, params, x, 0, layer="Conv_9"),
         "unknown layer 'Conv_9' for CNN; valid layers: inputs, Conv_0, Conv_1, Dense_0, Dense_1, logits"),
        (lambda: explain.grad_cam(fnet, fparams, x, 0, layer="Conv_0"),
         "it is a plain function (from_function), whose only layers are 'inputs' and 'logits'"),
        (lambda: explain.cams(fnet, fparams, x, 0), "adapt it with from_linen, from_nnx or from_equinox"),
        (lambda: V.visualize_filters(fnet, fparams, "Conv_0", [0], key=jax.random.key(0)), "plain function"),
        (lambda: models.from_linen(CNN(), params, input_shape=(28, 28, 1), bounds=(0, 1), num_classes=5),
         "CNN returns (2, 10) for a batch of 2 inputs (28, 28, 1); a classifier must return [batch, num_classes]"),
        (lambda: models.from_function(lambda p, v: v.sum(), {}, **MNIST), "returns () for a batch of 2 inputs"),
        (lambda: models.from_nnx(dropping, **small),
         "Dropping: drop (Dropout) is in training mode (dropout live); call model.eval() before from_nnx"),
        (lambda: models.from_nnx(normed, **small),
         "Normed: norm (BatchNorm) is in training mode (batch statistics live); call model.eval()"),
        (lambda: models.from_linen(CNN(), params, input_shape=(28, 28), bounds=(0, 1), num_classes=10),
         "CNN fails on a batch of inputs [2, 28, 28]"),
        (lambda: models.from_linen(CNN(), params, input_shape=(28, None, 1), bounds=(0, 1), num_classes=10),
         "input_shape=(28, None, 1) must be positive ints"),
        (lambda: models.from_linen(CNN(), params, input_shape=(28, 28, 1), bounds=(1, 0), num_classes=10),
         "bounds=(1, 0) must be finite (low, high) with low < high"),
        (lambda: models.from_linen(CNN(), params, class_names=("a",), **MNIST), "1 class_names for num_classes=10"),
        (lambda: models.from_nnx(CNN(), **MNIST), "from_nnx takes a flax.nnx.Module, got CNN"),
        (lambda: models.from_linen(Listy(sizes=[3]), {}, **small), "Listy has an unhashable attribute"),
        (lambda: explain.guided_backprop(max_net, max_params, jnp.zeros((2, 2, 1)), 0),
         "guided backprop found no jax.nn.relu call in MaxReLU: a ReLU written as jnp.maximum(x, 0)"),
    ]
    for call, message in cases:
        one_line_error(call, message)
    # After model.eval() both are accepted.
    dropping.eval()
    normed.eval()
    assert models.from_nnx(dropping, **small)[0].layer_names == ("inputs", "linear", "drop", "logits")
    assert models.from_nnx(normed, **small)[0].layer_names == ("inputs", "linear", "norm", "logits")


def test_equinox_dropout_in_training_mode_is_an_error():
    eqx = pytest.importorskip("equinox", reason="Equinox is an optional extra: pip install equinox")

    class Dropping(eqx.Module):
        layers: list

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Dropping([jnp.ravel, eqx.nn.Linear(4, 3, key=jax.random.key(0)), eqx.nn.Dropout(0.5)])
    small = dict(input_shape=(2, 2, 1), bounds=(0.0, 1.0), num_classes=3)
    one_line_error(lambda: models.from_equinox(model, **small),
                   "Dropping: layers.2 (Dropout) is in training mode (inference=False); call model = "
                   "eqx.nn.inference_mode(model)")
    net, _ = models.from_equinox(eqx.nn.inference_mode(model), **small)
    assert net.layer_names == ("inputs", "layers.0", "layers.1", "layers.2", "logits")


def test_repeated_and_reserved_layer_names():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            dense = nn.Dense(4, name="logits")  # a submodule named like the output
            return dense(nn.relu(dense(x.reshape(x.shape[0], -1))))

    module = Twice()
    params = module.init(jax.random.key(0), jnp.ones((1, 2, 2, 1)))["params"]
    net, params = models.from_linen(module, params, input_shape=(2, 2, 1), bounds=(0, 1), num_classes=4)
    assert net.layer_names == ("inputs", "logits#2", "logits#3", "logits")
    x = jnp.full((1, 2, 2, 1), 0.5)
    logits, acts = models.forward(net, params, x, layers=("logits#2", "logits#3"))
    np.testing.assert_allclose(acts["logits#3"], logits)
    first = x.reshape(1, -1) @ params["logits"]["kernel"] + params["logits"]["bias"]
    np.testing.assert_allclose(acts["logits#2"], first, rtol=1e-6)


def test_linen_batch_norm_and_dropout_models_in_evaluation_mode():
    class Normed(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = True):
            x = nn.Conv(4, (3, 3))(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
            return nn.Dense(3)(x.reshape(x.shape[0], -1))

    module = Normed()
    x = jax.random.uniform(jax.random.key(1), (2, 6, 6, 1))
    variables = module.init(jax.random.key(0), x, train=False)
    # Non-trivial running statistics, so using them (rather than the batch's) shows.
    variables["batch_stats"] = jax.tree.map(lambda v: v + 0.3, variables["batch_stats"])
    small = dict(input_shape=(6, 6, 1), bounds=(0.0, 1.0), num_classes=3)
    net, params = models.from_linen(module, variables, call_kwargs={"train": False}, **small)
    assert set(params) == {"Conv_0", "Dense_0", "BatchNorm_0"}
    assert net.layer_names == ("inputs", "Conv_0", "BatchNorm_0", "Dropout_0", "Dense_0", "logits")
    np.testing.assert_allclose(models.forward(net, params, x)[0], module.apply(variables, x, train=False),
                               rtol=1e-6, atol=1e-6)
    assert explain.grad_cam(net, params, x[0], 1, layer="BatchNorm_0").shape == (6, 6)
    one_line_error(lambda: models.from_linen(module, variables, **small),
                   "a model in training mode? pass call_kwargs such as {'train': False}")
