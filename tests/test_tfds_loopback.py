"""TFDS's real MNIST preparation and loading through jaxfool, with the official files served from 127.0.0.1.

Needs the ``jaxfool[tfds]`` extra (TensorFlow) and ``../shared/data/mnist``; skipped with a reason otherwise.
TFDS downloads from the builder's ``URL``; the test points it at a loopback HTTP server over the shared files,
so TFDS downloads, extracts, writes its records and reads them back exactly as it would from the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import threading

import numpy as np
import pytest

from jaxfool.data import DataConfig, load_mnist, mnist_files
from tests.conftest import SHARED_MNIST, needs_shared_mnist

pytestmark = [
    needs_shared_mnist,
    pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                       reason="TensorFlow is not installed (pip install -e '.[tfds]' runs this test)"),
    pytest.mark.slow,
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, *args) -> None:  # keep the test's output clean
        pass

    def do_GET(self) -> None:
        _QuietHandler.requested.append(self.path)
        super().do_GET()


@pytest.fixture
def loopback_mnist_url(monkeypatch):
    """TFDS's MNIST builder pointed at an HTTP server on 127.0.0.1 serving the official files."""
    import tensorflow_datasets as tfds

    handler = functools.partial(_QuietHandler, directory=str(SHARED_MNIST))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setattr(tfds.builder_cls("mnist"), "URL", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    _QuietHandler.requested.clear()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def _digests(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Order-free fingerprint of a split: one hash per (image, label), sorted (TFDS shuffles at preparation)."""
    pixels = np.rint(np.asarray(images).reshape(len(images), -1) * 255).astype(np.uint8)
    return sorted(hashlib.md5(p.tobytes() + bytes([int(y)])).hexdigest() for p, y in zip(pixels, labels, strict=True))


def test_tfds_prepares_and_loads_full_mnist_from_loopback(loopback_mnist_url, tmp_path):
    data = load_mnist(DataConfig(source="tfds", tfds_data_dir=str(tmp_path)))
    assert data.source == "tfds" and data.files == (str(tmp_path / "mnist"),)  # what the summary line names
    assert sorted(_QuietHandler.requested) == sorted(f"/{name}.gz" for name in mnist_files.OFFICIAL)
    assert data.train_images.shape == (60000, 28, 28, 1) and data.test_images.shape == (10000, 28, 28, 1)
    assert data.train_images.dtype == np.float32 and data.train_labels.dtype == np.int32
    official = mnist_files.load_files(SHARED_MNIST)
    # The same digits with the same labels as the official files, in TFDS's order.
    assert _digests(data.test_images, data.test_labels) == _digests(official.test_images / 255.0, official.test_labels)
    assert _digests(data.train_images, data.train_labels) == _digests(official.train_images / 255.0,
                                                                       official.train_labels)
    # Prepared once: a second load reads the records without downloading again.
    _QuietHandler.requested.clear()
    again = load_mnist(DataConfig(source="tfds", tfds_data_dir=str(tmp_path), max_train=100, max_test=100))
    assert _QuietHandler.requested == [] and len(again.train_labels) == 100
