"""experiments.explanation_quality end to end on a tiny config."""

from __future__ import annotations

import json

import pytest

from configs.explanation_quality import get_config
from experiments import explanation_quality
from jaxfool.data import DataConfig
from jaxfool.train import TrainConfig


@pytest.mark.slow
def test_explanation_quality_tiny(tmp_path):
    config = get_config()
    config.workdir, config.run_name = str(tmp_path), "t"
    config.data, config.train = DataConfig(source="embedded", max_train=500, max_test=100), TrainConfig(epochs=2)
    config.num_images, config.steps = 6, 8
    config.methods = ("saliency", "grad_cam", "occlusion", "random")
    config.sanity_methods = ("saliency", "guided_backprop")
    metrics = explanation_quality.run(config)
    faith = metrics["faithfulness"]
    assert set(faith) == set(config.methods) and len(faith["saliency"]["deletion"]) == 6
    # Occlusion removes what matters most by construction: its deletion curve falls faster than a random map's.
    assert faith["occlusion"]["deletion_auc"] < faith["random"]["deletion_auc"]
    curves = metrics["cascading_randomization"]
    assert curves["saliency"]["layers"] == ["logits", "fc", "conv1", "conv0"]
    assert len(curves["guided_backprop"]["spearman_abs"]) == 4
    assert set(metrics["data_randomization"]) == set(config.sanity_methods)
    saved = json.loads((tmp_path / "explanation_quality" / "t" / "metrics.json").read_text())
    assert saved["num_images"] == 6
    for png in ("faithfulness.png", "sanity.png", "maps.png"):
        assert (tmp_path / "explanation_quality" / "t" / png).stat().st_size > 5000
