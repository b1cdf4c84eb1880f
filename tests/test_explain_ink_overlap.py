"""The ink-overlap experiment runs end to end on a shrunk config."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


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
    # A black window on the black background changes nothing, so the map is 0 away from the ink and its top
    # region must overlap the ink far better than a random map's.
    assert black["occlusion_iou"] > black["random_iou"] + 0.1
    assert metrics["ink_fraction"] == pytest.approx(0.19, abs=0.05)  # MNIST digits cover about a fifth
    folder = tmp_path / "ink_overlap" / "t"
    picture = np.asarray(Image.open(folder / "examples.png").convert("L"), np.float32)
    assert picture.shape[0] > picture.shape[1] and picture.std() > 10  # 8 rows of 4 panels, not a blank image
    assert json.loads((folder / "metrics.json").read_text())["num_images"] == 12
