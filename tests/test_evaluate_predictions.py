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
    assert (folder / "noise.png").stat().st_size > 0

    s = metrics["summary"]
    # FGSM stays within its budget and, at eps 0.3 on MNIST, changes at least one prediction.
    assert all(item["fgsm"]["linf"] <= config.fgsm_eps + 1e-6 for item in metrics["images"])
    assert max(item["fgsm"]["linf"] for item in metrics["images"]) > config.fgsm_eps / 2
    assert s["fgsm_top1_change_rate"] > 0
    assert s["fgsm_accuracy"] < s["clean_accuracy"]
    for block in (s["occlusion_vs_gradcam"], s["attention_shift_clean_vs_fgsm"],
                  s["second_model"]["gradcam_vs_first_model_clean"]):
        assert -1 <= block["mean_spearman"] <= 1
        assert 0 <= block["mean_top_k_iou"] <= 1 and 0 <= block["mean_pointing"] <= 1
        assert 0 <= block["mean_centroid_shift"] <= 28 * np.sqrt(2)
    # Chance level: a random map's top-20% region overlaps occlusion's by about 0.2 / (2 - 0.2).
    assert 0.02 < s["occlusion_vs_random_map"]["mean_top_k_iou"] < 0.25
    for item in metrics["images"]:
        for probability in (item["clean"]["probability"], item["fgsm"]["probability"]):
            assert 0.1 <= probability <= 1  # a top-1 probability of 10 classes is at least 1/10
    assert [n["image"] for n in metrics["noise"]["images"]] == ["perlin0", "universal"]
    assert metrics["noise"]["universal_linf"] <= config.noise.universal_eps + 1e-6

    # The same config and seed give the same numbers; the mask only adds its own entry.
    with_mask = again["images"][0].pop("vs_human_mask")
    assert again["summary"].pop("vs_human_mask")["gradcam"]["top_k_iou"] == with_mask["gradcam"]["top_k_iou"]
    assert _strip(again) == _strip(metrics)
    assert 0 <= with_mask["gradcam"]["top_k_iou"] <= 1 and isinstance(with_mask["occlusion"]["pointing"], bool)
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
