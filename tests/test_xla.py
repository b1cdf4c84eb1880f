"""jaxfool.xla: the CNN compiler options are accepted by this XLA and change no result."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool import xla
from jaxfool.models import forward, mnist_cnn


def test_options_by_backend():
    assert xla.cnn_compiler_options("cpu") == xla.YNNPACK_DOTS
    assert xla.cnn_compiler_options("gpu") == {}


def test_cpu_programs_send_matmuls_to_ynnpack_and_keep_convolutions_on_xla():
    if jax.default_backend() != "cpu":
        pytest.skip("the options are CPU-only")
    conv = lambda x: jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 2, 4)), (1, 1), "SAME",
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    f = lambda a, w, x: jnp.tanh(a @ w.T).sum() + conv(x).sum()  # a dense layer's input-gradient form, a conv
    hlo = xla.jit(f).lower(jnp.ones((8, 16)), jnp.ones((4, 16)), jnp.ones((1, 5, 5, 2))).compile().as_text()
    assert "ynn_fusion" in hlo and "convolution(" in hlo


def test_importing_jaxfool_leaves_jax_uninitialised():
    """``jax.distributed.initialize()`` must run before any backend starts, so imports must not start one."""
    code = ("import jaxfool, jaxfool.attacks, jaxfool.explain, jaxfool.visualize, jaxfool.backwork, jaxfool.train; "
            "from jax._src import xla_bridge; assert not xla_bridge.backends_are_initialized()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jit_decorator_forms_and_lowering():
    @xla.jit(static_argnames=("n",))
    def power(x, n):
        return x**n

    square = xla.jit(lambda x: x * x)
    assert float(power(3.0, n=2)) == float(square(3.0)) == 9.0
    assert power.__name__ == "power"
    assert float(power.lower(2.0, n=3).compile()(2.0)) == 8.0  # jit's attributes pass through


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


def test_jit_nests_inside_jit_grad_and_vmap():
    f = xla.jit(lambda x: jnp.sin(x) * x)
    expected = float(jnp.cos(1.0) + jnp.sin(1.0))
    assert float(jax.grad(f)(1.0)) == pytest.approx(expected, rel=1e-6)
    assert float(jax.jit(jax.grad(f))(1.0)) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(jax.vmap(f)(jnp.ones(3)), np.full(3, np.sin(1.0)), rtol=1e-6)


def test_top_level_detection_uses_public_jax_only():
    import inspect

    assert "jax._src" not in inspect.getsource(xla)
    seen = {}
    jax.jit(lambda x: seen.setdefault("jit", xla._at_top_level()) and x or x)(1.0)
    jax.grad(lambda x: seen.setdefault("grad", xla._at_top_level()) and x or x)(1.0)
    jax.vmap(lambda x: seen.setdefault("vmap", xla._at_top_level()) and x or x)(jnp.ones(2))
    assert xla._at_top_level() and seen == {"jit": False, "grad": False, "vmap": False}
