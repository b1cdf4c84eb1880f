"""The explanation benchmark runs end to end on a shrunk config and checks its own parity."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("captum")


@pytest.mark.slow
def test_bench_explain_on_mnist(tmp_path):
    from configs.bench_explain import get_config
    from experiments.bench_explain import run

    config = get_config()
    config.workdir, config.run_name, config.pytorch_grad_cam_site = str(tmp_path), "t", None
    config.vgg16.enabled = False
    config.mnist.repeats, config.mnist.per_layer_calls, config.mnist.occlusion.stride = 1, False, 4
    metrics = run(config)
    (m,) = metrics["models"]
    assert m["max_rel_diff_grad_cam"] < 1e-5 and m["max_rel_diff_occlusion"] < 1e-5
    assert set(m["ratios"]) >= {"all_layers_vs_one_forward_backward", "captum_per_layer_over_jax_all_layers",
                                "captum_occlusion_over_jax_occlusion"}
    (written,) = tmp_path.glob("bench_explain/t/metrics.json")
    assert json.loads(written.read_text())["models"][0]["model"] == "mnist_cnn"
