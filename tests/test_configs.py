"""Every experiment config builds on the common base and states its run command; experiments stand alone."""

from __future__ import annotations

import importlib
import pathlib

import pytest

from configs.common import Base, MnistBase

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                 if p.stem not in ("__init__", "common") and not p.stem.startswith("bench_"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_on_the_base_and_states_its_command(name):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config()
    assert isinstance(config, Base), name
    assert isinstance(config, MnistBase) == hasattr(config, "data"), name
    assert "python -m experiments." in module.__doc__, name


def test_no_experiment_imports_another():
    for path in (ROOT / "experiments").glob("*.py"):
        text = path.read_text()
        assert "from experiments" not in text and "import experiments" not in text, path.name
