"""Saliency, SmoothGrad, integrated gradients and the channel reduction to heatmaps."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from explain_twins import assert_close, linear_model, nchw, tiny_setup, torch_tiny_cnn

from jaxfool import explain
from jaxfool.models import forward

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


@pytest.fixture(scope="module")
def tiny():
    return tiny_setup(seed=5)


def test_saliency_equals_captum(tiny):
    captum = pytest.importorskip("captum.attr")
    net, params, x = tiny
    sal = captum.Saliency(torch_tiny_cnn(params))
    for label in (1, 4):
        for absolute in (True, False):
            ref = sal.attribute(nchw(x), target=label, abs=absolute).numpy()[0].transpose(1, 2, 0)
            assert_close(explain.saliency(net, params, x, label, absolute=absolute), ref)


def test_saliency_of_a_linear_model_is_its_weights():
    v = np.arange(-4, 4, dtype=np.float32)
    net, params = linear_model((2, 2, 2), np.stack([v, 2 * v], axis=1))
    x = np.full((2, 2, 2), 0.5, np.float32)
    np.testing.assert_array_equal(explain.saliency(net, params, x, 1, absolute=False), 2 * v.reshape(2, 2, 2))


def test_integrated_gradients_equal_captum(tiny):
    captum = pytest.importorskip("captum.attr")
    net, params, x = tiny
    ig = captum.IntegratedGradients(torch_tiny_cnn(params))
    ref = ig.attribute(nchw(x), target=2, baselines=0.2, n_steps=16, method="riemann_middle")
    assert_close(explain.integrated_gradients(net, params, x, 2, baseline=0.2, steps=16, batch_size=5),
                 ref.numpy()[0].transpose(1, 2, 0))


def test_integrated_gradients_are_complete(tiny):
    """Attributions sum to score(x) - score(baseline) as the path integral converges."""
    net, params, x = tiny
    baseline = np.full(x.shape, 0.5, np.float32)
    attr = explain.integrated_gradients(net, params, x, 0, baseline=baseline, steps=256)
    logits = forward(net, params, np.stack([x, baseline]))[0]
    gap = float(logits[0, 0] - logits[1, 0])
    assert abs(float(attr.sum()) - gap) <= 0.01 * max(1.0, abs(gap)), (float(attr.sum()), gap)


def test_smooth_grad(tiny):
    net, params, x = tiny
    key = jax.random.key(0)
    # Without noise every copy is x itself.
    np.testing.assert_allclose(explain.smooth_grad(net, params, x, 3, key=key, noise=0.0, num_samples=4),
                               explain.saliency(net, params, x, 3, absolute=False), rtol=1e-5, atol=1e-6)
    full = explain.smooth_grad(net, params, x, 3, key=key, num_samples=4)
    other = explain.smooth_grad(net, params, x, 3, key=jax.random.key(1), num_samples=4)
    assert np.abs(np.asarray(other) - np.asarray(full)).max() > 1e-4  # the key matters
    # Chunks of 3 copies (uneven) give the same mean; squares average to at least the squared mean.
    assert_close(explain.smooth_grad(net, params, x, 3, key=key, num_samples=4, batch_size=3), full)
    squared = explain.smooth_grad(net, params, x, 3, key=key, num_samples=4, squared=True)
    assert (np.asarray(squared) >= np.asarray(full) ** 2 - 1e-6).all()
    with pytest.raises(TypeError):
        explain.smooth_grad(net, params, x, 3, key)  # the key is keyword-only


def test_to_heatmap_by_hand():
    attr = np.array([[[1.0, -3.0, 2.0]], [[-1.0, 0.5, 0.0]]])  # [2, 1, 3]
    np.testing.assert_array_equal(explain.to_heatmap(attr), [[3.0], [1.0]])
    np.testing.assert_array_equal(explain.to_heatmap(attr, "abs_sum"), [[6.0], [1.5]])
    np.testing.assert_array_equal(explain.to_heatmap(attr, "sum"), [[0.0], [-0.5]])
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        explain.to_heatmap(attr, "max")


def test_bad_gradient_inputs(tiny):
    net, params, x = tiny
    with pytest.raises(ValueError, match="baseline has shape"):
        explain.integrated_gradients(net, params, x, 0, baseline=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="steps >= 1"):
        explain.integrated_gradients(net, params, x, 0, steps=0)
    with pytest.raises(ValueError, match="class index 5 out of range"):
        explain.saliency(net, params, x, 5)
    with pytest.raises(ValueError, match="NaN"):
        explain.smooth_grad(net, params, x * np.nan, 0, key=jax.random.key(0))
