"""The see-the-world experiment end to end on a tiny config; VGG16 weights choice and the photo recipe."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from configs.see_the_world import get_config
from configs.see_the_world_vgg16 import get_config as get_vgg_config
from experiments import see_the_world, see_the_world_vgg16
from jaxfool import cli, images


@pytest.fixture
def no_official_weights(tmp_path, monkeypatch):
    """Points every place jaxfool.weights looks for the official weights at empty folders."""
    monkeypatch.setenv("JAXFOOL_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.keras/models either


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
    metrics = see_the_world.run(config)
    run_dir = tmp_path / "see_the_world" / "tiny"
    for name in ("filters_conv0.png", "filters_conv0_curves.png", "classes.png", "classes_curves.png",
                 "target.png", "target_curve.png", "fooling.png", "fooling_curves.png"):
        picture = np.asarray(Image.open(run_dir / name).convert("L"), np.float32)
        assert picture.std() > 5, name  # a drawn figure, not a blank canvas
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["filters"]["conv0"]["filters"] == 32
    # Three RMS-normalised steps never lower a filter's mean activation (the filter recipe's property).
    assert saved["filters"]["conv0"]["non_decreasing"] == 32
    assert len(saved["classes"]["curves"]) == 10 and len(saved["classes"]["curves"][0]) == 5
    assert all(c[-1] > c[0] for c in saved["classes"]["curves"])  # every class's probability rose
    target = saved["target"]
    assert len(target["curve"]) == 5 and target["steps"] == 4 and target["snapshot_steps"] == [0, 2, 4]
    assert target["target_prob_at_snapshots"][-1] > target["target_prob_at_snapshots"][0]
    assert 0.0 <= target["pixel_min"] and target["pixel_max"] <= 1.0  # clipped to the CNN's [0, 1]
    assert saved["speed"]["max_abs_image_difference"] < 1e-4
    assert metrics["run_dir"] == str(run_dir)
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 0


@pytest.mark.slow
def test_see_the_world_vgg16_tiny(tmp_path, no_official_weights, caplog):
    config = get_vgg_config()
    config.workdir, config.run_name = str(tmp_path), "tiny"
    config.layers = ("block1_conv1",)
    config.filters_per_layer = 2
    config.size = 32
    config.filters.steps = 2
    config.class_index = None  # the sea snake from noise costs as much as the target part: one 224 part is enough
    config.target.steps = 2  # the classifier needs 224x224: few steps instead of a small image
    config.target.snapshots = 3
    assert config.weights == "auto" and config.target.units == "study"
    with caplog.at_level(logging.WARNING):
        see_the_world_vgg16.run(config)
    run_dir = tmp_path / "see_the_world_vgg16" / "tiny"
    for name in ("vgg_filters.png", "vgg_target.png", "vgg_target_curve.png"):
        assert np.asarray(Image.open(run_dir / name).convert("L"), np.float32).std() > 5, name
    vgg = json.loads((run_dir / "metrics.json").read_text())
    assert vgg["filters"]["block1_conv1"]["non_decreasing"] == 2
    # "auto" without the official weights on disk: random weights, said in the log and the metrics.
    assert (vgg["weights_requested"], vgg["weights"], vgg["meaningless"]) == ("auto", "random", True)
    assert "MEANINGLESS" in vgg["weights_label"]
    assert any("RANDOM weights" in r.getMessage() and "auto" in r.getMessage() for r in caplog.records)
    push = vgg["target"]
    assert push["image"].endswith("astronaut.png") and push["target_name"] == "triceratops"
    assert len(push["curve"]) == 2 + 1 and push["snapshot_steps"] == [0, 1, 2]
    assert push["curve"][-1] > push["curve"][0]  # the ascent raised p(triceratops)
    at = [push["curve"][s] for s in push["snapshot_steps"]]
    assert push["target_prob_at_snapshots"] == pytest.approx(at, rel=1e-4)  # two code paths, one probability
    # Study units: the normalised photo in [0, 1], moved by two RMS-normalised steps of 0.01 (no clipping).
    assert -0.05 < push["pixel_min"] and push["pixel_max"] < 1.05
    assert push["top1_before"]["name"] and push["top1_after"]["name"]


def test_missing_weights_fail_in_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)  # keep pytest's log handlers
    argv = ["see_the_world_vgg16", "--config", "configs/see_the_world_vgg16.py", f"--config.workdir={tmp_path}",
            f"--config.weights={tmp_path / 'nope.h5'}"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(see_the_world_vgg16.run, argv)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: WeightsError: weights='{tmp_path / 'nope.h5'}' is neither")
    assert not (tmp_path / "see_the_world_vgg16").exists()  # no work done


def test_bad_photo_and_units_are_one_line_errors(tmp_path):
    config = get_vgg_config()
    config.workdir, config.weights = str(tmp_path), "random"
    config.target.image = "no_such_photo"
    with pytest.raises(FileNotFoundError, match="'no_such_photo' is neither an image file nor a scikit-image"):
        see_the_world_vgg16.run(config)
    assert not (tmp_path / "see_the_world_vgg16").exists()
    config.target.units = "pixels"
    with pytest.raises(ValueError, match="units='pixels' is unknown; use 'study' or 'rgb'"):
        see_the_world_vgg16.run(config)


def test_thumbnail_crop_follows_the_study(tmp_path):
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 256, (600, 300, 3), dtype=np.uint8)  # height x width
    Image.fromarray(portrait).save(tmp_path / "portrait.png")
    x = images.load_thumbnail_crop(tmp_path / "portrait.png", (224, 224))
    ref = Image.fromarray(portrait)
    ref.thumbnail((224, 500), Image.Resampling.LANCZOS)  # the study's two pillow calls
    np.testing.assert_array_equal(x, np.asarray(ref.crop((0, 0, 224, 224)), np.float32))
    assert ref.size == (224, 448) and x.shape == (224, 224, 3)

    Image.fromarray(portrait[:100]).save(tmp_path / "wide.png")  # 300 x 100: a 224 x 75 thumbnail
    with pytest.raises(ValueError, match="thumbnail is 224x75 .* smaller than the 224x224 crop"):
        images.load_thumbnail_crop(tmp_path / "wide.png")
