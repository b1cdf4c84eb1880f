"""The see-the-world experiment end to end on a tiny config."""

from __future__ import annotations

import json

import pytest

from configs.see_the_world import get_config
from experiments import see_the_world


@pytest.mark.slow
def test_see_the_world_tiny(tmp_path):
    config = get_config()
    config.workdir = str(tmp_path)
    config.run_name = "tiny"
    config.data.source = "embedded"
    config.data.max_train = 500
    config.data.max_test = 200
    config.train.epochs = 1
    config.train.batch_size = 50
    config.filter_layers = ("conv0",)
    config.filters.steps = 3
    config.classes.steps = 4
    config.target.ascent.steps = 4
    config.target.snapshots = 3
    config.fooling.steps = 4
    config.speed_filters = 2
    config.vgg.layers = ("block1_conv1",)
    config.vgg.filters_per_layer = 2
    config.vgg.size = 32
    config.vgg.filters.steps = 2
    config.vgg.class_index = None  # the 224x224 class part (138M random parameters) is too slow for the suite
    metrics = see_the_world.run(config)
    run_dir = tmp_path / "see_the_world" / "tiny"
    for name in ("filters_conv0.png", "filters_conv0_curves.png", "classes.png", "classes_curves.png",
                 "target.png", "target_curve.png", "fooling.png", "vgg_filters.png", "metrics.json", "config.json"):
        assert (run_dir / name).stat().st_size > 0, name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["filters"]["conv0"]["filters"] == 32
    assert len(saved["classes"]["curves"]) == 10 and len(saved["classes"]["curves"][0]) == 5
    assert len(saved["target"]["curve"]) == 5 and saved["target"]["steps"] == 4
    assert saved["speed"]["max_abs_image_difference"] < 1e-4
    assert saved["vgg16"]["weights"].startswith("random")
    assert saved["vgg16"]["filters"]["block1_conv1"]["non_decreasing"] == 2
    assert metrics["run_dir"] == str(run_dir)
