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
    metrics = bench_imagenet.run(config)
    saved = json.loads((tmp_path / "bench_imagenet" / metrics["run_dir"].split("/")[-1] / "metrics.json").read_text())
    rows = {(r["case"], r["implementation"]): r for r in saved["results"]}
    impls = {"jaxfool_folded", "jaxfool_separate", "jaxfool_keras_v1_folded", "pytorch"}
    assert set(rows) == {(c, i) for c in ("forward", "forward+backward") for i in impls}
    assert all(r["ms"] > 0 and r["time_vs_pytorch"] > 0 for r in rows.values())
    assert rows[("forward", "pytorch")]["time_vs_pytorch"] == 1.0
