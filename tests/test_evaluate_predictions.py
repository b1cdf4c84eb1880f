"""The evaluate-predictions experiment runs end to end on a shrunk MNIST config, and is deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def _tiny(tmp_path, run_name):
    from configs.evaluate_predictions import get_config

    config = get_config()
    config.workdir, config.run_name = str(tmp_path), run_name
    config.data.source, config.data.max_train, config.data.max_test = "embedded", 800, 100
    config.train.epochs, config.second_model, config.second_train.epochs = 2, "mnist_cnn", 1
    config.num_images, config.fgsm_eps = 3, 0.3
    config.noise.perlin_images, config.noise.universal_images, config.noise.universal_epochs = 1, 32, 2
    return config


def _strip(metrics):
    from jaxfool.runs import to_jsonable

    return to_jsonable({k: v for k, v in metrics.items() if k not in ("seconds", "run_dir")})


@pytest.mark.slow
def test_evaluate_predictions_experiment(tmp_path):
    from configs.evaluate_predictions_vgg16 import get_config as vgg_config
    from experiments.evaluate_predictions import run

    vgg_config().validate()  # the VGG16 variant is a valid config (running it needs the weights)
    config = _tiny(tmp_path, "a")
    # A human mask for the first digit (file stem = image name): its left half.
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    metrics = run(config)
    first = metrics["images"][0]["image"]
    Image.fromarray(np.tile((np.arange(28) < 14) * 255, (28, 1)).astype(np.uint8)).save(mask_dir / f"{first}.png")
    config2 = _tiny(tmp_path, "b")
    config2.mask_dir = str(mask_dir)
    again = run(config2)

    folder = tmp_path / "evaluate_predictions" / "a"
    assert json.loads((folder / "metrics.json").read_text())["num_images"] == 3
    for item in metrics["images"]:
        with Image.open(folder / f"panels_{item['image']}.png") as img:
            assert img.width > 200 and img.height > 200
    with Image.open(folder / "noise.png") as img:
        assert np.asarray(img.convert("L"), np.float32).std() > 5  # a drawn figure, not a blank canvas

    s = metrics["summary"]
    # FGSM stays within its budget and, at eps 0.3 on MNIST, changes at least one prediction.
    assert all(item["fgsm"]["linf"] <= config.fgsm_eps + 1e-6 for item in metrics["images"])
    assert max(item["fgsm"]["linf"] for item in metrics["images"]) > config.fgsm_eps / 2
    assert s["fgsm_top1_change_rate"] > 0
    assert s["fgsm_accuracy"] < s["clean_accuracy"]
    # Occlusion and Grad-CAM agree better than occlusion and a random map does.
    assert s["occlusion_vs_gradcam"]["mean_spearman"] > s["occlusion_vs_random_map"]["mean_spearman"] + 0.1
    # Chance level: a random map's top-20% region overlaps occlusion's by about 0.2 / (2 - 0.2).
    assert 0.02 < s["occlusion_vs_random_map"]["mean_top_k_iou"] < 0.25
    # Per-image numbers and their means are the same numbers.
    for block in ("occlusion_vs_gradcam", "attention_shift"):
        per = [item[block]["top_k_iou"] for item in metrics["images"]]
        name = block if block != "attention_shift" else "attention_shift_clean_vs_fgsm"
        assert s[name]["mean_top_k_iou"] == pytest.approx(np.mean(per))
    assert s["clean_accuracy"] == np.mean([i["clean"]["top1"] == i["label"] for i in metrics["images"]])
    assert s["fgsm_top1_change_rate"] == np.mean([i["clean"]["top1"] != i["fgsm"]["top1"] for i in metrics["images"]])
    # The second model is the same architecture, retrained: its Grad-CAM is not the first model's.
    assert s["second_model"]["gradcam_vs_first_model_clean"]["mean_spearman"] < 0.999
    assert [n["image"] for n in metrics["noise"]["images"]] == ["perlin0", "universal"]
    assert metrics["noise"]["universal_linf"] <= config.noise.universal_eps + 1e-6

    # The same config and seed give the same numbers; the mask only adds its own entry.
    with_mask = again["images"][0].pop("vs_human_mask")
    assert again["summary"].pop("vs_human_mask")["gradcam"]["top_k_iou"] == with_mask["gradcam"]["top_k_iou"]
    assert _strip(again) == _strip(metrics)
    # The mask is the left half: a region of 20% of the pixels overlaps it by at most 0.2 / 0.5.
    assert with_mask["gradcam"]["top_k_iou"] <= 0.4 + 1e-6 and isinstance(with_mask["occlusion"]["pointing"], bool)
    assert "vs_human_mask" not in again["images"][1]


def test_bad_config_is_one_line_error():
    from configs.evaluate_predictions import get_config

    config = get_config()
    config.model = "vgg19"
    with pytest.raises(ValueError, match="model='vgg19' is not one of"):
        config.validate()
    config.model = "vgg16"
    with pytest.raises(ValueError, match="second_model"):
        config.validate()


def _vgg16_tiny(tmp_path, monkeypatch):
    from configs.evaluate_predictions_vgg16 import get_config

    monkeypatch.setenv("JAXFOOL_WEIGHTS_DIR", str(tmp_path / "weights"))  # nothing on disk: ResNet101 is random
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = get_config()
    assert config.second_model == "resnet101" and config.fgsm_eps == 4  # the study's
    config.workdir, config.run_name, config.weights, config.num_images = str(tmp_path), "vgg", "random", 1
    config.second_model = "resnet50"  # the same code as ResNet101 (6 conv4 blocks, not 23), compiled in half the time
    config.occlusion.window = config.occlusion.stride = 112  # four occluded copies
    config.noise.universal_images, config.noise.universal_epochs = 1, 1
    return config


@pytest.mark.slow
def test_vgg16_cross_model_part_runs_offline_labelled_meaningless(tmp_path, monkeypatch):
    """The study's cross-model part: VGG16's FGSM images at eps 4 through a ResNet, random weights, one photo."""
    from experiments.evaluate_predictions import run

    metrics = run(_vgg16_tiny(tmp_path, monkeypatch))
    folder = tmp_path / "evaluate_predictions" / "vgg"
    assert {p.name for p in folder.iterdir()} == {"config.json", "metrics.json", "panels_chelsea.png", "noise.png",
                                                 "cross_model.md"}
    assert metrics["meaningless_predictions"] and metrics["weights"] == "random"
    assert metrics["second_model"] == {"name": "resnet50_folded", "weights": "random"}
    assert metrics["summary"]["second_model"]["gradcam_layer"] == "conv5_block3_out"
    # Photos without labels: no accuracy for either model (not a 0.0 that reads as "always wrong").
    assert metrics["summary"]["clean_accuracy"] is None
    assert metrics["summary"]["second_model"]["clean_accuracy"] is None
    assert metrics["summary"]["second_model"]["fgsm_transfer_accuracy"] is None
    item = metrics["images"][0]
    assert item["fgsm"]["linf"] <= 4 + 1e-4  # the study's eps, in pixels of 0-255
    # The ResNet judges the very images VGG16's FGSM made; its top-1 is an ImageNet class name.
    cross = item["second_model"]
    from jaxfool import imagenet

    assert all(cross[k]["class"] == imagenet.class_names()[cross[k]["top1"]] for k in ("clean", "fgsm"))
    assert 0 < cross["clean"]["probability"] <= 1
    text = (folder / "cross_model.md").read_text().splitlines()
    assert text[0] == "**RANDOM WEIGHTS: these numbers are MEANINGLESS.**"
    c, f = cross["clean"], cross["fgsm"]
    assert text[-1].endswith(f"| {c['class']} ({c['probability']:.2f}) | {f['class']} ({f['probability']:.2f}) |")
    assert json.loads((folder / "metrics.json").read_text())["images"][0]["second_model"]["fgsm"] == f
    with Image.open(folder / "panels_chelsea.png") as img:  # two rows: VGG16's five panels, the ResNet's two
        assert img.height > 400


def test_vgg16_variant_bad_input_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    from experiments.evaluate_predictions import run
    from jaxfool import cli

    config = _vgg16_tiny(tmp_path, monkeypatch)
    config.second_model = "mnist_resnet"
    with pytest.raises(cli.ConfigError, match="second_model='mnist_resnet' does not go with model='vgg16'"):
        run(config)
    config.second_model, config.second_weights = "resnet101", str(tmp_path / "missing.h5")
    with pytest.raises(cli.ConfigError, match="second_weights=.* is neither auto, imagenet, random nor an existing"):
        run(config)
    config.second_weights, config.image_dir = "auto", str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no readable .jpg/.png images") as info:
        run(config)
    assert "\n" not in str(info.value) and not (tmp_path / "evaluate_predictions").exists()
