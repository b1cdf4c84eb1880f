"""Config files, overrides and their one-line errors."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from typing import Annotated

import pytest
from annotated_types import Ge, Interval

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


def test_help_lists_every_field_with_type_default_range_and_docstring(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(lambda config: None, ["experiments/backwork_mnist.py", "--config", CONFIG, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m experiments.backwork_mnist --config {CONFIG}")
    assert "Backwork on the MNIST CNN" in out  # the config file's docstring
    assert "--config.backwork.learning_rate: float = 0.01 (> 0)" in out
    assert "--config.data.tfds_data_dir: str | None = None" in out
    assert "Adam's step size." in out  # TrainConfig's Attributes: section
    def leaves(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            yield from leaves(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]

    listed = [line.split(":")[0].strip() for line in out.splitlines() if line.strip().startswith("--config.")]
    assert listed == [f"--config.{p}" for p in leaves(cli.load_config_file(CONFIG))]


BROKEN = {
    "syntax.py": ("def get_config(:\n", "has a syntax error at line 1"),
    "imports.py": ("import jaxfool_no_such_module\n", r"failed to import: ModuleNotFoundError: No module named 'jaxfool_no_such_module' \(line 1\)"),
    "dict.py": ("def get_config():\n    return {'a': 1}\n", "returned dict, not a dataclass instance"),
    "class.py": ("import dataclasses\n@dataclasses.dataclass\nclass C:\n    a: int = 1\ndef get_config():\n    return C\n", "returned type, not a dataclass instance"),
    "raises.py": ("def get_config():\n    return 1 / 0\n", r"get_config\(\) of .* failed: ZeroDivisionError: division by zero \(line 2\)"),
    "none.py": ("x = 1\n", "has no get_config\\(\\) function"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_files_are_one_line_errors_with_exit_2(name, tmp_path, capsys):
    text, message = BROKEN[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit) as info:
        cli.main(lambda config: pytest.fail("ran"), ["prog", "--config", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("arg", "value"),
    [("--config.backwork.labels=1,2", (1, 2)), ("--config.backwork.labels=[3, 4]", (3, 4)),
     ("--config.backwork.labels=5", (5,)), ("--config.sweep.learning_rate=()", ()),
     ("--config.sweep.learning_rate=0.1,0.2", (0.1, 0.2))],
)
def test_tuple_values(arg, value):
    config = cli.parse(["prog", "--config", CONFIG, arg])
    field = arg.split("=")[0].split(".")[-2:]
    assert getattr(getattr(config, field[0]), field[1]) == value


def test_a_repeated_field_takes_its_last_value():
    config = cli.parse(["prog", "--config", CONFIG, "--config.train.epochs=1", "--config.train.epochs=2"])
    assert config.train.epochs == 2


def test_tuples_of_words():
    config = cli.parse(["prog", "--config", "configs/transfer_table.py", "--config.transfer.models=mnist_cnn,mnist_mlp"])
    assert config.transfer.models == ("mnist_cnn", "mnist_mlp")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # listed in issue 16
        (["--config.backwork.learning_rate=-1"], r"backwork.learning_rate=-1 must be > 0"),
        (["--config.sweep.learning_rate=(-1.0, 0.01)"], r"sweep.learning_rate=\(-1.0, 0.01\) holds -1.0; each value must be > 0"),
        # ours
        (["--config.backwork.prob_cap_min=1.5"], r"prob_cap_min=1.5 must be > 0 and <= 1"),
        (["--config.train.learning_rate=1e999"], r"train.learning_rate=inf must be > 0"),
        (["--config.train.batch_size=0"], r"train.batch_size=0 must be >= 1"),
        (["--config.data.max_train=-5"], r"data.max_train=-5 must be >= 0"),
        (["--config.backwork.labels=0,-1"], r"holds -1; each value must be >= 0"),
        (["--config.train.seed=-1"], r"train.seed=-1 must be >= 0 and < 4294967296"),
        (["--config", CONFIG], r"--config is given 2 times"),
        (["--config.backwork=3"], r"--config.backwork is a group of fields"),
    ],
)
def test_values_out_of_range_are_one_line_errors(args, message):
    with pytest.raises(cli.ConfigError, match=message) as info:
        cli.parse(["prog", "--config", CONFIG, *args])
    assert "\n" not in str(info.value)


def test_every_numeric_field_of_every_config_has_a_range_and_the_defaults_pass():
    import glob

    from jaxfool import ranges

    paths = sorted(p for p in glob.glob("configs/*.py") if not p.endswith(("__init__.py", "common.py")))  # common: bases
    assert len(paths) >= 15
    for path in paths:
        config = cli.load_config_file(path)
        assert ranges.missing_ranges(config) == [], path
        cli.validate(config)


@dataclasses.dataclass
class OwnRanges:
    keep: Annotated[float, Interval(ge=0, le=1)] = 0.5
    learning_rate: Annotated[float, Ge(-1)] = -0.5  # overrides the table's > 0


def test_a_field_can_declare_its_own_range():
    C = OwnRanges
    cli.validate(C())
    with pytest.raises(cli.ConfigError, match=r"keep=2 must be >= 0 and <= 1"):
        cli.validate(C(keep=2))
    with pytest.raises(cli.ConfigError, match=r"learning_rate=-2 must be >= -1"):
        cli.validate(C(learning_rate=-2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config.run_name=../../escape"], r"run_name='../../escape' is not a single folder name"),
        (["--config.workdir="], r"workdir is empty"),
        (["--config.run_name=a/b"], r"not a single folder name"),
        (["--config.run_name=.."], r"not a single folder name"),
        (["--config.run_name=.hidden"], r"not a single folder name"),
        (["--config.workdir=pyproject.toml"], r"workdir='pyproject.toml' is a file"),
    ],
)
def test_run_folders_stay_inside_the_workdir(args, message):
    with pytest.raises(cli.ConfigError, match=message) as info:
        cli.parse(["prog", "--config", CONFIG, *args])
    assert "\n" not in str(info.value)
