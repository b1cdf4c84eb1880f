"""The ResNet50 benchmark: one tiny run end to end (every case timed, ratios to PyTorch present)."""

from __future__ import annotations

import json

import pytest

from configs.bench_imagenet import get_config
from experiments import bench_imagenet


@pytest.mark.slow
def test_tiny_run(tmp_path):
    pytest.importorskip("torch")
    config = get_config()
    config.workdir, config.batch_sizes, config.rounds, config.image_size = str(tmp_path), (1,), 1, 32
    config.implementations = ("jaxfool_folded",)  # each variant is two ResNet50 compilations; test_resnet checks all
    metrics = bench_imagenet.run(config)
    saved = json.loads((tmp_path / "bench_imagenet" / metrics["run_dir"].split("/")[-1] / "metrics.json").read_text())
    rows = {(r["case"], r["implementation"]): r for r in saved["results"]}
    impls = {"jaxfool_folded", "pytorch"}
    assert set(rows) == {(c, i) for c in ("forward", "forward+backward") for i in impls}
    assert all(r["ms"] > 0 and r["time_vs_pytorch"] > 0 for r in rows.values())
    assert rows[("forward", "pytorch")]["time_vs_pytorch"] == 1.0


def test_unknown_implementation_is_a_clear_error():
    config = get_config()
    config.implementations = ("jaxfool_folded", "resnet_in_numpy")
    with pytest.raises(ValueError, match="implementations=.*subset of"):
        config.validate()
