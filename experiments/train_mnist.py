"""Train the MNIST CNN and save it: ``python -m experiments.train_mnist --config configs/train_mnist.py``.

Writes ``checkpoint/`` (orbax), ``loss.png``, ``metrics.json`` and ``config.json`` into
``<workdir>/train_mnist/<run>/``, and caches the checkpoint in ``<workdir>/models`` so that the backwork and
attack experiments with the same data and training config reuse it instead of training again.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import time
from typing import Any

from jaxfool import cli, plots, runs, zoo
from jaxfool.data import load_mnist
from jaxfool.models import mnist_cnn

log = logging.getLogger("train_mnist")


def run(config: Any) -> dict[str, Any]:
    """Trains (or restores the cached) CNN for ``config``; returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "train_mnist")
    data = load_mnist(config.data)
    net = mnist_cnn()
    params, info = zoo.load_or_train(net, data, config.train,
                                     cache_dir=pathlib.Path(config.workdir) / "models", progress=True)
    shutil.copytree(info["checkpoint"], run_dir / "checkpoint")
    plots.curves({"train loss": info["losses"]}, run_dir / "loss.png", xlabel="epoch", ylabel="cross-entropy",
                 title=f"{net.name} on {data.source}", logy=True)
    metrics = {
        "data_source": data.source,
        "data_files": list(data.files),
        "n_train": len(data.train_labels),
        "n_test": len(data.test_labels),
        "test_accuracy": info["test_accuracy"],
        "train_loss_per_epoch": info["losses"],
        "trained_now": info["trained_now"],
        "checkpoint": str(run_dir / "checkpoint"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("test accuracy %.4f; %.0f s; %s; run folder %s",
             metrics["test_accuracy"], metrics["seconds"], data.describe(), run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
