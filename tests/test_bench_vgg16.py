"""The VGG16 benchmark: FLOP count by hand, and one tiny run end to end."""

from __future__ import annotations

import json

import pytest

from configs.bench_vgg16 import get_config
from experiments import bench_vgg16
from jaxfool import xla
from jaxfool.benchmarking import parse_compiler_options


def test_flops_by_hand():
    macs = 9 * (
        224**2 * (3 * 64 + 64 * 64)
        + 112**2 * (64 * 128 + 128 * 128)
        + 56**2 * (128 * 256 + 2 * 256 * 256)
        + 28**2 * (256 * 512 + 2 * 512 * 512)
        + 14**2 * (3 * 512 * 512)
    )
    assert bench_vgg16.vgg16_flops(include_top=False) == 2 * macs
    top = 2 * (7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert bench_vgg16.vgg16_flops() == 2 * macs + top
    # The usually quoted "15.5 GFLOPs" of VGG16 counts multiply-adds; the peak matmul's 2 n^3 counts FLOPs.
    assert round(bench_vgg16.vgg16_flops() / 2e9, 2) == 15.47


def test_config_rejects_a_classifier_at_another_size():
    config = get_config()
    config.image_size = 64
    with pytest.raises(ValueError, match="classifier needs 224"):
        config.validate()


@pytest.mark.slow
def test_tiny_run(tmp_path):
    config = get_config()
    config.workdir, config.batch_sizes, config.rounds, config.peak_size = str(tmp_path), (2,), 1, 512
    config.include_top, config.image_size = False, 32
    config.compiler_options = ()  # variants only add compilations; their parsing is tested below
    metrics = bench_vgg16.run(config)
    saved = json.loads((tmp_path / "bench_vgg16" / metrics["run_dir"].split("/")[-1] / "metrics.json").read_text())
    rows = {(r["case"], r["batch"], r["implementation"]): r for r in saved["results"]}
    impls = {"jaxfool"} | ({"pytorch"} if "torch" in saved["peak_gflops_by_library"] else set())
    assert set(rows) == {(case, 2, impl) for case in ("forward", "forward+backward") for impl in impls}
    for (case, _, impl), row in rows.items():
        assert row["ms"] > 0 and row["peak_fraction"] > 0 and row["cpu_s"] > 0
        assert row["gflops"] == pytest.approx(row["gflop"] / row["ms"] * 1e3)
        if "pytorch" in impls:
            torch_row = rows[(case, 2, "pytorch")]
            assert row["time_vs_pytorch"] == pytest.approx(row["ms"] / torch_row["ms"])
    assert saved["peak_gflops"] == max(saved["peak_gflops_by_library"].values())
    assert saved["implementations"] == {"jaxfool": xla.cnn_compiler_options()}


def test_compiler_options_parse():
    assert parse_compiler_options("xla_a=1; xla_b=x,y;xla_c=True") == {"xla_a": 1, "xla_b": "x,y", "xla_c": True}
    with pytest.raises(ValueError, match="not 'xla_name=value'"):
        parse_compiler_options("fast=1")
    impls = bench_vgg16._implementations(get_config())
    assert list(impls) == ["jaxfool", "xla_default", "jaxfool+opts2"]
    assert impls["xla_default"] == {} and impls["jaxfool+opts2"] == xla.PER_LAYER_YNNPACK
