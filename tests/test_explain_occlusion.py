"""Occlusion sensitivity: by hand on a linear model, and equal to Captum's ``Occlusion``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from explain_twins import (
    assert_close,
    linear_model,
    nchw,
    tiny_setup,
    torch_mnist_cnn,
    torch_tiny_cnn,
)

from jaxfool import explain


@pytest.fixture(scope="module")
def tiny():
    return tiny_setup(seed=3)


@pytest.fixture(scope="module")
def linear():
    """logit 0 = sum of v * x over a 3x3 one-channel image, v = 1..9; logit 1 = its negative."""
    v = np.arange(1, 10, dtype=np.float32)
    net, params = linear_model((3, 3, 1), np.stack([v, -v], axis=1))
    return net, params


def test_window_positions_follow_captum():
    np.testing.assert_array_equal(explain.window_starts(28, 4, 2), np.arange(13) * 2)  # exact fit
    # (12 - 3) / 2 is not whole: one more window at 10, clipped to the last two pixels.
    np.testing.assert_array_equal(explain.window_starts(12, 3, 2), [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(explain.window_starts(5, 5, 3), [0])


def test_occlusion_by_hand_on_a_linear_model(linear):
    net, params = linear
    x = np.ones((3, 3, 1), np.float32)
    # 2x2 windows, stride 1, black baseline: the drops of the four windows are the sums of v under them,
    # 12 (top-left), 16 (top-right), 24 (bottom-left), 28 (bottom-right); each pixel averages its windows.
    expected = np.array([[12, 14, 16], [18, 20, 22], [24, 26, 28]], np.float32)
    np.testing.assert_allclose(explain.occlusion(net, params, x, 0, window=2, stride=1), expected, rtol=1e-6)
    np.testing.assert_allclose(explain.occlusion(net, params, x, 1, window=2, stride=1), -expected, rtol=1e-6)
    # A baseline of 0.5 halves every drop.
    np.testing.assert_allclose(explain.occlusion(net, params, x, 0, window=2, stride=1, baseline=0.5),
                               expected / 2, rtol=1e-6)


def test_occlusion_of_the_probability_by_hand(linear):
    net, params = linear
    x = np.full((3, 3, 1), 0.05, np.float32)
    # Two classes with logits (s, -s): p0 = sigmoid(2 s), s = 0.05 * 45; a window removes 0.05 * (its sum of v).
    p0 = lambda s: 1 / (1 + np.exp(-2 * s))  # noqa: E731
    d = {w: p0(0.05 * 45) - p0(0.05 * (45 - w)) for w in (12, 16, 24, 28)}
    expected = [
        [d[12], (d[12] + d[16]) / 2, d[16]],
        [(d[12] + d[24]) / 2, (d[12] + d[16] + d[24] + d[28]) / 4, (d[16] + d[28]) / 2],
        [d[24], (d[24] + d[28]) / 2, d[28]],
    ]
    out = explain.occlusion(net, params, x, 0, window=2, stride=1, score="probability")
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_occlusion_with_an_image_baseline_by_hand(linear):
    net, params = linear
    x = np.full((3, 3, 1), 0.5, np.float32)
    baseline = np.zeros((3, 3, 1), np.float32)
    baseline[1, 1] = 0.5  # occluding the centre changes nothing
    # 3x3 window: one window covering everything; drop = sum of v * (x - baseline) = 0.5 * (45 - 5).
    out = explain.occlusion(net, params, x, 0, window=3, stride=1, baseline=baseline)
    np.testing.assert_allclose(out, np.full((3, 3), 20.0), rtol=1e-6)


@pytest.mark.parametrize(
    "window, stride, baseline",
    [((3, 3), (2, 2), 0.3), ((4, 2), (1, 2), 0.0), ((5, 5), (5, 5), "image"), ((12, 3), (1, 3), 1.0)],
)
def test_occlusion_equals_captum(tiny, window, stride, baseline):
    captum = pytest.importorskip("captum.attr")
    net, params, x = tiny
    if baseline == "image":
        baseline = np.random.default_rng(4).uniform(size=x.shape).astype(np.float32)
        theirs = nchw(baseline)
    else:
        theirs = baseline
    c = x.shape[-1]
    ref = captum.Occlusion(torch_tiny_cnn(params)).attribute(
        nchw(x), target=2, sliding_window_shapes=(c, *window), strides=(c, *stride), baselines=theirs,
        perturbations_per_eval=16,
    )
    ours = explain.occlusion(net, params, x, 2, window=window, stride=stride, baseline=baseline, batch_size=16)
    for channel in range(c):  # Captum repeats the map on every channel occluded together
        assert_close(ours, ref.numpy()[0, channel])


def test_occlusion_equals_captum_on_trained_mnist(trained_mnist, mnist):
    captum = pytest.importorskip("captum.attr")
    net, params = trained_mnist
    x, label = mnist.test_images[1], int(mnist.test_labels[1])
    ref = captum.Occlusion(torch_mnist_cnn(params)).attribute(
        nchw(x), target=label, sliding_window_shapes=(1, 6, 6), strides=(1, 3, 3), baselines=0.0,
        perturbations_per_eval=81,
    )
    assert_close(explain.occlusion(net, params, x, label, window=6, stride=3, batch_size=81), ref.numpy()[0, 0])


def test_batch_size_bounds_memory_not_results(tiny):
    net, params, x = tiny
    full = explain.occlusion(net, params, x, 1, window=3, stride=1, batch_size=1000)
    for batch_size in (1, 7, 100):  # 100 windows in all: one chunk, uneven chunks, one window at a time
        assert_close(explain.occlusion(net, params, x, 1, window=3, stride=1, batch_size=batch_size), full)


def test_config_builds_static_spec_and_traced_baseline(tiny):
    net, params, x = tiny
    cfg = explain.OcclusionConfig(window=4, stride=2, baseline=0.5, batch_size=9)
    spec, hyper = cfg.build()
    hash(spec)  # a jit static
    one = spec(net, params, x, 3, hyper)
    assert_close(one, explain.occlusion(net, params, x, 3, window=4, stride=2, baseline=0.5, batch_size=9))
    xs = np.stack([x, x[::-1]])
    batched = jax.jit(jax.vmap(lambda v: spec(net, params, v, 3, hyper)))(xs)
    assert_close(batched[0], one)
    assert batched.shape == (2, 12, 12)
    # The baseline is traced: one program serves a vmapped sweep of baselines.
    sweep = jax.jit(jax.vmap(lambda b: spec(net, params, x, 3, explain.OcclusionParams(b))))(jnp.array([0.0, 0.5]))
    assert_close(sweep[1], one)
    assert_close(sweep[0], spec(net, params, x, 3, explain.OcclusionParams(0.0)))
    assert not np.allclose(sweep[0], sweep[1])


def test_bad_occlusion_inputs(tiny):
    net, params, x = tiny
    cases = [
        (dict(window=13), "occlusion window (13, 13) is larger than the image (12, 12); use at most the image size"),
        (dict(window=(3, 20)), "occlusion window (3, 20) is larger than the image (12, 12)"),
        (dict(window=3, stride=4), "occlusion stride (4, 4) exceeds the window (3, 3)"),
        (dict(window=0), "occlusion window must be a positive int"),
        (dict(window=3, baseline=np.zeros((4, 4, 3))), "baseline has shape (4, 4, 3), expected a number"),
        (dict(window=3, batch_size=0), "batch_size must be >= 1"),
        (dict(window=3, score="loss"), "unknown class score 'loss'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as err:
            explain.occlusion(net, params, x, 0, **kwargs)
        assert message in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="contains 1 NaN"):
        explain.occlusion(net, params, np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), 0, window=3)
    with pytest.raises(ValueError, match="class index 9 out of range"):
        explain.occlusion(net, params, x, 9, window=3)
