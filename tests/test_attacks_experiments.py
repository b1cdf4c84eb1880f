"""The attack experiments end to end on tiny configs (each trains its models on a 500-digit subset)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from configs.attack_sweep import get_config as sweep_config
from configs.bench_attacks import get_config as bench_config
from configs.transfer_table import get_config as transfer_config
from experiments import attack_sweep, bench_attacks, transfer_table
from jaxfool.data import DataConfig
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
