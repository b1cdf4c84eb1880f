"""The attack experiments end to end on tiny configs (each MNIST one trains its models on a 500-digit subset; the
ImageNet transfer table runs ResNet50 with random weights on one small photo), and jaxfool.transfer."""

from __future__ import annotations

import importlib.util
import json

import jax
import numpy as np
import pytest

from configs.attack_sweep import get_config as sweep_config
from configs.bench_attacks import get_config as bench_config
from configs.transfer_table import get_config as transfer_config
from configs.transfer_table_imagenet import get_config as imagenet_transfer_config
from experiments import attack_sweep, bench_attacks, transfer_table
from jaxfool import attacks, cli, transfer
from jaxfool import weights as W
from jaxfool.data import DataConfig
from jaxfool.models import mnist_cnn
from jaxfool.models.mnist_zoo import mnist_mlp
from jaxfool.train import TrainConfig

TINY_DATA = DataConfig(source="embedded", max_train=500, max_test=100)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=50, seed=0)


@pytest.mark.slow
def test_attack_sweep_writes_plot_and_metrics_with_consistent_accuracies(tmp_path):
    config = sweep_config()
    config.workdir, config.data, config.train = str(tmp_path), TINY_DATA, TINY_TRAIN
    d = config.defences
    d.fgsm_train = d.pgd_train = d.distill_train = TINY_TRAIN
    d.pgd_steps, d.fgsm_training, d.ramp_epochs = 2, False, 0
    s = config.sweep
    s.attacks, s.epsilons, s.steps, s.pgd_steps, s.n_test, s.batch_size = ("fgsm", "pgd+margin"), (0.0, 0.3), 2, 3, 20, 10
    metrics = attack_sweep.run(config)
    assert set(metrics["models"]) == {"plain", "pgd_trained", "distilled"}
    for result in metrics["models"].values():
        for accs in result["robust_accuracy"].values():
            assert len(accs) == 2 and accs[1] <= accs[0]  # eps 0 is the clean accuracy on the subset
        assert result["robust_accuracy"]["fgsm"][0] == result["robust_accuracy"]["pgd+margin"][0]
    run_dir = tmp_path / "attack_sweep" / metrics["run_dir"].split("/")[-1]
    assert (run_dir / "robust_accuracy.png").stat().st_size > 1000
    assert json.loads((run_dir / "metrics.json").read_text())["n_attacked"] == 20
    assert "plain/fgsm@0.3 robust accuracy" in metrics["headline"]
    again = attack_sweep.run(config)  # every model is now restored from its checkpoint
    assert again["models"]["pgd_trained"]["robust_accuracy"] == metrics["models"]["pgd_trained"]["robust_accuracy"]


@pytest.mark.slow
def test_transfer_table_is_laid_out_like_xie_et_al(tmp_path):
    config = transfer_config()
    config.workdir, config.data, config.train = str(tmp_path), TINY_DATA, TINY_TRAIN
    t = config.transfer
    t.models, t.attacks, t.steps, t.n_test, t.batch_size = ("mnist_cnn", "mnist_mlp"), ("fgsm", "mdi2fgsm"), 2, 20, 10
    metrics = transfer_table.run(config)
    lines = metrics["table"].strip().splitlines()
    assert lines[0] == "| Model | Attack | mnist_cnn | mnist_mlp |"
    assert len(lines) == 2 + 2 * 2 + 1
    assert lines[2].startswith("| mnist_cnn | FGSM | ") and lines[2].split("|")[3].strip().endswith("*")
    assert lines[4].startswith("| mnist_mlp | FGSM | ") and lines[4].split("|")[4].strip().endswith("*")
    for source in t.models:
        for attack in t.attacks:
            assert set(metrics["success"][source][attack]) == set(t.models)
    assert set(metrics["mean_black_box_transfer"]) == set(t.attacks)


@pytest.mark.slow
def test_bench_reports_ratios_and_throughput(tmp_path):
    config = bench_config()
    config.workdir, config.data, config.train = str(tmp_path), TINY_DATA, TINY_TRAIN
    b = config.bench
    b.n_images, b.epsilons, b.steps, b.repeats, b.matmul_size = 8, (0.1, 0.3), 2, 1, 256
    has = lambda name: importlib.util.find_spec(name) is not None
    b.peers = tuple(p for p in ("torchattacks",) if has(p) and has("torch"))
    metrics = bench_attacks.run(config)
    assert metrics["gflops"]["jaxfool_sweep"] > 0 and metrics["gflops"]["matmul_peak"] > 0
    assert len(metrics["jaxfool_robust_accuracy"]) == 2
    if b.peers:
        assert metrics["torch_logit_max_rel_diff"] < 1e-4  # the copied weights reproduce the flax logits
        assert metrics["ratio_jaxfool_over"]["torchattacks"] > 0


