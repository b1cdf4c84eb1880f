"""Config files, overrides and their one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jaxfool import cli

CONFIG = "configs/backwork_mnist.py"


def test_overrides_are_typed_by_the_dataclass():
    config = cli.parse(["prog", "--config", CONFIG, "--config.backwork.max_steps=100",
                        "--config.backwork.labels=(1, 2)", "--config.sweep.prev_coeff=0.1,0.5",
                        "--config.data.source=embedded", "--config.data.tfds_data_dir=none",
                        "--config.train.learning_rate=3e-4"])
    assert config.backwork.max_steps == 100
    assert config.backwork.labels == (1, 2)
    assert config.sweep.prev_coeff == (0.1, 0.5)
    assert config.data.source == "embedded" and config.data.tfds_data_dir is None
    assert config.train.learning_rate == pytest.approx(3e-4)


def test_variant_config_builds_on_the_default():
    base = cli.parse(["prog", "--config", CONFIG])
    variant = cli.parse(["prog", "--config", "configs/backwork_mnist_retrain.py"])
    assert variant.retrain.mode == "soft" and base.retrain.mode == "none"
    assert variant.backwork == base.backwork


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config.backwork.max_stps=3"], r"unknown config field 'backwork.max_stps' \(did you mean 'backwork.max_steps'\?\); valid fields of backwork: images_per_label"),
        (["--config.bogus=1"], "valid fields of the config: workdir"),
        (["--config.backwork.max_steps=abc"], "is not a valid int"),
        (["--config.backwork.max_steps=2.5"], "is not a valid int"),
        (["--config.data.source=foo"], "is not one of auto, files, tfds, embedded"),
        (["--config.backwork.max_steps=0"], "must be >= 1"),
        (["--config.backwork.max_steps"], "has no value"),
        (["stray"], "unexpected argument"),
    ],
)
def test_bad_overrides_are_one_line_errors(args, message):
    with pytest.raises(cli.ConfigError, match=message) as info:
        cli.parse(["prog", "--config", CONFIG, *args])
    assert "\n" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(cli.ConfigError, match="does not exist"):
        cli.parse(["prog", "--config", "configs/nope.py"])
    with pytest.raises(cli.ConfigError, match="missing --config"):
        cli.parse(["prog"])


def test_command_line_error_exits_2_with_one_line_and_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.backwork_mnist", "--config", CONFIG,
         f"--config.workdir={tmp_path}", "--config.backwork.prob_cap=0.5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean 'backwork.prob_cap_min'" in proc.stderr
    assert list(tmp_path.iterdir()) == []
