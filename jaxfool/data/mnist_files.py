"""The official MNIST files, read and verified without TensorFlow: the four IDX files or Keras' ``mnist.npz``.

The IDX files (``train-images-idx3-ubyte`` and the other three, optionally gzipped) are found in the layouts
people have on disk: a folder holding them (Yann LeCun's site), torchvision's ``MNIST/raw`` and TFDS's
``downloads`` folder (whose names carry a prefix and a suffix). Every file is checked before use: its header
magic and dimensions, its decompressed size, and the MD5 of its decompressed bytes against the official files'.
``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``) is read with ``allow_pickle=False`` and
checked the same way: its arrays, written back as IDX bytes, must have the official MD5s.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import zipfile
from typing import NamedTuple

import numpy as np

# name -> (magic, dimensions, MD5 of the decompressed file), the official files as published.
OFFICIAL = {
    "train-images-idx3-ubyte": (0x00000803, (60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (0x00000801, (60000,), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (0x00000803, (10000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (0x00000801, (10000,), "27ae3e4e09519cfbb04c329615203637"),
}
NPZ_KEYS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
            "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_MAX_GZ_BYTES = 64 << 20  # the largest official file is 47 MB decompressed; refuse anything far larger


class MnistFiles(NamedTuple):
    """The official MNIST arrays and the files they came from.

    Attributes:
        train_images: ``[60000, 28, 28]`` uint8.
        train_labels: ``[60000]`` uint8.
        test_images: ``[10000, 28, 28]`` uint8.
        test_labels: ``[10000]`` uint8.
        files: the paths read (four IDX files, or one ``mnist.npz``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    files: tuple[str, ...]


def idx_header(magic: int, shape: tuple[int, ...]) -> bytes:
    """The big-endian IDX header: the magic number, then each dimension as uint32."""
    return np.array([magic, *shape], ">u4").tobytes()


def _read_bytes(path: pathlib.Path, limit: int) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zipfile.BadZipFile) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} cannot be read ({type(e).__name__}: {e}); download it again") from None
    if len(data) > limit:
        raise ValueError(f"{path} is larger than the official file ({limit:,} bytes); it is not an MNIST file")
    return data


def read_idx(path: str | os.PathLike, name: str) -> np.ndarray:
    """Reads one official IDX file (gzipped or not) and checks it is exactly that file.

    Args:
        path: the file, ``.gz`` or raw.
        name: which official file it should be, a key of :data:`OFFICIAL` (e.g. ``"train-images-idx3-ubyte"``).

    Returns:
        ``[n, 28, 28]`` (images) or ``[n]`` (labels) uint8.

    Raises:
        ValueError: one line naming the file and what is wrong (magic, size, MD5), and what to do.
    """
    path = pathlib.Path(path)
    magic, shape, md5 = OFFICIAL[name]
    header = idx_header(magic, shape)
    size = len(header) + int(np.prod(shape))
    data = _read_bytes(path, min(size, _MAX_GZ_BYTES))
    if data[:4] != header[:4]:
        raise ValueError(f"{path}: IDX magic {data[:4].hex()} is not {header[:4].hex()} ({name}); "
                         "is it the right file?")
    if data[: len(header)] != header or len(data) != size:
        raise ValueError(f"{path}: {len(data):,} bytes with header {data[:len(header)].hex()}, expected "
                         f"{size:,} bytes with dimensions {shape} ({name}); the file is truncated or not MNIST")
    got = hashlib.md5(data).hexdigest()
    if got != md5:
        raise ValueError(f"{path}: MD5 of the decompressed bytes is {got}, the official {name} has {md5}; "
                         "download it again")
    return np.frombuffer(data, np.uint8, offset=len(header)).reshape(shape)


def _idx_candidates(folder: pathlib.Path, name: str) -> list[pathlib.Path]:
    """Files in ``folder`` that may be ``name``: exact (LeCun, torchvision) first, then TFDS's prefixed names."""
    exact = [folder / f"{name}{ext}" for ext in ("", ".gz")]
    found = [p for p in exact if p.is_file()]
    found += sorted(p for p in folder.glob(f"*{name}*") if p.is_file() and p not in found
                    and not p.name.endswith((".INFO", ".tmp", ".incomplete")))
    return found


def find_files(folder: str | os.PathLike) -> tuple[pathlib.Path, ...] | None:
    """The MNIST files in ``folder`` or its ``MNIST/raw`` / ``downloads`` subfolders, or ``None``.

    Returns the four IDX paths in :data:`OFFICIAL` order, or ``(mnist.npz,)``. Nothing is read here; see
    :func:`load_files` for the checks.
    """
    folder = pathlib.Path(folder).expanduser()
    for where in (folder, folder / "MNIST" / "raw", folder / "downloads"):
        if not where.is_dir():
            continue
        paths = [_idx_candidates(where, name) for name in OFFICIAL]
        if all(paths):
            return tuple(p[0] for p in paths)
        if (where / "mnist.npz").is_file():
            return (where / "mnist.npz",)
    return None


def usual_places(tfds_data_dir: str | None = None) -> list[pathlib.Path]:
    """Where MNIST files usually are on a user's machine, searched by ``data.source=auto``.

    TFDS's download folder, Keras' dataset cache, and torchvision's ``MNIST/raw`` under the ``data`` folder of
    the working directory or of the home directory (torchvision's tutorials use ``root="data"``).
    """
    tfds_dir = pathlib.Path(tfds_data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()
    keras_dir = pathlib.Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"
    return [tfds_dir / "downloads", keras_dir, pathlib.Path("data"), pathlib.Path("~/data").expanduser()]


def load_files(folder: str | os.PathLike) -> MnistFiles:
    """Reads and verifies the official MNIST files found in ``folder`` (see :func:`find_files`).

    Raises:
        ValueError: one line: no MNIST files there (and what is looked for), or which file fails which check.
    """
    paths = find_files(folder)
    if paths is None:
        raise ValueError(
            f"no MNIST files in {folder} (nor its MNIST/raw or downloads): put the four official files there "
            "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
            "t10k-labels-idx1-ubyte[.gz]) or Keras' mnist.npz"
        )
    if len(paths) == 1:
        return load_npz(paths[0])
    arrays = [read_idx(p, name) for p, name in zip(paths, OFFICIAL, strict=True)]
    return MnistFiles(*arrays, files=tuple(str(p) for p in paths))


def load_npz(path: str | os.PathLike) -> MnistFiles:
    """Reads Keras' ``mnist.npz`` (never unpickled) and checks its arrays are the official files' contents."""
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in NPZ_KEYS if k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} cannot be read as an npz file ({type(e).__name__}: {e}); download it again") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; Keras' mnist.npz has {', '.join(NPZ_KEYS)}")
    for key, name in NPZ_KEYS.items():
        magic, shape, md5 = OFFICIAL[name]
        a = arrays[key]
        if a.shape != shape or a.dtype != np.uint8:
            raise ValueError(f"{path}: {key} is {a.dtype}{list(a.shape)}, expected uint8{list(shape)}; not Keras' mnist.npz")
        got = hashlib.md5(idx_header(magic, shape) + a.tobytes()).hexdigest()
        if got != md5:
            raise ValueError(f"{path}: {key} differs from the official {name} (MD5 {got}, expected {md5}); "
                             "download it again")
    return MnistFiles(*(arrays[k] for k in NPZ_KEYS), files=(str(path),))
