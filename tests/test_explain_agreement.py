"""Agreement metrics between heatmaps and masks, human-mask PNGs, and the ink-overlap measurement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxfool import explain


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (6, 7)).astype(np.float32)  # many ties
    b = a + rng.normal(0, 2, a.shape).astype(np.float32)
    np.testing.assert_allclose(explain.spearman(a, b), stats.spearmanr(a.ravel(), b.ravel()).statistic, rtol=1e-5)


def test_spearman_is_rank_based():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(explain.spearman(a, np.exp(a)), 1.0, rtol=1e-6)  # any increasing map
    np.testing.assert_allclose(explain.spearman(a, -a**3), -1.0, rtol=1e-6)
    assert np.isnan(explain.spearman(a, np.zeros_like(a)))  # a constant map has no order


def test_top_k_region_and_iou_by_hand():
    h = np.array([[9, 1, 8], [2, 7, 3], [6, 4, 5]], np.float32)
    np.testing.assert_array_equal(explain.top_k_region(h, 3 / 9), [[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert explain.top_k_region(h, 0.5).sum() == 4  # round(4.5) = 4 pixels (banker's rounding)
    g = np.array([[9, 8, 1], [2, 3, 4], [5, 6, 7]], np.float32)  # top 3: (0,0), (0,1), (2,2)
    np.testing.assert_allclose(explain.top_k_iou(h, g, fraction=3 / 9), 1 / 5)  # 1 shared of 5
    np.testing.assert_allclose(explain.iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)), 0.0)
    mask = np.zeros((3, 3), bool)
    mask[0] = True
    np.testing.assert_allclose(explain.mask_iou(h, mask, fraction=3 / 9), 2 / 4)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        explain.top_k_region(h, 0.0)


def test_pointing_game_by_hand():
    h = np.zeros((10, 10), np.float32)
    h[2, 3] = 1.0
    mask = np.zeros((10, 10), bool)
    mask[2, 6:] = True  # nearest marked pixel is 3 columns away
    assert not explain.pointing_game(h, mask)
    assert not explain.pointing_game(h, mask, tolerance=2.9)
    assert explain.pointing_game(h, mask, tolerance=3.0)
    mask[2, 3] = True
    assert explain.pointing_game(h, mask)


def test_centroid_shift_and_agreement_by_hand():
    a = np.zeros((8, 8), np.float32)
    b = np.zeros((8, 8), np.float32)
    a[1, 1], b[4, 5] = 1.0, 2.0
    np.testing.assert_allclose(explain.centroid_shift(a, b), 5.0)  # (3, 4) apart
    same = explain.compare_heatmaps(a + 0.1 * np.arange(64).reshape(8, 8), a + 0.1 * np.arange(64).reshape(8, 8))
    np.testing.assert_allclose([same.spearman, same.top_k_iou, same.centroid_shift], [1.0, 1.0, 0.0], atol=1e-6)
    assert bool(same.pointing)
    # The metrics are jittable and vmappable: attention shift for a batch of clean/adversarial pairs.
    batch = jax.jit(jax.vmap(explain.compare_heatmaps))(jnp.stack([a, a]), jnp.stack([a, b]))
    np.testing.assert_allclose(batch.centroid_shift, [0.0, 5.0], atol=1e-6)


def test_agreement_needs_maps_of_one_shape():
    with pytest.raises(ValueError, match=r"got \(4, 4\) and \(8, 8\); resize one with jax.image.resize first"):
        explain.compare_heatmaps(np.zeros((4, 4)), np.zeros((8, 8)))


def test_load_mask_from_png(tmp_path):
    gray = np.zeros((20, 30), np.uint8)
    gray[5:10, 0:15] = 255
    Image.fromarray(gray).save(tmp_path / "gray.png")
    mask = explain.load_mask(tmp_path / "gray.png")
    np.testing.assert_array_equal(mask, gray > 0)
    # Resized (nearest) to a heatmap's size: rows 5..9 of 20 -> 2..4 of 10 (half-pixel centres).
    small = explain.load_mask(tmp_path / "gray.png", (10, 15))
    assert small.shape == (10, 15) and small[3, :7].all() and not small[6:].any() and not small[:, 8:].any()
    # A drawing on a transparent layer: the opaque strokes are the mask, whatever their colour.
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 40
    rgba[12:, 20:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "strokes.png")
    np.testing.assert_array_equal(explain.load_mask(tmp_path / "strokes.png"), rgba[..., 3] > 0)
    with pytest.raises(ValueError, match="does not exist"):
        explain.load_mask(tmp_path / "missing.png")


def test_ink_mask_by_hand():
    img = np.array([[0.0, 0.6], [0.4, 1.0]], np.float32)[..., None]
    np.testing.assert_array_equal(explain.ink_mask(img), [[False, True], [False, True]])
    np.testing.assert_array_equal(explain.ink_mask(img * 255, (0, 255), threshold=0.3), [[False, True], [True, True]])


def test_occlusion_finds_the_ink_better_than_chance(trained_mnist, mnist):
    net, params = trained_mnist
    images = mnist.test_images[[int(np.flatnonzero(mnist.test_labels == c)[0]) for c in range(10)]]
    out = explain.ink_overlap(net, params, images, key=jax.random.key(0),
                              occlusion_config=explain.OcclusionConfig(window=4, stride=2))
    assert out.occlusion.shape == out.grad_cam.shape == out.random.shape == (10,)
    summary = out.summary()
    assert summary["occlusion_iou"] > 2 * summary["random_iou"], summary
