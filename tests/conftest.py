"""Shared fixtures: the embedded MNIST data and one small trained MNIST CNN for the whole session."""

from __future__ import annotations

import os

# Several tests compare a sharded run on 4 virtual CPU devices with a single-device run; the flag must be set
# before JAX initialises its backend.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

# Many tests compile the same XLA programs: each experiment test trains the same tiny CNN, the resume and
# experiment-log tests start fresh Python processes that compile the same training step, library calls build a
# new jax.jit per call. JAX's persistent compilation cache in a folder that lives for this session only (removed
# at its end; the experiments' subprocesses inherit it through the environment) compiles each one once. Hits
# and misses run the same executable, so no result changes. A cache folder the caller chose is kept as given.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _xla_cache = tempfile.mkdtemp(prefix="jaxfool-tests-xla-cache-")
    atexit.register(shutil.rmtree, _xla_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # default 1 s: most are shorter

import jax
import numpy as np
import pytest
import pathlib

from jaxfool.data import DataConfig, load_mnist
from jaxfool.models import mnist_cnn
from jaxfool.train import TrainConfig, one_hot, train

# Tests compare float32 results at tolerances of 1e-5 and below; GPUs' default TF32 matmuls and convolutions
# (about 1e-4 relative) would exceed them. No effect on CPU.
jax.config.update("jax_default_matmul_precision", "highest")


# The four official MNIST files (gzipped), shipped beside the project for tests and CI; a fresh clone has no such
# folder and the tests that need them skip. JAXFOOL_SHARED_MNIST points elsewhere (e.g. from a git worktree).
SHARED_MNIST = pathlib.Path(
    os.environ.get("JAXFOOL_SHARED_MNIST", pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist")
)
needs_shared_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"the official MNIST files are not at {SHARED_MNIST} (a fresh clone has no ../shared/data/mnist)",
)


@pytest.fixture(scope="session")
def mnist():
    """The embedded 4k/1k MNIST split (offline, deterministic)."""
    return load_mnist(DataConfig(source="embedded"))


@pytest.fixture(scope="session")
def trained_mnist(mnist, tmp_path_factory):
    """``(net, params)``: the backwork CNN trained 3 epochs on the embedded data (~96% test accuracy).

    Trained once per test run: under pytest-xdist the first worker to need it trains it and saves the parameters
    (flax msgpack, no pickle) in the run's shared temporary folder, the others read them under a file lock.
    Training is deterministic on one machine, so every worker holds the same parameters it would have trained.
    """
    import fcntl

    from flax import serialization

    net = mnist_cnn()
    fit = lambda: train(net, mnist.train_images, one_hot(mnist.train_labels, 10), TrainConfig(epochs=3, seed=0))[0]
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return net, fit()
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this run
    saved = shared / "trained_mnist.msgpack"
    with open(shared / "trained_mnist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.is_file():
            tmp = saved.with_suffix(".tmp")
            tmp.write_bytes(serialization.to_bytes(fit()))
            tmp.rename(saved)
        params = serialization.from_bytes(net.init(key=jax.random.key(0)), saved.read_bytes())
    return net, jax.tree.map(jax.numpy.asarray, params)


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """Tests that run an experiment's ``cli.main`` configure the root logger onto pytest's captured stream of that
    test; restoring the handlers afterwards keeps later tests from logging to a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
