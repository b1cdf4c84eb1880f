"""The official MNIST files as a source: IDX and npz reading, the layouts found, verification, auto's search."""

from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np
import pytest

from jaxfool.data import DataConfig, load_mnist, mnist_files
from jaxfool.data import mnist as mnist_module
from jaxfool.data.mnist_files import OFFICIAL, idx_header
from tests.conftest import SHARED_MNIST, needs_shared_mnist

# Per-class counts of the official training and test sets.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def official():
    return mnist_files.load_files(SHARED_MNIST)


@pytest.fixture(scope="module")
def keras_npz(tmp_path_factory, official):
    """Keras' mnist.npz layout, written from the official arrays (uncompressed: quicker to write here)."""
    path = tmp_path_factory.mktemp("keras") / "mnist.npz"
    np.savez(path, **dict(zip(mnist_files.NPZ_KEYS, official[:4], strict=True)))
    return path


@needs_shared_mnist
def test_official_files_read_and_verified(official):
    assert official.train_images.shape == (60000, 28, 28) and official.train_images.dtype == np.uint8
    assert official.test_images.shape == (10000, 28, 28)
    assert np.bincount(official.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(official.test_labels).tolist() == TEST_COUNTS
    assert [p.split("/")[-1] for p in official.files] == [f"{n}.gz" for n in OFFICIAL]
    # The IDX payload is row-major 28x28: the first training digit is a 5 with ink in the middle rows only.
    assert official.train_labels[0] == 5 and official.train_images[0, :4].max() == 0
    assert official.train_images[0, 10:18].max() >= 250


@needs_shared_mnist
def test_source_files_through_load_mnist(caplog):
    with caplog.at_level(logging.INFO, logger="jaxfool.data.mnist"):
        data = load_mnist(DataConfig(source="files", dir=str(SHARED_MNIST), max_train=1000, max_test=200))
    assert data.source == "files" and len(data.files) == 4
    assert data.train_images.shape == (1000, 28, 28, 1) and data.train_images.dtype == np.float32
    assert 0.0 <= data.train_images.min() and data.train_images.max() == 1.0
    assert "MNIST files (" in caplog.text and "train-images-idx3-ubyte.gz" in caplog.text


@needs_shared_mnist
def test_torchvision_tfds_and_keras_layouts(tmp_path, official, keras_npz):
    # torchvision: <root>/MNIST/raw with the files decompressed
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in OFFICIAL:
        with gzip.open(SHARED_MNIST / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    tv = mnist_files.load_files(tmp_path / "tv")
    assert tv.files[0].endswith("MNIST/raw/train-images-idx3-ubyte")
    np.testing.assert_array_equal(tv.train_images, official.train_images)
    # TFDS: <data_dir>/downloads with prefixed, suffixed names
    dl = tmp_path / "tfds" / "downloads"
    dl.mkdir(parents=True)
    for name in OFFICIAL:
        (dl / f"cvdf-datasets_mnist_{name}Xq3a1.gz").symlink_to(SHARED_MNIST / f"{name}.gz")
        (dl / f"cvdf-datasets_mnist_{name}Xq3a1.gz.INFO").write_text("{}")
    tf = mnist_files.load_files(tmp_path / "tfds")
    np.testing.assert_array_equal(tf.test_labels, official.test_labels)
    # Keras: mnist.npz
    k = mnist_files.load_files(keras_npz.parent)
    assert k.files == (str(keras_npz),)
    np.testing.assert_array_equal(k.train_images, official.train_images)
    # ...and an npz whose digits were altered is refused
    arrays = dict(zip(mnist_files.NPZ_KEYS, official[:4], strict=True))
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 0, 0] = 1
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(ValueError, match="x_test differs from the official t10k-images-idx3-ubyte"):
        mnist_files.load_files(tmp_path)


def _write_gz(path, data: bytes):
    with gzip.open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (idx_header(0x00000803, (10000,)) + bytes(10000), r"magic 00000803 is not 00000801"),
        (idx_header(0x00000801, (10000,)) + bytes(9000), r"9,008 bytes .* expected 10,008 bytes"),
        (idx_header(0x00000801, (9999,)) + bytes(9999), r"truncated or not MNIST"),
        (idx_header(0x00000801, (10000,)) + bytes(10000), r"MD5 of the decompressed bytes is .* download it again"),
        (b"not gzip at all", r"cannot be read"),
    ],
)
def test_bad_idx_file_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    if content.startswith(b"not gzip"):
        path.write_bytes(content)
    else:
        _write_gz(path, content)
    with pytest.raises(ValueError, match=message) as e:
        mnist_files.read_idx(path, "t10k-labels-idx1-ubyte")
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_header(0x00000801, (10000,)) + bytes(20000))
    with pytest.raises(ValueError, match="larger than the official file"):
        mnist_files.read_idx(path, "t10k-labels-idx1-ubyte")


def test_pickled_npz_is_never_unpickled(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.array([object()], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros(1), y_test=np.zeros(1))
    with pytest.raises(ValueError, match="cannot be read as an npz file"):
        mnist_files.load_files(tmp_path)


def test_folder_without_files_and_bad_config_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no MNIST files in .*\(train-images-idx3-ubyte"):
        load_mnist(DataConfig(source="files", dir=str(tmp_path)))
    with pytest.raises(ValueError, match="data.source=files needs data.dir"):
        load_mnist(DataConfig(source="files"))
    with pytest.raises(ValueError, match="is not a folder"):
        load_mnist(DataConfig(source="files", dir=str(tmp_path / "nowhere")))
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"data.tfds_data_dir=.*a_file' is a file; give a folder"):
        load_mnist(DataConfig(source="tfds", tfds_data_dir=str(tmp_path / "a_file")))
    with pytest.raises(ValueError, match="data.tfds_data_dir is empty"):
        load_mnist(DataConfig(source="tfds", tfds_data_dir=" "))


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A user without MNIST anywhere: home, Keras and TFDS folders and the working directory all empty."""
    for var, sub in (("HOME", "home"), ("KERAS_HOME", "keras"), ("TFDS_DATA_DIR", "tfds")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.chdir(tmp_path)

    def no_tfds(data_dir=None):
        raise ModuleNotFoundError("No module named 'tensorflow'")

    monkeypatch.setattr(mnist_module, "load_tfds", no_tfds)
    return tmp_path


def test_auto_falls_back_with_what_to_install(empty_home, caplog):
    with caplog.at_level(logging.WARNING, logger="jaxfool.data.mnist"):
        data = load_mnist(DataConfig(source="auto", max_train=100, max_test=50))
    assert data.source.startswith("embedded")
    assert "pip install 'jaxfool[tfds]'" in data.note and "--config.data.source=files" in data.note
    assert data.note in caplog.text and data.note in data.describe()


def test_forced_tfds_without_tensorflow_is_one_line(empty_home):
    with pytest.raises(OSError, match=r"TFDS cannot prepare MNIST .*pip install 'jaxfool\[tfds\]'") as e:
        load_mnist(DataConfig(source="tfds"))
    assert "\n" not in str(e.value)


@needs_shared_mnist
def test_auto_finds_keras_npz_in_the_usual_place(empty_home, keras_npz):
    (empty_home / "keras" / "datasets").mkdir()
    (empty_home / "keras" / "datasets" / "mnist.npz").symlink_to(keras_npz)
    data = load_mnist(DataConfig(source="auto", max_train=100, max_test=50))
    assert data.source == "files" and data.files[0].endswith("keras/datasets/mnist.npz") and not data.note
