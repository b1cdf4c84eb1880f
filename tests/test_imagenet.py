"""ImageNet pre/post-processing: the shipped class index and parity with Keras' imagenet_utils."""

from __future__ import annotations

import hashlib
import inspect
import re
from importlib import resources

import numpy as np
import pytest
from vgg_helpers import import_keras

from jaxfool import imagenet


@pytest.fixture(scope="module")
def keras_imagenet_utils():
    import_keras()
    from keras.src.applications import imagenet_utils

    return imagenet_utils


def test_class_index_is_keras_file(keras_imagenet_utils):
    data = resources.files("jaxfool").joinpath("data/imagenet_class_index.json").read_bytes()
    # The hash Keras itself checks when it downloads the file for decode_predictions.
    keras_hash = re.search(r'file_hash="([0-9a-f]{32})"', inspect.getsource(keras_imagenet_utils)).group(1)
    assert hashlib.md5(data).hexdigest() == keras_hash == imagenet.CLASS_INDEX_MD5


def test_class_index_content():
    index = imagenet.class_index()
    assert sorted(index) == list(range(1000))
    assert index[0] == ("n01440764", "tench")
    assert index[51] == ("n01704323", "triceratops")
    assert index[65] == ("n01751748", "sea_snake")
    assert len({wnid for wnid, _ in index.values()}) == 1000  # names repeat (crane, maillot), WordNet ids do not
    assert imagenet.class_names()[999] == "toilet_tissue"
    assert imagenet.class_id("triceratops") == 51 and imagenet.class_id("n01751748") == 65
    with pytest.raises(ValueError, match="unknown ImageNet class 'unicorn'"):
        imagenet.class_id("unicorn")


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_preprocess_input_matches_keras(keras_imagenet_utils, mode):
    x = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype(np.float32)
    want = keras_imagenet_utils.preprocess_input(x.copy(), data_format="channels_last", mode=mode)
    got = imagenet.preprocess_input(x, mode)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(imagenet.deprocess_input(got, mode), x, rtol=1e-5, atol=1e-4)
    single = imagenet.preprocess_input(x[0], mode)  # any leading shape
    np.testing.assert_allclose(single, want[0], rtol=1e-6, atol=1e-6)


def test_caffe_by_hand():
    got = np.asarray(imagenet.preprocess_input(np.array([[10.0, 20.0, 30.0]]))[0])
    np.testing.assert_allclose(got, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="channels last"):
        imagenet.preprocess_input(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="unknown preprocessing mode 'tf'"):
        imagenet.preprocess_input(np.zeros((8, 8, 3)), mode="tf")
    with pytest.raises(ValueError, match=r"expects \[batch, 1000\] scores, got shape \(1000,\)"):
        imagenet.decode_predictions(np.zeros(1000))


def test_decode_predictions_matches_keras(keras_imagenet_utils, monkeypatch):
    # Keras would download the class index; give it the same file so only the decoding is compared.
    monkeypatch.setattr(keras_imagenet_utils, "CLASS_INDEX", {str(k): list(v) for k, v in
                                                              imagenet.class_index().items()})
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)
    probs[2, [7, 8]] = probs[2].max() + 0.1  # a tie at the top
    for top in (1, 3, 5):
        want = keras_imagenet_utils.decode_predictions(probs, top=top)
        got = imagenet.decode_predictions(probs, top=top)
        assert got == [[tuple(r) for r in row] for row in want]
    best = imagenet.decode_predictions(probs, top=1)[0][0]
    assert best[1] == imagenet.class_names()[int(probs[0].argmax())] and best[2] == probs[0].max()
