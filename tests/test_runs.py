"""Run folders: failed and interrupted runs are marked, names stay inside the workdir, files follow the umask."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from jaxfool import cli, runs


@dataclasses.dataclass
class Config:
    """A run that fails or succeeds as told.

    Attributes:
        workdir: where run folders go.
        run_name: the folder's name.
        outcome: ``ok``, ``fail_early`` (after config.json only), ``fail`` (after writing a result) or ``ctrl_c``.
    """

    workdir: str = "runs"
    run_name: str = ""
    outcome: str = "ok"


def _run(config: Config) -> None:
    run_dir = runs.start_run(config, "exp")
    if config.outcome == "fail_early":
        raise ValueError("layer_factors has 3 entries but the net has 5 layers")
    (run_dir / "partial.txt").write_text("half a result")
    if config.outcome == "fail":
        raise ValueError("the masks did not load")
    if config.outcome == "ctrl_c":
        raise KeyboardInterrupt


def _main(tmp_path, outcome, capsys):
    path = tmp_path / "config.py"
    path.write_text(f"from tests.test_runs import Config\ndef get_config():\n    return Config(workdir={str(tmp_path / 'w')!r}, "
                    f"run_name='r', outcome={outcome!r})\n")
    with pytest.raises(SystemExit) as info:
        cli.main(_run, ["prog", "--config", str(path)])
        raise SystemExit(0)
    return info.value.code, capsys.readouterr().err, tmp_path / "w" / "exp" / "r"


def test_a_finished_run_has_no_marker(tmp_path, capsys):
    code, err, run_dir = _main(tmp_path, "ok", capsys)
    assert code == 0 and err == ""
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "partial.txt"]


def test_a_run_that_fails_before_writing_results_leaves_no_folder(tmp_path, capsys):
    code, err, run_dir = _main(tmp_path, "fail_early", capsys)
    assert code == 1 and err == "error: ValueError: layer_factors has 3 entries but the net has 5 layers\n"
    assert not run_dir.exists()


def test_a_run_that_fails_after_writing_keeps_its_files_and_a_marker(tmp_path, capsys):
    code, err, run_dir = _main(tmp_path, "fail", capsys)
    assert code == 1 and err.count("\n") == 1 and "marked INCOMPLETE" in err
    assert (run_dir / "partial.txt").read_text() == "half a result"
    assert (run_dir / runs.INCOMPLETE).read_text().startswith("failed: ValueError: the masks did not load at ")


def test_ctrl_c_is_one_line_and_marks_the_folder(tmp_path, capsys):
    code, err, run_dir = _main(tmp_path, "ctrl_c", capsys)
    assert code == 130 and err == f"interrupted (Ctrl-C); {run_dir} marked INCOMPLETE\n"
    assert (run_dir / runs.INCOMPLETE).read_text().startswith("interrupted (Ctrl-C) at ")


def test_real_sigint_and_sigterm_are_one_line_and_mark_the_folder(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from jaxfool import cli, runs
        from tests.test_runs import Config
        def run(config):
            d = runs.start_run(config, "exp")
            (d / "partial.txt").write_text("x")
            print("started", flush=True)
            time.sleep(60)
        open(sys.argv[1] + "/c.py", "w").write(
            "from tests.test_runs import Config\\ndef get_config():\\n    return Config(workdir=" + repr(sys.argv[1]) + ", run_name=" + repr(sys.argv[2]) + ")\\n")
        cli.main(run, ["prog", "--config", sys.argv[1] + "/c.py"])
    """)
    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), name.lower()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        run_dir = tmp_path / "exp" / name.lower()
        assert proc.returncode == 130 and err == f"interrupted ({name}); {run_dir} marked INCOMPLETE\n", err
        assert (run_dir / runs.INCOMPLETE).read_text().startswith(f"interrupted ({name})")


def test_a_killed_run_keeps_its_running_marker(tmp_path):
    with runs.tracked():
        run_dir = runs.new_run_dir(tmp_path, "exp", "killed")
        # SIGKILL runs no handler: what is on disk now is what a killed run leaves.
        assert (run_dir / runs.INCOMPLETE).read_text().startswith("running since ")
        marker = (run_dir / runs.INCOMPLETE).read_text()
    assert not (run_dir / runs.INCOMPLETE).exists() and marker


def test_library_calls_outside_cli_write_no_marker(tmp_path):
    run_dir = runs.new_run_dir(tmp_path, "exp", "lib")
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize(("name", "ok"), [("../../escape", False), ("a/b", False), ("..", False), (".x", False),
                                          ("a\\b", False), (" x", False), ("run-1_b", True), ("", True)])
def test_run_names_are_single_components(tmp_path, name, ok):
    if ok:
        path = runs.new_run_dir(tmp_path / "w", "exp", name)
        assert path.parent == tmp_path / "w" / "exp"
    else:
        with pytest.raises(ValueError, match="not a single folder name"):
            runs.new_run_dir(tmp_path / "w", "exp", name)
        assert not (tmp_path / "w").exists()  # refused before anything is created


def test_empty_workdir_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="workdir is empty"):
        runs.new_run_dir("", "exp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_json_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        runs.write_json(tmp_path / "metrics.json", {"a": float("nan"), "b": (1, 2)})
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == mode
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": None, "b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left

