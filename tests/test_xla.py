"""jaxfool.xla: the CNN compiler options are accepted by this XLA and change no result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.models import forward, mnist_cnn


def test_options_by_backend():
    assert xla.cnn_compiler_options("cpu") == xla.PER_LAYER_YNNPACK
    assert xla.cnn_compiler_options("gpu") == {}


def test_jit_with_options_gives_the_same_numbers():
    net = mnist_cnn()
    params = jax.jit(lambda key: net.init(key=key))(jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)), jnp.float32)

    def f(x):
        return forward(net, params, x)[0]

    tuned = xla.jit(f, compiler_options={"xla_cpu_enable_fast_math": False})
    np.testing.assert_allclose(tuned(x), jax.jit(f)(x), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda v: f(v).sum())
    np.testing.assert_allclose(xla.jit(g)(x), jax.jit(g)(x), rtol=1e-4, atol=1e-6)
