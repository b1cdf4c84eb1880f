"""The MNIST experiments end to end on tiny configs: run folders, pictures, metrics, model reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from configs.backwork_mnist import get_config as backwork_config
from configs.backwork_mnist_retrain import get_config as retrain_config
from configs.train_mnist import get_config as train_config
from experiments import backwork_mnist, train_mnist


def tiny(config, workdir):
    config.workdir = str(workdir)
    config.data.source = "embedded"
    config.data.max_train = 500
    config.data.max_test = 200
    config.train.epochs = 1
    config.train.batch_size = 50
    return config


@pytest.mark.slow
def test_train_then_backwork_reuses_the_checkpoint(tmp_path):
    trained = train_mnist.run(tiny(train_config(), tmp_path))
    assert (tmp_path / "train_mnist").is_dir()
    assert json.loads((tmp_path / "train_mnist" / trained["run_dir"].split("/")[-1] / "metrics.json").read_text())[
        "trained_now"]
    assert trained["test_accuracy"] > 0.2  # better than chance after one short epoch

    config = tiny(backwork_config(), tmp_path)
    config.backwork.labels = (0, 1)
    config.backwork.images_per_label = 2
    config.backwork.max_steps = 2
    config.backwork.refs_per_label = 10
    config.nn_layers_max_train = 300
    metrics = backwork_mnist.run(config)
    assert metrics["model_trained_now"] is False  # reused train_mnist's checkpoint

    run_dir = tmp_path / "backwork_mnist" / metrics["run_dir"].split("/")[-1]
    for name in ("grid.png", "worst_train.png", "metrics.json", "config.json"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert len(saved["confidences"]) == 4 and saved["labels"] == [0, 0, 1, 1]
    assert len(saved["reinitialised"]) == 4 and len(saved["steps"]) == 2
    assert saved["n_at_least_cap"] == sum(c >= 0.999 for c in saved["confidences"])
    assert saved["median_confidence"] == pytest.approx(float(np.median(saved["confidences"])))
    assert saved["steps"] == [2, 2]  # two checks of one update each: nothing reaches 0.999 that fast
    layers = saved["nearest_neighbour"]["layers"]
    assert set(layers) == {"inputs", "conv0", "conv1", "fc"}
    assert len(layers["inputs"][0]["generated_nn"]) == 2 and layers["inputs"][0]["train_nn_median"] > 0
    assert saved["test_accuracy"] == pytest.approx(trained["test_accuracy"])

    # Same config and seed, same result; a second run never overwrites the first.
    again = backwork_mnist.run(config)
    assert again["run_dir"] != metrics["run_dir"]
    assert again["confidences"] == metrics["confidences"]


@pytest.mark.slow
def test_retraining_reports_before_and_after(tmp_path):
    config = tiny(retrain_config(), tmp_path)
    config.backwork.labels = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    config.backwork.images_per_label = 2
    config.backwork.max_steps = 1
    config.backwork.refs_per_label = 5
    config.retrain.rounds = 1
    config.retrain.repeat = 2
    config.retrain.mode = "extra_class"
    config.nn_layers_max_train = 100
    metrics = backwork_mnist.run(config)
    retrain = metrics["retrain"]
    assert retrain["mode"] == "extra_class" and retrain["added_images"] == 40
    assert retrain["test_accuracy_after"] > 0.2  # still better than chance with 40 extra-class images added
    assert len(retrain["fresh_backwork"]["confidences"]) == 20
    assert retrain["old_generated_fooling_class_prob"] is not None
    run_dir = tmp_path / "backwork_mnist" / metrics["run_dir"].split("/")[-1]
    assert (run_dir / "grid_retrained.png").is_file() and (run_dir / "retrained_checkpoint" / "meta.json").is_file()
