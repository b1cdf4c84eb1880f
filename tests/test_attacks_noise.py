"""Perlin noise and universal adversarial perturbations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks
from jaxfool.attacks import perlin


def test_gradient_noise_vanishes_on_the_lattice_and_is_smooth_between():
    perm = jax.random.permutation(jax.random.key(0), 256)
    grid = jnp.arange(-3.0, 4.0)
    u, v = jnp.meshgrid(grid, grid)
    np.testing.assert_allclose(perlin._gradient_noise(u, v, perm), 0.0, atol=1e-6)
    fine = jnp.linspace(0.0, 4.0, 401)
    values = perlin._gradient_noise(fine, jnp.full_like(fine, 0.3), perm)
    assert float(jnp.abs(jnp.diff(values)).max()) < 0.05  # continuous at this 0.01 spacing
    assert float(jnp.abs(values).max()) > 0.1


def test_perlin_noise_range_determinism_and_traced_parameters():
    params = attacks.PerlinParams(period=jnp.array([4.0, 8.0, 16.0]), freq_sine=jnp.array([2.0, 6.0, 12.0]))
    make = jax.jit(jax.vmap(lambda p: attacks.perlin_noise(20, 24, p, key=jax.random.key(1), octaves=3)))
    noise = make(params)
    assert noise.shape == (3, 20, 24)
    assert float(noise.min()) >= -1.0 and float(noise.max()) <= 1.0
    np.testing.assert_array_equal(noise, make(params))
    assert not np.allclose(noise[0], noise[1]) and not np.allclose(noise[1], noise[2])
    other = attacks.perlin_noise(20, 24, attacks.PerlinParams(4.0, 2.0), key=jax.random.key(2), octaves=3)
    assert not np.allclose(other, noise[0])
    # sin(n * phi * pi) with n spanning [0, 1] reaches both extremes once phi >= 1.5
    assert float(noise[2].max()) > 0.9 and float(noise[2].min()) < -0.9


def test_perlin_image_and_perturbation_respect_bounds_and_eps():
    params = attacks.PerlinParams(8.0, 4.0)
    image = attacks.perlin_image((16, 16, 3), params, key=jax.random.key(0), bounds=(0.0, 255.0))
    assert image.shape == (16, 16, 3) and float(image.min()) >= 0.0 and float(image.max()) <= 255.0
    np.testing.assert_array_equal(image[..., 0], image[..., 2])  # the same pattern on every channel
    x = jax.random.uniform(jax.random.key(1), (16, 16, 3))
    adv = attacks.perlin_perturbation(x, params, key=jax.random.key(0), eps=0.1, bounds=(0.0, 1.0))
    assert float(jnp.abs(adv - x).max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_universal_perturbation_fools_most_images_where_random_noise_does_not(trained_mnist, mnist):
    net, params = trained_mnist
    model = attacks.network_model(net, params)
    x, y = mnist.test_images[:128], mnist.test_labels[:128]
    delta = attacks.universal_perturbation(
        model, x, y, attacks.UniversalParams(eps=0.3, rel_step=0.1), key=jax.random.key(0), bounds=net.bounds,
        epochs=3, batch_size=32,
    )
    assert delta.shape == (28, 28, 1) and float(jnp.abs(delta).max()) <= 0.3 + 1e-6
    random = 0.3 * jnp.sign(jax.random.normal(jax.random.key(1), delta.shape))
    fooled = attacks.fooling_rate(model, x, delta, bounds=net.bounds)
    assert fooled >= 0.5
    assert fooled > attacks.fooling_rate(model, x, random, bounds=net.bounds) + 0.3


def test_fooling_rate_by_hand_and_compiles_once():
    traces = []
    w = jnp.eye(4)

    def model(x):  # x [batch, 1, 1, 4] -> logits = pixels; counts its traces
        traces.append(1)
        return x.reshape(len(x), 4) @ w

    x = jnp.asarray(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]].reshape(6, 1, 1, 4) * 0.5)
    delta = jnp.array([0.0, 0.0, 0.0, 0.6]).reshape(1, 1, 4)  # pushes every image to class 3 (clipped to [0, 1])
    assert attacks.fooling_rate(model, x, delta, bounds=(0.0, 1.0), batch_size=3) == 5 / 6  # all but the class-3 one
    first = len(traces)
    assert first == 1  # one program for both batches of 3 and for clean and perturbed images
    # Subtracting it only blanks the class-3 image (all zeros: argmax 0), clipped at 0 everywhere else.
    assert attacks.fooling_rate(model, x, -delta, bounds=(0.0, 1.0), batch_size=3) == 1 / 6
    assert len(traces) == first  # and none for the next call
