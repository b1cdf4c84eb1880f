"""The canonical-gradient convolution, the extra MNIST architectures and the defences."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool import attacks, defences
from jaxfool.models import forward, layers, mnist_zoo
from jaxfool.train import TrainConfig, accuracy, one_hot, train


@pytest.mark.parametrize("strides, padding", [((1, 1), "SAME"), ((1, 1), "VALID"), ((2, 2), "SAME")])
def test_conv_matches_flax_conv_values_and_gradients(strides, padding):
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
    ours, theirs = layers.Conv(4, (3, 3), strides, padding), nn.Conv(4, (3, 3), strides, padding)
    params = theirs.init(jax.random.key(1), x)
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(params)
    loss = lambda module: lambda p, v: jnp.sum(jnp.sin(module.apply(p, v)))
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.grad(loss(ours), (0, 1))(params, x), jax.grad(loss(theirs), (0, 1))(params, x)):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_conv_input_gradient_is_canonical_inside_a_loop():
    """The reason for layers.Conv: XLA:CPU only canonicalises convolutions of the entry computation."""
    module = layers.Conv(32, (5, 5))
    x = jnp.zeros((4, 12, 12, 32))
    params = module.init(jax.random.key(0), x)

    def steps(v):
        return jax.lax.fori_loop(0, 3, lambda i, v: v + jax.grad(lambda u: jnp.sin(module.apply(params, u)).sum())(v), v)

    hlo = jax.jit(steps).lower(x).compile().as_text()
    assert "convolution(" in hlo and "_01oi->" not in hlo


@pytest.mark.parametrize("make", [mnist_zoo.mnist_mlp, mnist_zoo.mnist_resnet])
def test_zoo_models_follow_the_network_convention(make):
    net = make()
    params = net.init(key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    logits, acts = forward(net, params, x, layers=net.layer_names)
    assert logits.shape == (3, 10) and tuple(acts) == net.layer_names
    np.testing.assert_array_equal(acts["logits"], logits)
    np.testing.assert_array_equal(acts["inputs"], x)


def test_adversarial_batch_fn_replaces_a_fraction_with_attacks_inside_eps(trained_mnist, mnist):
    net, params = trained_mnist
    fgsm = attacks.get_attack("fgsm")
    batch_fn = jax.jit(defences.adversarial_batch_fn(net, fgsm, fgsm.params(0.2), fraction=0.5))
    x, targets = jnp.asarray(mnist.test_images[:8]), jnp.asarray(one_hot(mnist.test_labels[:8], 10))
    x_new, t_new = batch_fn(params, x, targets, jax.random.key(0))
    np.testing.assert_array_equal(t_new, targets)
    np.testing.assert_array_equal(x_new[4:], x[4:])
    changed = np.abs(np.asarray(x_new[:4] - x[:4])).reshape(4, -1).max(1)
    assert np.all(changed > 0.1) and np.all(changed <= 0.2 + 1e-6)
    with pytest.raises(ValueError, match="untargeted"):
        defences.adversarial_batch_fn(net, attacks.get_attack("fgsm", targeted=True), fgsm.params(0.2))


@pytest.mark.slow
def test_fgsm_training_and_distillation_run_on_a_small_mlp(mnist):
    net = mnist_zoo.mnist_mlp()
    x, y = mnist.train_images[::8], mnist.train_labels[::8]  # the embedded split is sorted by class
    config = TrainConfig(epochs=2, batch_size=64, seed=0)
    fgsm = attacks.get_attack("fgsm")
    robust, losses = train(net, x, one_hot(y, 10), config,
                           batch_fn=defences.adversarial_batch_fn(net, fgsm, fgsm.params(0.1), fraction=0.5))
    assert np.isfinite(losses).all() and accuracy(net, robust, mnist.test_images, mnist.test_labels) > 0.6
    # At temperature T the logits must grow T-fold to fit, so a few steps need a larger learning rate.
    hot_config = TrainConfig(epochs=2, batch_size=64, learning_rate=3e-3, seed=0)
    teacher, student = defences.defensive_distillation(net, x, y, hot_config, temperature=10.0)
    assert accuracy(net, teacher, mnist.test_images, mnist.test_labels) > 0.6
    assert accuracy(net, student, mnist.test_images, mnist.test_labels) > 0.55
    hot = defences.at_temperature(net, 10.0)
    z_student = forward(net, student, mnist.test_images[:50])[0]
    np.testing.assert_allclose(forward(hot, student, mnist.test_images[:50])[0], z_student / 10.0, rtol=1e-5)
    # Trained at T=10 and used at T=1, the student's softmax saturates: confident far beyond the teacher's.
    assert float(jnp.median(jax.nn.softmax(z_student).max(-1))) > 0.99


def test_network_model_routes_flax_convs_through_conv2d_with_equal_values_and_gradients(trained_mnist, mnist):
    net, params = trained_mnist
    x = jnp.asarray(mnist.test_images[:4])
    fast = attacks.network_model(net, params)
    plain = attacks.network_model(net, params, canonical_convs=False)
    np.testing.assert_allclose(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    grad = lambda model: jax.grad(lambda v: jnp.sum(jax.nn.log_softmax(model(v))[:, 3]))(x)
    np.testing.assert_allclose(grad(fast), grad(plain), rtol=1e-4, atol=1e-6)
    loop = lambda model: jax.jit(lambda v: jax.lax.fori_loop(
        0, 2, lambda i, u: u + jax.grad(lambda w: jnp.sum(model(w)))(u), v)).lower(x).compile().as_text()
    assert "_01oi->" in loop(plain) and "_01oi->" not in loop(fast)