@pytest.fixture(scope="module")
def tiny_nets():
    nets = {}
    for i, build in enumerate((mnist_cnn, mnist_mlp)):
        net = build()
        nets[net.name] = (net, net.init(key=jax.random.key(i)))
    x = np.random.default_rng(0).uniform(0, 1, (6, 28, 28, 1)).astype(np.float32)
    return nets, x


def test_transfer_table_cells_are_the_attacks_success_rates(tiny_nets):
    nets, x = tiny_nets
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
    # With labels, the clean row is each model's error rate on them.
    labels = np.asarray(transfer.top1(src, x))
    labels[:3] = (labels[:3] + 1) % 10
    with_labels = transfer.transfer_table(nets, x, attack_names=("fgsm",), eps=0.3, key=key, labels=labels,
                                          batch_size=4)
    assert with_labels["clean_error"][names[0]] == 0.5


def test_cross_model_markdown_has_a_row_per_image_and_says_meaningless():
    top = lambda c, p: {"class": c, "probability": p}
    rows = [{"image": "cat", "vgg16": {"clean": top("tabby", 0.91), "fgsm": top("tiger", 0.4)},
             "resnet101": {"clean": top("tabby", 0.978), "fgsm": top("tabby", 0.5)}}]
    text = transfer.cross_model_markdown(rows, ("vgg16", "resnet101"), eps=4, meaningless=True).splitlines()
    assert text[0] == transfer.MEANINGLESS and "eps 4 crafted on vgg16" in text[2]
    assert text[4] == "| image | vgg16 clean | vgg16 FGSM | resnet101 clean | resnet101 FGSM |"
    assert text[-1] == "| cat | tabby (0.91) | tiger (0.40) | tabby (0.98) | tabby (0.50) |"
    assert transfer.MEANINGLESS not in transfer.cross_model_markdown(rows, ("vgg16", "resnet101"), eps=4)


def _imagenet_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXFOOL_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.keras/models files either
    config = imagenet_transfer_config()
    t = config.transfer
    config.workdir, t.models, t.attacks, t.n_test, t.image_size = str(tmp_path), ("resnet50",), ("fgsm",), 1, 32
    return config


@pytest.mark.slow
def test_imagenet_transfer_table_runs_offline_and_picks_up_a_converted_checkpoint(tmp_path, monkeypatch):
    config = _imagenet_tiny(tmp_path, monkeypatch)
    metrics = transfer_table.run(config)
    assert metrics["meaningless"] and metrics["weights"] == {"resnet50": "random"}
    assert metrics["images"] == ["chelsea.png"] and metrics["n_attacked"] == 1
    run_dir = tmp_path / "transfer_table" / metrics["run_dir"].split("/")[-1]
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "metrics.json", "transfer_table.md"}
    assert (run_dir / "transfer_table.md").read_text().startswith(transfer.MEANINGLESS)
    # White-box FGSM at 15 pixels flips ResNet50's own top-1, even with random weights.
    assert metrics["success"]["resnet50"]["fgsm"]["resnet50"] == 1.0
    # A converted checkpoint in the weights folder is used, and the run says nothing is meaningless.
    W.save_checkpoint(W.random_params(True, key=jax.random.key(5), model="resnet50"), tmp_path / "weights" / "resnet50",
                      metadata={"model": "resnet50", "source": "keras_h5", "include_top": True})
    metrics = transfer_table.run(config)
    assert metrics["weights"] == {"resnet50": "imagenet"} and not metrics["meaningless"]
    text = (tmp_path / "transfer_table" / metrics["run_dir"].split("/")[-1] / "transfer_table.md").read_text()
    assert "MEANINGLESS" not in text and "| resnet50 | FGSM | 100.0* |" in text


def test_imagenet_transfer_table_bad_input_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    config = _imagenet_tiny(tmp_path, monkeypatch)
    config.transfer.models = ("vgg16", "resnet50")
    with pytest.raises(cli.ConfigError, match="VGG16's classifier needs 224"):
        transfer_table.run(config)
    config.transfer.models = ("resnet50", "mnist_cnn")
    with pytest.raises(cli.ConfigError, match=r"unknown transfer.models \['mnist_cnn'\] beside resnet50"):
        transfer_table.run(config)
    config.transfer.models, config.transfer.image_dir = ("resnet50",), str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no readable .jpg/.png images") as info:
        transfer_table.run(config)
    assert "\n" not in str(info.value) and not (tmp_path / "transfer_table").exists()
