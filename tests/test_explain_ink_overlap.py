"""The ink-overlap experiment runs end to end on a shrunk config."""

from __future__ import annotations

import json

import pytest


def test_balanced_indices_take_classes_in_turn():
    import numpy as np

    from experiments.ink_overlap import balanced_indices

    labels = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(balanced_indices(labels, 5), [0, 3, 5, 1, 4])


@pytest.mark.slow
def test_ink_overlap_experiment(tmp_path):
    from configs.ink_overlap import get_config
    from experiments.ink_overlap import run

    config = get_config()
    config.workdir, config.run_name = str(tmp_path), "t"
    config.data.source, config.data.max_train, config.data.max_test = "embedded", 200, 100
    config.train.epochs, config.num_images, config.occlusion.stride = 1, 12, 4
    metrics = run(config)
    assert set(metrics) >= {"baseline_0", "baseline_0.5", "ink_fraction", "test_accuracy"}
    black = metrics["baseline_0"]
    assert len(black["per_image"]["occlusion"]) == 12
    assert all(0 <= v <= 1 for v in black["per_image"]["occlusion"] + black["per_image"]["random"])
    folder = tmp_path / "ink_overlap" / "t"
    assert (folder / "examples.png").stat().st_size > 0
    assert json.loads((folder / "metrics.json").read_text())["num_images"] == 12
