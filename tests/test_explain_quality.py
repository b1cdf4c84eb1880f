"""Faithfulness metrics and sanity checks: by hand, against Captum, and invariants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from explain_twins import linear_model, nchw, tiny_setup, torch_tiny_cnn

from jaxfool import explain
from jaxfool.models import mnist_cnn


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(4 * 4 * 1, 2)).astype(np.float32)
    net, params = linear_model((4, 4, 1), kernel)
    x = rng.uniform(size=(4, 4, 1)).astype(np.float32)
    return net, params, x, kernel


def test_auc_by_hand():
    assert float(explain.auc(jnp.array([1.0, 0.5, 0.0]))) == pytest.approx(0.5)
    assert float(explain.auc(jnp.array([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(0.5)


def test_deletion_and_insertion_curves_of_a_linear_model_by_hand(linear):
    net, params, x, kernel = linear
    contrib = (x[..., 0] * kernel[:, 0].reshape(4, 4))  # the logit of class 0 is their sum
    order = np.argsort(-contrib.ravel(), kind="stable")
    curve = np.asarray(explain.deletion_curve(net, params, x, 0, contrib, steps=16, score="logit", batch_size=5))
    expected = [contrib.ravel()[order[k:]].sum() for k in range(17)]
    np.testing.assert_allclose(curve, expected, rtol=1e-5, atol=1e-5)
    # Deleting by the true contributions falls fastest: no other order has a lower area.
    other = explain.deletion_curve(net, params, x, 0, -contrib, steps=16, score="logit")
    assert explain.auc(curve) < explain.auc(other)
    ins = np.asarray(explain.insertion_curve(net, params, x, 0, contrib, steps=16, score="logit"))
    assert ins[-1] == pytest.approx(expected[0], rel=1e-5)  # everything inserted: the image itself
    with pytest.raises(ValueError, match="heatmap has shape"):
        explain.deletion_curve(net, params, x, 0, contrib[:2])


def test_impute_reproduces_a_linear_ramp_and_keeps_known_pixels():
    i, j = np.meshgrid(np.arange(12.0), np.arange(10.0), indexing="ij")
    x = np.stack([0.3 * i - 0.2 * j + 1, 0.1 * i + 0.5 * j], -1).astype(np.float32)
    removed = np.zeros((12, 10), bool)
    removed[3:9, 2:8] = True
    out = np.asarray(explain.impute(jnp.asarray(x), jnp.asarray(removed), key=jax.random.key(0), noise=0.0))
    np.testing.assert_allclose(out, x, atol=1e-4)  # the neighbour mean of a linear function is the function
    noisy = np.asarray(explain.impute(jnp.asarray(x), jnp.asarray(removed), key=jax.random.key(0), noise=0.1))
    np.testing.assert_array_equal(noisy[~removed], x[~removed])
    assert 0.05 < np.std(noisy[removed] - x[removed]) < 0.2


def test_road_orders(linear):
    net, params, x, kernel = linear
    contrib = x[..., 0] * kernel[:, 0].reshape(4, 4)
    kw = dict(key=jax.random.key(1), fractions=(0.25, 0.5), noise=0.0, score="logit")
    morf = explain.road(net, params, x, 0, contrib, order="morf", **kw)
    lerf = explain.road(net, params, x, 0, contrib, order="lerf", **kw)
    assert morf.shape == (2,) and bool(jnp.all(morf < lerf))
    with pytest.raises(ValueError, match="unknown ROAD order"):
        explain.road(net, params, x, 0, contrib, order="up", key=jax.random.key(0))


def test_infidelity_and_max_sensitivity_equal_captums():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("captum.metrics")
    from captum.attr import Saliency

    net, params, x = tiny_setup()
    twin = torch_tiny_cnn(params)
    attribution = explain.saliency(net, params, x, 2, absolute=False)
    key, n, noise = jax.random.key(5), 8, 0.01
    drawn = np.asarray(noise * jax.random.normal(key, (n, *x.shape)))  # the draws infidelity makes
    ours = explain.infidelity(net, params, x, 2, attribution, key=key, noise=noise, num_samples=n)
    perturb = lambda inputs: (nchw(drawn), inputs - nchw(drawn))
    theirs = metrics.infidelity(twin, perturb, nchw(x), nchw(attribution), target=2, n_perturb_samples=n,
                                max_examples_per_batch=n)
    assert float(ours) == pytest.approx(float(theirs[0]), rel=1e-4)

    d = np.asarray(jax.random.uniform(key, (n, *x.shape), jnp.float32, -0.02, 0.02))
    fn = lambda v: explain.saliency(net, params, v, 2, absolute=False)
    ours = explain.max_sensitivity(fn, x, key=key, radius=0.02, num_samples=n)
    theirs = metrics.sensitivity_max(Saliency(twin).attribute, nchw(x), perturb_func=lambda inp, r: inp + nchw(d),
                                     n_perturb_samples=n, max_examples_per_batch=n, target=2, abs=False)
    assert float(ours) == pytest.approx(float(theirs[0]), rel=1e-4)


def test_randomization_stages_and_similarity():
    net = mnist_cnn()
    params = net.init(key=jax.random.key(0))
    stages = explain.cascading_randomization(net, params, key=jax.random.key(1))
    assert [name for name, _ in stages] == ["logits", "fc", "conv1", "conv0"]
    last = stages[-1][1]
    for name, p in stages:  # cumulative from the top: every layer above `name` is random too
        changed = {k for k in params if not np.array_equal(params[k]["kernel"], p[k]["kernel"])}
        assert changed == set(list(params)[list(params).index(name):])
        for k in changed:  # one draw per layer across stages
            np.testing.assert_array_equal(p[k]["kernel"], last[k]["kernel"])
    single = explain.independent_randomization(net, params, key=jax.random.key(1))
    assert all(not np.array_equal(p[n]["kernel"], params[n]["kernel"]) for n, p in single)
    m = np.random.default_rng(0).uniform(size=(28, 28))
    same = explain.similarity(m, m)
    assert all(v == pytest.approx(1.0) for v in same.values())
    flipped = explain.similarity(m, -m)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["spearman_abs"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown parameter layers"):
        explain.randomize(net, params, ["conv9"], key=jax.random.key(0))


def test_fourier_start_has_lucids_spread():
    from jaxfool import visualize

    h = w = 224
    # One DC coefficient a by hand: irfft2 gives a * scale_dc / (h w), scale_dc = sqrt(h w) * max(h, w), then / 4.
    spec = np.zeros((3, h, w // 2 + 1, 2), np.float32)
    spec[0, 0, 0, 0] = 0.01
    img = np.asarray(visualize.fourier_image(jnp.asarray(spec), (h, w, 3), (0.0, 1.0), decorrelate=False))
    pre = np.log(img[..., 0] / (1 - img[..., 0]))  # undo the sigmoid
    np.testing.assert_allclose(pre, 0.01 * np.sqrt(h * w) * max(h, w) / (h * w) / 4, rtol=1e-4)
    # A random start: the spread Lucid's fft_image formula gives, written out in NumPy.
    spec = np.asarray(visualize.fourier_init((h, w, 3), key=jax.random.key(0)))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    scale = np.sqrt(w * h) / np.maximum(np.sqrt(fx**2 + fy**2), 1 / max(h, w))
    lucid = np.fft.irfft2((spec[..., 0] + 1j * spec[..., 1]) * scale, s=(h, w)) / 4
    ours = np.asarray(visualize.fourier_image(jnp.asarray(spec), (h, w, 3), (0.0, 1.0), decorrelate=False))
    ours = np.log(ours / (1 - ours)).transpose(2, 0, 1)
    np.testing.assert_allclose(ours.std(), lucid.std(), rtol=1e-3)
    assert 0.01 < lucid.std() < 0.05  # without sqrt(w h) it would be 224x flatter: 8e-5


def test_smooth_grad_noise_is_relative_to_the_images_range(linear):
    net, params, x, _ = linear
    # A linear model's gradient ignores the noise, so compare the noise itself through a quadratic probe.
    key = jax.random.key(0)
    half = explain.smooth_grad(net, params, x * 0.5, 0, key=key, num_samples=4)
    full = explain.smooth_grad(net, params, x, 0, key=key, num_samples=4)
    np.testing.assert_allclose(half, full, rtol=1e-5)  # constant gradient: any noise gives the kernel
    from jaxfool.explain import gradients
    eps_scale = lambda v: float(np.asarray(v).max() - np.asarray(v).min())
    assert eps_scale(x * 0.5) == pytest.approx(0.5 * eps_scale(x))
    assert "image's range" in gradients.smooth_grad.__doc__
