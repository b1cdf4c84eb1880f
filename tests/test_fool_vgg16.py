"""The fool-VGG16 experiment end to end with random weights on one photo (and one unreadable file)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from configs.fool_vgg16 import get_config
from experiments import fool_vgg16


@pytest.mark.slow
def test_fool_vgg16_random_weights(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(photos / "noise.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    config = get_config()
    config.workdir, config.image_dir, config.weights, config.top = str(tmp_path / "runs"), str(photos), "random", 3
    metrics = fool_vgg16.run(config)

    assert metrics["meaningless_predictions"] is True
    assert [p.endswith("broken.jpg") for p in metrics["skipped"]] == [True]
    (item,) = metrics["images"]
    probs = [t["probability"] for t in item["top"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    run_dir = tmp_path / "runs" / "fool_vgg16" / metrics["run_dir"].split("/")[-1]
    assert "MEANINGLESS" in (run_dir / "predictions.md").read_text()
    overlay = np.asarray(Image.open(run_dir / "gradcam_noise.png"))
    assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
    with Image.open(run_dir / "gradcam_layers_noise.gif") as gif:
        assert gif.n_frames == 13  # every conv layer of VGG16, from one backward pass
    assert json.loads((run_dir / "metrics.json").read_text())["weights"] == "random"


def test_unknown_layer_is_rejected_before_any_work(tmp_path):
    config = get_config()
    config.workdir, config.weights, config.layer = str(tmp_path), "random", "block6_conv1"
    with pytest.raises(ValueError, match="unknown layer 'block6_conv1'"):
        fool_vgg16.run(config)
    assert not (tmp_path / "fool_vgg16").exists()
