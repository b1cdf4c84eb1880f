"""Filter and class visualisation: the study's recipe numbers by hand, ascent properties on the trained CNN."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from jaxfool import visualize as V

MNIST_FILTERS = V.AscentConfig(steps=20, step_size=1 / 255, clip=True, bounds=(0.0, 1.0))
MNIST_CLASSES = V.AscentConfig(steps=30, step_size=0.05, clip=True, bounds=(0.0, 1.0))


def _study_deprocess(x):
    # The study's deprocess_image, verbatim in numpy.
    x = np.copy(x)
    x -= x.mean()
    x /= x.std() + 1e-5
    x *= 0.1
    x += 0.5
    x = np.clip(x, 0, 1)
    x *= 255
    return np.clip(x, 0, 255).astype("uint8")


def test_rms_normalize_by_hand():
    g = jnp.array([3.0, -4.0, 0.0, 0.0])
    rms = np.sqrt((9 + 16) / 4)  # 2.5
    np.testing.assert_allclose(V.rms_normalize(g), np.array([3, -4, 0, 0]) / (rms + 1e-5), rtol=1e-6)


def test_deprocess_by_hand_and_against_the_study():
    x = jnp.array([0.0, 1.0, 2.0, 3.0])
    # mean 1.5, std sqrt(1.25): (x - 1.5) / 1.1180440 * 0.1 + 0.5 -> [0.36584, 0.45528, 0.54472, 0.63416] * 255
    np.testing.assert_array_equal(V.deprocess_image(x), np.array([93, 116, 138, 161], np.uint8))
    y = np.random.default_rng(0).normal(128, 30, (16, 16, 3)).astype(np.float32)
    out = V.deprocess_image(jnp.asarray(y))
    assert out.dtype == jnp.uint8
    assert np.abs(out.astype(int) - _study_deprocess(y).astype(int)).max() <= 1  # float32 rounding at .0 edges
    np.testing.assert_allclose(V.normalize_image(jnp.asarray(y)), _study_deprocess(y) / 255.0, atol=1 / 255 + 1e-6)


def test_noise_image_distribution():
    x = np.asarray(V.noise_image((200, 200, 3), key=jax.random.key(0)))
    assert x.dtype == np.float32 and x.shape == (200, 200, 3)
    assert 118.0 <= x.min() and x.max() < 138.0  # (U[0,1) - 0.5) * 20 + 128
    assert abs(x.mean() - 128.0) < 0.05 and abs(x.std() - 20 / np.sqrt(12)) < 0.03
    m = np.asarray(V.noise_image((28, 28, 1), V.MNIST_NOISE, key=jax.random.key(1)))
    assert 0.5 - 10 / 255 <= m.min() and m.max() < 0.5 + 10 / 255


def test_crossing_steps_by_hand():
    values = jnp.array([0.1, 0.995, 0.9992, 0.9991, 0.99995])
    np.testing.assert_array_equal(V.crossing_steps(values), [1, 2, 4])
    np.testing.assert_array_equal(V.crossing_steps(values, (0.5, 0.99999)), [1, -1])


def test_gaussian_blur_matches_scipy():
    x = np.random.default_rng(0).random((12, 10, 2)).astype(np.float32)
    ours = V.gaussian_blur(jnp.asarray(x), 1.0)
    ref = scipy.ndimage.gaussian_filter(x, sigma=(1.0, 1.0, 0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_affine_jitter_and_total_variation():
    x = jnp.asarray(np.random.default_rng(0).random((9, 9, 3)).astype(np.float32))
    np.testing.assert_allclose(V.affine(x, 0.0, 1.0), x, atol=1e-5)
    # 90 degrees on a square image is an exact quarter turn (clockwise in array coordinates).
    np.testing.assert_allclose(V.affine(x, 90.0, 1.0), jnp.rot90(x, k=-1, axes=(0, 1)), atol=1e-5)
    j = V.jitter(x, 2, key=jax.random.key(0))
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
              if np.allclose(j, jnp.roll(x, (dy, dx), axis=(0, 1)))]
    assert len(shifts) == 1
    step = jnp.zeros((4, 4, 1)).at[:, 2:].set(1.0)  # one vertical edge of height 1: |dx| sums to 4 over 12
    np.testing.assert_allclose(V.total_variation(step), 4 / 12, rtol=1e-6)


def test_fourier_image_is_valid():
    shape = (16, 16, 3)
    spec = V.fourier_init(shape, key=jax.random.key(0))
    assert spec.shape == (3, 16, 9, 2)
    img = V.fourier_image(spec, shape, (0.0, 255.0))
    assert img.shape == shape and float(img.min()) > 0 and float(img.max()) < 255
    np.testing.assert_allclose(V.fourier_image(jnp.zeros_like(spec), shape, (0.0, 1.0)), 0.5)  # sigmoid(0)
    plain = V.fourier_image(spec, shape, (0.0, 1.0), decorrelate=False)
    assert not np.allclose(plain, V.fourier_image(spec, shape, (0.0, 1.0)))


def test_filters_increase_monotonically_on_trained_cnn(trained_mnist):
    net, params = trained_mnist
    for layer, width in (("conv0", 32), ("conv1", 64)):
        r = V.visualize_filters(net, params, layer, range(width), MNIST_FILTERS, V.MNIST_NOISE,
                                key=jax.random.key(0))
        v = np.asarray(r.values)
        assert v.shape == (width, 21) and r.image.shape == (width, 28, 28, 1)
        assert (np.diff(v, axis=1) >= 0).all(), layer
        # A filter silent on the whole start image has zero gradient: the recipe cannot move it (it stays 0).
        active = v[:, 0] > 0
        assert (np.diff(v[active], axis=1) > 0).all(), layer
        assert (v[~active] == 0).all()
        assert active.sum() >= width // 2, layer


def test_layer_batch_equals_one_by_one(trained_mnist):
    net, params = trained_mnist
    idx = list(range(0, 32, 4))
    starts = jax.vmap(lambda k: V.noise_image((28, 28, 1), V.MNIST_NOISE, key=k))(jax.random.split(jax.random.key(3), 8))
    batch = V.visualize_filters(net, params, "conv0", idx, MNIST_FILTERS, key=jax.random.key(0), starts=starts)
    for n, i in enumerate(idx):
        one = V.visualize_filters(net, params, "conv0", [i], MNIST_FILTERS, key=jax.random.key(0), starts=starts[n : n + 1])
        np.testing.assert_allclose(one.image[0], batch.image[n], atol=1e-5)
        np.testing.assert_allclose(one.values[0], batch.values[n], rtol=1e-5, atol=1e-6)


def test_rolled_loop_equals_unrolled(trained_mnist):
    net, params = trained_mnist
    ascent = V.AscentConfig(steps=6, step_size=0.05, clip=True, bounds=(0.0, 1.0))
    a = V.maximize_classes(net, params, [0, 5], ascent, V.MNIST_NOISE, key=jax.random.key(4))
    b = V.maximize_classes(net, params, [0, 5], dataclasses.replace(ascent, unroll=1), V.MNIST_NOISE,
                           key=jax.random.key(4))
    np.testing.assert_allclose(a.image, b.image, atol=1e-5)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)


def test_class_maximisation_reaches_high_probability(trained_mnist):
    net, params = trained_mnist
    r = V.maximize_classes(net, params, range(10), MNIST_CLASSES, V.MNIST_NOISE, key=jax.random.key(1))
    p = np.asarray(r.values)
    assert (p[:, 0] < 0.99).any() and (p[:, -1] >= 0.9999).all()
    assert float(r.image.min()) >= 0.0 and float(r.image.max()) <= 1.0
    cross = np.asarray(jax.vmap(V.crossing_steps)(r.values))
    assert (cross >= 0).all() and (np.diff(cross, axis=1) >= 0).all()


@pytest.mark.parametrize("ascent", [
    V.AscentConfig(steps=5, step_size=0.1, clip=True, bounds=(0.0, 1.0), jitter=2, scale=0.1, rotate=10.0),
    V.AscentConfig(steps=8, step_size=0.05, clip=True, bounds=(0.0, 1.0), tv_weight=0.5, decay=0.01, decay_centre=0.5,
             blur_every=4, blur_sigma=0.5),
    V.AscentConfig(steps=12, step_size=0.4, bounds=(0.0, 1.0), fourier=True),
], ids=["transforms", "tv_decay_blur", "fourier"])
def test_regularised_ascents_raise_the_class(trained_mnist, ascent):
    net, params = trained_mnist
    r = V.maximize_classes(net, params, [3, 7], ascent, V.MNIST_NOISE, key=jax.random.key(2))
    v = np.asarray(r.values)
    assert r.image.shape == (2, 28, 28, 1) and np.isfinite(v).all()
    assert (v[:, -1] > v[:, 0]).all() and (v[:, -1] > 0.5).all()
    assert float(r.image.min()) >= 0.0 and float(r.image.max()) <= 1.0


def test_bad_inputs_give_one_line_errors(trained_mnist):
    net, params = trained_mnist
    key = jax.random.key(0)
    cases = [
        (lambda: V.visualize_filters(net, params, "conv9", [0], key=key), "unknown layer 'conv9'"),
        (lambda: V.visualize_filters(net, params, "conv0", [32], key=key), "filter index 32 out of range"),
        (lambda: V.maximize_classes(net, params, [10], key=key), "class index 10 out of range"),
        (lambda: V.maximize_classes(net, params, [1, 2], key=key, starts=jnp.zeros((1, 28, 28, 1))), "starting"),
        (lambda: V.AscentConfig(normalize="l3"), "unknown normalize"),
        (lambda: V.AscentConfig(unroll=True), "must be an int"),
        (lambda: V.AscentConfig(fourier=True, clip=True), "fourier"),
        (lambda: V.AscentConfig(decay=1.0), "must be in [0, 1)"),
        (lambda: V.maximize_classes(net, params, [1], key=key, score="proba"), "unknown class score 'proba'"),
    ]
    for fn, text in cases:
        with pytest.raises(ValueError, match=None) as err:
            fn()
        assert text in str(err.value) and "\n" not in str(err.value)


def test_settings_reach_jit_as_static_plus_traced(trained_mnist, monkeypatch):
    """The step size is traced: a second call with another step size traces nothing new; a sweep over
    ``AscentParams`` through ``jax.vmap`` equals the separate runs."""
    net, params = trained_mnist
    traces = []
    real_forward = V.forward
    monkeypatch.setattr(V, "forward", lambda *a, **k: (traces.append(1), real_forward(*a, **k))[1])
    cfg = V.AscentConfig(steps=3, step_size=0.05, clip=True, bounds=(0.0, 1.0), decay=0.02, decay_centre=0.5)
    a = V.maximize_classes(net, params, [2, 8], cfg, V.MNIST_NOISE, key=jax.random.key(5))
    first = len(traces)
    assert first > 0
    b = V.maximize_classes(net, params, [2, 8], dataclasses.replace(cfg, step_size=0.1, decay=0.05), V.MNIST_NOISE,
                           key=jax.random.key(5))
    assert len(traces) == first  # same program, new hyperparameters
    assert not np.allclose(a.image, b.image)

    ascent, hyper = cfg.build()
    hash(ascent)
    x = V.noise_image((28, 28, 1), V.MNIST_NOISE, key=jax.random.key(6))
    one = lambda h: V.ascend(V.class_objective(net, params, 4), x, ascent, h, key=jax.random.key(7))
    stacked = V.AscentParams(*(jnp.stack([v, 2 * v]) for v in hyper))
    swept = jax.jit(jax.vmap(one))(stacked)
    np.testing.assert_allclose(swept.image[0], one(hyper).image, atol=1e-6)
    np.testing.assert_allclose(swept.image[1], one(V.AscentParams(*(2 * v for v in hyper))).image, atol=1e-6)


def test_random_ascent_is_a_function_of_its_key(trained_mnist):
    net, params = trained_mnist
    cfg = V.AscentConfig(steps=4, step_size=0.1, clip=True, bounds=(0.0, 1.0), jitter=2, scale=0.1, rotate=10.0)
    start = jnp.full((1, 28, 28, 1), 0.5)
    run = lambda k: V.maximize_classes(net, params, [6], cfg, key=k, starts=start).image
    np.testing.assert_array_equal(run(jax.random.key(1)), run(jax.random.key(1)))
    assert not np.allclose(run(jax.random.key(1)), run(jax.random.key(2)))


def test_push_to_target_by_its_own_curve(trained_mnist):
    net, params = trained_mnist
    x = jnp.full((28, 28, 1), 0.5)
    cfg = V.AscentConfig(steps=6, step_size=0.05, clip=True, bounds=(0.0, 1.0))
    report, shots, probs = V.push_to_target(net, params, x, 7, cfg, snapshots=4)
    # Stretches restarted from the last image equal one uninterrupted ascent.
    whole = V.maximize_classes(net, params, [7], cfg, key=jax.random.key(0), starts=x[None])
    np.testing.assert_allclose(report["curve"], np.asarray(whole.values[0]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(shots[-1], whole.image[0], atol=1e-6)
    assert shots.shape == (4, 28, 28, 1) and report["snapshot_steps"] == [0, 2, 4, 6]
    np.testing.assert_allclose(report["target_prob_at_snapshots"], [report["curve"][s] for s in (0, 2, 4, 6)],
                               rtol=1e-5)
    assert report["top1_after"] == {"class": int(probs[-1].argmax()), "name": str(int(probs[-1].argmax())),
                                    "probability": float(probs[-1].max())}
    with pytest.raises(ValueError, match="deterministic"):
        V.push_to_target(net, params, x, 7, dataclasses.replace(cfg, jitter=1), snapshots=3)


def test_filter_and_class_reports_by_hand():
    values = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [1.0, 2.0, 3.0]])
    r = V.filter_report(values)
    assert (r["filters"], r["non_decreasing"], r["strictly_increasing"], r["silent_at_start"],
            r["strictly_increasing_of_active"]) == (3, 3, 1, 1, 1)
    c = V.class_report(jnp.array([[0.5, 0.995, 0.99995], [0.1, 0.2, 0.3]]), (0.99, 0.9999))
    assert c["crossing_steps"] == [[1, 2], [-1, -1]] and c["min_final"] == pytest.approx(0.3)


def test_vgg_noise_is_the_blogs_noise_at_the_conv_stack_and_the_ascent_is_the_blogs():
    """The blog fed ``(U - 0.5) * 20 + 128`` straight into VGG16's conv stack and never clipped: with caffe
    preprocessing inside, the start is the raw image that preprocesses to that noise, and the ascent in raw
    pixels equals the blog's ascent on the bare network (preprocessing is a flip and a shift)."""
    from jaxfool.imagenet import preprocess_input
    from jaxfool.models import forward, vgg16

    raw_net, bare_net = vgg16(include_top=False, preprocess=True), vgg16(include_top=False, preprocess=False)
    shape, key = (32, 32, 3), jax.random.key(7)
    params = raw_net.init(key=jax.random.key(0), input_shape=shape)
    ascent = V.AscentConfig(steps=3, step_size=1.0)
    raw = V.starts_for(raw_net, 2, ascent, V.VGG_NOISE, key=key, image_shape=shape)
    bare = V.starts_for(bare_net, 2, ascent, V.VGG_NOISE, key=key, image_shape=shape)
    first = np.asarray(forward(raw_net, params, raw, layers=("block1_conv1",))[1]["block1_conv1"])
    np.testing.assert_allclose(
        first, forward(bare_net, params, bare, layers=("block1_conv1",))[1]["block1_conv1"], rtol=1e-4, atol=1e-3)
    seen = np.asarray(preprocess_input(raw))  # what the first conv layer receives
    np.testing.assert_allclose(seen, bare, atol=1e-4)
    for c in range(3):  # the blog's noise per channel: in [118, 138), mean 128
        assert 118.0 - 1e-4 <= seen[..., c].min() and seen[..., c].max() < 138.0 + 1e-4
        assert abs(seen[..., c].mean() - 128.0) < 0.6
    assert raw[..., 0].max() > 255.0  # red = 128 + 10 + 123.68 at most: outside [0, 255], so no clipping may act
    ours = V.visualize_filters(raw_net, params, "block1_conv2", [3, 5], ascent, key=key, image_shape=shape)
    blog = V.visualize_filters(bare_net, params, "block1_conv2", [3, 5], ascent, key=key, image_shape=shape)
    np.testing.assert_allclose(ours.values, blog.values, rtol=1e-4)
    np.testing.assert_allclose(preprocess_input(ours.image), blog.image, atol=1e-3)
    assert np.all(ours.values[:, -1] > ours.values[:, 0])  # the filters' mean activations rose
