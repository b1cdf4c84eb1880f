"""Bad inputs from issue 16's classes: attack inputs, data subsets, masks, output names, summary counts."""

from __future__ import annotations

import logging
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import backwork_mnist
from jaxfool import attacks, backwork, images
from jaxfool.data import DataConfig, load_mnist
from jaxfool.data import stratified_indices
from jaxfool.models import mnist_cnn, vgg16


@pytest.fixture(scope="module")
def model():
    net = mnist_cnn()
    # Zero weights of the right shapes: the checks run before anything is compiled, so no init is needed.
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(lambda: net.init(key=jax.random.key(0))))
    return attacks.network_model(net, params)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        # listed in issue 16
        (np.zeros((2, 28, 28, 1), np.int32), r"dtype int32, expected float pixels \[batch, 28, 28, 1\]; convert"),
        (np.zeros((0, 28, 28, 1), np.float32), r"empty batch of shape \(0, 28, 28, 1\); pass at least one example"),
        (np.zeros((2, 32, 32, 1), np.float32), r"shape \(2, 32, 32, 1\), expected \[batch, 28, 28, 1\]"),
        # ours
        (np.zeros((2, 28, 28, 3), np.float32), r"shape \(2, 28, 28, 3\), expected \[batch, 28, 28, 1\]"),
        (np.zeros((28, 28, 1), np.float32), r"expected \[batch, 28, 28, 1\]; add a batch axis with x\[None\]"),
        (np.full((1, 28, 28, 1), 255.0, np.float32), r"pixels in \[255, 255\], outside the model's bounds \[0, 1\]"),
        (np.zeros((2, 28, 28, 1), np.uint8), r"dtype uint8, expected float pixels"),
    ],
)
def test_attack_inputs_are_one_line_errors_naming_the_expected_shape(model, x, message):
    fgsm = attacks.get_attack("fgsm")
    labels = np.zeros(max(len(x), 1) if x.ndim == 4 else 28, np.int32)[: len(x)]
    with pytest.raises(ValueError, match=message) as info:
        attacks.perturb(fgsm, model, x, labels, fgsm.params(eps=0.1), key=jax.random.key(0), bounds=(0.0, 1.0))
    assert "\n" not in str(info.value)


def test_max_train_keeps_at_most_that_many_digits():
    data = load_mnist(DataConfig(source="embedded", max_train=5, max_test=13))
    assert len(data.train_images) == 5 and len(data.test_images) == 13
    assert sorted(data.train_labels.tolist()) == [0, 1, 2, 3, 4]  # one each of the first five classes
    labels = np.repeat(np.arange(10), 50)
    assert np.bincount(labels[stratified_indices(labels, 25)]).tolist() == [3] * 5 + [2] * 5
    assert len(stratified_indices(labels, 100)) == 100 and len(stratified_indices(labels, 0)) == 500


def _png(path: pathlib.Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> pathlib.Path:
    img = Image.new("L", size)
    img.paste(255, box)
    img.save(path)
    return path


def test_masks_of_another_size_are_resized_and_say_so(tmp_path, caplog):
    _png(tmp_path / "cat.png", (56, 56), (0, 0, 28, 56))  # left half marked, twice the image size
    _png(tmp_path / "dog.png", (28, 28), (0, 0, 28, 14))  # top half, the image size
    with caplog.at_level(logging.WARNING, logger="jaxfool.images"):
        masks = images.load_masks(tmp_path, ["cat", "dog", "bird"], (28, 28))
    assert set(masks) == {"cat", "dog"}  # bird has no mask
    assert masks["cat"].shape == (28, 28) and masks["cat"][:, :14].all() and not masks["cat"][:, 14:].any()
    assert masks["dog"][:14].all() and not masks["dog"][14:].any()
    resized = [r.getMessage() for r in caplog.records]
    assert len(resized) == 1 and "cat.png is 56x56 (height x width), resized to 28x28" in resized[0]


def test_a_mask_that_cannot_be_read_is_an_error_before_anything_runs(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"mask .*cat.png cannot be read \(UnidentifiedImageError\)"):
        images.load_masks(tmp_path, ["cat"], (28, 28))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        images.load_masks(tmp_path / "nope", ["cat"], (28, 28))


def test_same_stem_images_get_their_own_output_names():
    p = pathlib.Path
    assert images.unique_names([p("f/cat.png"), p("f/cat.jpg"), p("f/dog.png")]) == ("cat_png", "cat_jpg", "dog")
    assert images.unique_names([p("a/cat.png"), p("b/cat.png")]) == ("cat_png", "cat_png-1")
    assert images.unique_names([]) == ()


def test_fool_vgg16_writes_one_overlay_per_image_even_with_the_same_stem(tmp_path, monkeypatch):
    from configs.fool_vgg16 import get_config
    from experiments import fool_vgg16

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("cat.png", "cat.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(folder / name)
    config = get_config()
    config.workdir, config.image_dir, config.weights, config.top = str(tmp_path / "w"), str(folder), "random", 1
    # The network, its predictions and maps are stand-ins: only the file naming is under test here.
    monkeypatch.setattr(fool_vgg16, "load_vgg16", lambda weights, key: (vgg16(), None))
    monkeypatch.setattr(fool_vgg16, "cams", lambda net, params, x, label, layers: {k: np.zeros((2, 2)) for k in layers})
    monkeypatch.setattr(fool_vgg16, "predict_proba", lambda net, params, x, batch_size: np.full((len(x), 1000), 1e-3))
    metrics = fool_vgg16.run(config)
    written = sorted(p.name for p in pathlib.Path(metrics["run_dir"]).glob("gradcam_*.png"))
    assert written == ["gradcam_cat_jpg.png", "gradcam_cat_png.png"]


def test_the_summary_counts_at_the_configured_prob_cap_min():
    probs = np.array([[[0.6, 0.9995, 0.99999]]])  # [settings, labels, batch]
    result = backwork.BackworkResult(images=np.zeros((1, 1, 3, 2, 2, 1)), probs=probs, reinitialised=np.zeros((1, 1, 3)),
                                     steps=np.zeros((1, 1)), settings=({},), labels=(0,))
    assert result.summary(0, 0.999)["n_at_least_cap"] == 2
    assert result.summary(0, 0.5)["n_at_least_cap"] == 3
    assert result.summary(0, 0.99999)["n_at_least_cap"] == 1
