"""JET overlays, panels and layer GIFs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxfool.explain import render


def test_jet_ends_and_normalization():
    h = np.array([[0.0, 5.0], [10.0, 10.0]])
    rgb = render.jet(h)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 128])  # JET starts dark blue ...
    np.testing.assert_array_equal(rgb[1, 0], [128, 0, 0])  # ... and ends dark red
    np.testing.assert_array_equal(render.normalize(np.full((3, 3), 7.0)), 0)  # a constant map is all "low"


def test_overlay_blends_jet_over_grayscale():
    img = np.zeros((4, 4, 3), np.float32)
    img[..., 0] = 1.0  # pure red: luminance 0.299
    heat = np.zeros((2, 2))
    heat[0, 0] = 1.0
    np.testing.assert_array_equal(render.overlay(img, heat, alpha=0.0), np.full((4, 4, 3), round(0.299 * 255)))
    full = render.overlay(img, heat, alpha=1.0)
    np.testing.assert_array_equal(full[3, 3], [0, 0, 128])  # far from the hot corner
    big = render.overlay(img * 255, heat, bounds=(0, 255), scale=3)
    assert big.shape == (12, 12, 3) and big.dtype == np.uint8
    np.testing.assert_array_equal(big[::3, ::3], render.overlay(img, heat))


def test_panels_and_gif(tmp_path):
    img = np.random.default_rng(0).uniform(size=(8, 8, 1)).astype(np.float32)
    maps = {"conv0": np.eye(8), "conv1": np.ones((2, 2)), "conv2": np.arange(16.0).reshape(4, 4)}
    path = render.save_panels([("image", render.to_rgb(img)), ("heat", maps["conv0"]),
                               ("overlay", render.overlay(img, maps["conv2"]))], tmp_path / "p.png", title="t")
    with Image.open(path) as png:
        assert png.size[0] > png.size[1] > 0
    gif = render.save_layers_gif(img, maps, tmp_path / "layers.gif", scale=8)
    with Image.open(gif) as frames:
        assert frames.n_frames == 3 and frames.size == (64, 64)
    with pytest.raises(ValueError, match="at least one"):
        render.save_layers_gif(img, {}, tmp_path / "empty.gif")
