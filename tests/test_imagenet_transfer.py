"""jaxfool.transfer (Table 1 of Xie et al., the cross-model comparison) and the imagenet_transfer experiment."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from configs.imagenet_transfer import get_config
from experiments import imagenet_transfer
from jaxfool import attacks, transfer
from jaxfool import weights as W
from jaxfool.models import mnist_cnn
from jaxfool.models.mnist_zoo import mnist_mlp


@pytest.fixture(scope="module")
def tiny():
    nets = {}
    for i, build in enumerate((mnist_cnn, mnist_mlp)):
        net = build()
        nets[net.name] = (net, net.init(key=jax.random.key(i)))
    x = np.random.default_rng(0).uniform(0, 1, (6, 28, 28, 1)).astype(np.float32)
    return nets, x


def test_transfer_table_cells_are_the_attacks_success_rates(tiny):
    nets, x = tiny
    key = jax.random.key(3)
    out = transfer.transfer_table(nets, x, attack_names=("fgsm", "ifgsm"), eps=0.3, key=key, steps=3, batch_size=4)
    names = list(nets)
    assert list(out["success"]) == names and list(out["success"][names[0]]) == ["fgsm", "ifgsm"]
    assert out["clean_error"] == {n: 0.0 for n in names}  # without labels each model's clean top-1 is the reference
    # A cell by hand: FGSM crafted on the first model, judged by the second.
    src, dst = (attacks.network_model(*nets[n]) for n in names)
    ref = transfer.top1(src, x)
    adv = transfer.craft("fgsm", src, x, ref, eps=0.3, key=jax.random.fold_in(key, 0), bounds=(0.0, 1.0))
    assert np.abs(adv - x).max() <= 0.3 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    want = float(np.mean(transfer.top1(dst, adv) != transfer.top1(dst, x)))
    assert out["success"][names[0]]["fgsm"][names[1]] == want
    table = transfer.markdown(out["success"], out["clean_error"]).splitlines()
    assert table[0] == f"| Model | Attack | {names[0]} | {names[1]} |" and len(table) == 2 + 4 + 1
    assert table[2].startswith(f"| {names[0]} | FGSM | ") and table[2].split(" | ")[2].endswith("*")


@pytest.mark.slow
def test_runs_offline_with_random_weights_labelled_meaningless(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXFOOL_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = get_config()
    config.workdir, config.max_images, config.models, config.attacks = str(tmp_path), 1, ("resnet50",), ("fgsm",)
    metrics = imagenet_transfer.run(config)
    assert metrics["meaningless"] and set(metrics["weights"]) == {"resnet50", "resnet101", "vgg16"}
    run_dir = tmp_path / "imagenet_transfer" / metrics["run_dir"].split("/")[-1]
    assert {p.name for p in run_dir.iterdir()} == {
        "config.json", "metrics.json", "transfer_table.md", "cross_model.md", "cross_model_chelsea.png"}
    for name in ("transfer_table.md", "cross_model.md"):
        assert (run_dir / name).read_text().startswith("**RANDOM WEIGHTS: these numbers are MEANINGLESS.**")
    # White-box FGSM at 15 pixels flips ResNet50's own top-1 even with random weights.
    assert metrics["transfer"]["success"]["resnet50"]["fgsm"]["resnet50"] == 1.0
    row = json.loads((run_dir / "metrics.json").read_text())["cross_model"][0]
    assert row["photo"] == "chelsea.png" and set(row) > {"source_clean", "target_adv"}


@pytest.mark.slow
def test_uses_a_converted_checkpoint_when_one_is_present(tmp_path, monkeypatch):
    cache = tmp_path / "weights"
    monkeypatch.setenv("JAXFOOL_WEIGHTS_DIR", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    params = W.random_params(True, key=jax.random.key(5), model="resnet50")
    W.save_checkpoint(params, cache / "resnet50", metadata={"model": "resnet50", "source": "keras_h5", "include_top": True})
    config = get_config()
    config.workdir, config.max_images, config.models, config.attacks = str(tmp_path), 1, ("resnet50",), ("fgsm",)
    config.cross_model = False
    metrics = imagenet_transfer.run(config)
    assert metrics["weights"] == {"resnet50": "imagenet"} and not metrics["meaningless"]
    text = (tmp_path / "imagenet_transfer" / metrics["run_dir"].split("/")[-1] / "transfer_table.md").read_text()
    assert "MEANINGLESS" not in text and "| resnet50 | FGSM | 100.0* |" in text
