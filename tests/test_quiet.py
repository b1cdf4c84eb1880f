"""A good citizen: importing jaxfool changes no global state; progress only when asked; logs in files stay clean."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from jaxfool import progress


def test_importing_jaxfool_keeps_the_matplotlib_backend_and_log_levels():
    code = (
        "import logging, matplotlib; b = matplotlib.get_backend(); import jaxfool.plots; "
        "assert matplotlib.get_backend() == b, (b, matplotlib.get_backend()); "
        "import jaxfool, jaxfool.cli, jaxfool.explain, jaxfool.attacks; "
        "assert matplotlib.get_backend() == b == 'svg', (b, matplotlib.get_backend()); "
        "assert logging.getLogger('absl').level == logging.NOTSET; "
        "import matplotlib.pyplot as plt, numpy as np; jaxfool.plots.curves({'a': [1, 2]}, 'c.png', xlabel='x', "
        "ylabel='y'); assert plt.get_fignums() == [] and matplotlib.get_backend() == 'svg'"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}  # a backend Agg is not: the old matplotlib.use("Agg") changed it
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=os.getcwd())
    os.remove("c.png")


# Every public module (found by walking the package, so a new one is covered); jaxfool.weights.__main__ is the CLI.
IMPORT_EVERYTHING = """
import importlib, logging, pkgutil, sys
root = logging.getLogger()
handlers, level = list(root.handlers), root.level
import jaxfool
names = [m.name for m in pkgutil.walk_packages(jaxfool.__path__, "jaxfool.")
         if not any(part.startswith("_") for part in m.name.split("."))]
for name in ["jaxfool", *names]:
    importlib.import_module(name)
    assert root.handlers == handlers and root.level == level, (name, root.handlers, logging.getLevelName(root.level))
assert len(names) > 50 and {"jaxfool.checkpoints", "jaxfool.weights.store", "jaxfool.train"} <= set(names), names
"""


def test_importing_every_jaxfool_module_leaves_the_root_logger_alone():
    # orbax.checkpoint's import runs absl's logging setup (logging.basicConfig: a root handler); jaxfool imports
    # it where it is used, and so does any module with such side effects.
    subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], check=True, cwd=os.getcwd())


def test_progress_is_off_unless_asked(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="jaxfool.progress"):
        with progress.bar(range(3), progress=False, desc="quiet") as bar:
            for _ in bar:
                bar.set_postfix(loss=1.0)
    assert capsys.readouterr().err == "" and caplog.records == []


def test_progress_off_a_terminal_is_log_lines_without_carriage_returns(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="jaxfool.progress"):
        with progress.bar(range(50), progress=True, desc="steps", log_every=3600) as bar:
            for i in bar:
                bar.set_postfix(i=i)
    err = capsys.readouterr().err
    lines = [r.getMessage() for r in caplog.records]
    assert "\r" not in err and all("\r" not in line for line in lines)
    # The first line, then (an hour between lines) only the final state.
    assert len(lines) == 2 and lines[0].startswith("steps: 0/50") and lines[1].startswith("steps: 50/50")
    assert lines[1].endswith("i=49")


@pytest.mark.slow
def test_an_experiment_log_in_a_file_has_jaxfool_lines_only(tmp_path):
    import jax

    from jaxfool import checkpoints, zoo
    from jaxfool.data import DataConfig, load_mnist
    from jaxfool.models import mnist_cnn
    from jaxfool.train import TrainConfig

    data_args = ["--config.data.source=embedded", "--config.data.max_train=100", "--config.data.max_test=50",
                 "--config.train.epochs=1", "--config.train.batch_size=50"]
    # The cached model the run restores (orbax prints ~20 absl INFO lines per restore unless quietened): random
    # weights saved under the key the run looks up, so no training is needed.
    net, data = mnist_cnn(), load_mnist(DataConfig(source="embedded", max_train=100, max_test=50))
    key = zoo.model_key(net, data, TrainConfig(epochs=1, batch_size=50))
    checkpoints.save(tmp_path / "models" / key, net.init(key=jax.random.key(0)), {"test_accuracy": 0.1, "losses": []})
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run(
            [sys.executable, "-m", "experiments.backwork_mnist", "--config", "configs/backwork_mnist.py",
             f"--config.workdir={tmp_path}", *data_args, "--config.backwork.labels=0,1",
             "--config.backwork.images_per_label=2", "--config.backwork.max_steps=2",
             "--config.backwork.refs_per_label=5", "--config.nn_layers_max_train=100"],
            stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300,
        )
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line for line in lines if re.search(r" (absl|orbax[\w.]*|jax|jax\.[\w.]+): ", line)] == []
    assert any("jaxfool.zoo: restored" in line for line in lines)
    assert any("jaxfool.progress: backwork: 2/2" in line or "jaxfool.progress: backwork: 1/2" in line for line in lines)
    assert any("generated images reach p >= 0.999" in line for line in lines)
