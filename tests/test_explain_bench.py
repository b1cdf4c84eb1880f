"""The explanation benchmark runs end to end on a shrunk config and checks its own parity."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("captum")


@pytest.mark.slow
def test_bench_explain_on_mnist(tmp_path):
    from configs.bench_explain import get_config
    from experiments.bench_explain import run

    config = get_config()
    mnist = dataclasses.replace(config.models[0], repeats=1, per_layer_calls=False)
    mnist = dataclasses.replace(mnist, occlusion=dataclasses.replace(mnist.occlusion, stride=4))
    config = dataclasses.replace(config, models=(mnist,), out_dir=str(tmp_path), pytorch_grad_cam_site=None)
    metrics = run(config)
    (m,) = metrics["models"]
    assert m["max_rel_diff_grad_cam"] < 1e-5 and m["max_rel_diff_occlusion"] < 1e-5
    assert set(m["ratios"]) >= {"all_layers_vs_one_forward_backward", "captum_per_layer_over_jax_all_layers",
                                "captum_occlusion_over_jax_occlusion"}
    (written,) = tmp_path.glob("*/metrics.json")
    assert json.loads(written.read_text())["models"][0]["model"] == "mnist_cnn"
