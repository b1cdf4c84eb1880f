"""Image folders: same pixels as Keras' load_img + img_to_array; unreadable files skipped and reported."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from vgg_helpers import import_keras

from jaxfool.images import load_image, load_image_folder


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(tmp_path / "a_rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (90, 120, 4), dtype=np.uint8), "RGBA").save(tmp_path / "b_rgba.PNG")
    Image.fromarray(rng.integers(0, 256, (224, 224), dtype=np.uint8), "L").save(tmp_path / "c_gray.png")
    Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).convert("P").save(tmp_path / "d_pal.gif")
    (tmp_path / "e_broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image, ignored")
    return tmp_path


def test_folder_matches_keras_load_img(folder, caplog):
    keras = import_keras()
    with caplog.at_level(logging.WARNING, logger="jaxfool.images"):
        images = load_image_folder(folder)
    names = [p.name for p in images.paths]
    assert names == ["a_rgb.jpg", "b_rgba.PNG", "c_gray.png", "d_pal.gif"]
    assert [p.name for p in images.skipped] == ["e_broken.jpg"]
    assert "e_broken.jpg" in caplog.text
    assert images.pixels.shape == (4, 224, 224, 3) and images.pixels.dtype == np.float32
    for path, got in zip(images.paths, images.pixels, strict=True):
        want = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224)))
        np.testing.assert_array_equal(got, want)


def test_single_image_and_sizes(folder):
    img = load_image(folder / "a_rgb.jpg", (32, 48))
    assert img.shape == (32, 48, 3) and img.min() >= 0 and img.max() <= 255
    assert load_image(folder / "a_rgb.jpg", None).shape == (300, 200, 3)
    with pytest.raises(ValueError, match="unknown interpolation"):
        load_image(folder / "a_rgb.jpg", interpolation="cubic")


def test_empty_and_missing_folders(tmp_path):
    images = load_image_folder(tmp_path)
    assert images.pixels.shape == (0, 224, 224, 3) and images.paths == () and images.skipped == ()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
