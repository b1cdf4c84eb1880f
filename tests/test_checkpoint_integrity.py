"""Damaged, incomplete, non-finite and old checkpoints; the model cache retrains; permissions follow the umask."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import stat

import jax
import numpy as np
import pytest

from jaxfool import checkpoints, zoo
from jaxfool.data import DataConfig, load_mnist
from jaxfool.models import mnist_zoo
from jaxfool.train import TrainConfig


def _largest_data_file(path: pathlib.Path) -> pathlib.Path:
    return max((f for f in (path / "params").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)


def _truncate_data(path):
    f = _largest_data_file(path)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _random_bytes_over_data(path):
    f = _largest_data_file(path)
    data = bytearray(f.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4096] = np.random.default_rng(0).bytes(4096)
    f.write_bytes(bytes(data))


def _delete_metadata(path):
    (path / "meta" / "metadata").unlink()


def _truncate_metadata(path):
    f = path / "meta" / "metadata"
    f.write_bytes(f.read_bytes()[:25])


def _delete_metadata_folder(path):
    shutil.rmtree(path / "meta")


DAMAGE = {
    "truncated data": (_truncate_data, "its arrays cannot be read"),
    "random bytes over data": (_random_bytes_over_data, "do not match their sha256 checksum"),
    "missing metadata": (_delete_metadata, "its metadata cannot be read"),
    "truncated metadata": (_truncate_metadata, "its metadata cannot be read"),
    "no metadata folder": (_delete_metadata_folder, r"is incomplete \(no params/ or meta/\)"),
}


@pytest.fixture(scope="module")
def params():
    return mnist_zoo.mnist_mlp().init(key=jax.random.key(0))


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_is_one_line_error(tmp_path, params, kind):
    damage, message = DAMAGE[kind]
    path = checkpoints.save(tmp_path / "ck", params, {"note": kind})
    damage(path)
    with pytest.raises(checkpoints.CheckpointError, match=message) as info:
        checkpoints.restore(path, params)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_non_finite_values_are_refused_on_save_and_on_restore(tmp_path, params, monkeypatch):
    bad = jax.tree.map(np.asarray, params)
    bad["fc0"]["kernel"] = bad["fc0"]["kernel"].copy()
    bad["fc0"]["kernel"][0, :3] = [np.nan, np.inf, -np.inf]
    with pytest.raises(checkpoints.CheckpointError, match=r"\['fc0'\]\['kernel'\] holds 3 NaN or infinite"):
        checkpoints.save(tmp_path / "refused", bad)
    assert not (tmp_path / "refused").exists()
    # A checkpoint whose checksum matches NaN weights (written past the save check) is still refused.
    monkeypatch.setattr(checkpoints, "check_finite", lambda tree, what: None)
    path = checkpoints.save(tmp_path / "nan", bad)
    monkeypatch.undo()
    with pytest.raises(checkpoints.CheckpointError, match="holds 3 NaN or infinite values"):
        checkpoints.restore(path, params)


def test_old_format_and_foreign_metadata_are_refused(tmp_path, params):
    old = tmp_path / "old"
    (old / "params").mkdir(parents=True)
    (old / "meta.json").write_text("{}")
    with pytest.raises(checkpoints.CheckpointError, match="older jaxfool format without a checksum; write it again"):
        checkpoints.restore(old, params)
    path = checkpoints.save(tmp_path / "ck", params)
    (path / "meta" / "metadata").write_text('{"format": "something else"}')
    with pytest.raises(checkpoints.CheckpointError, match="lacks the jaxfool-checkpoint/2 format and checksum"):
        checkpoints.read_metadata(path)


def test_checksum_covers_values_names_and_dtypes():
    a = {"w": np.arange(4, dtype=np.float32)}
    assert checkpoints.tree_digest(a) == checkpoints.tree_digest({"w": np.arange(4, dtype=np.float32)})
    others = [{"w": np.arange(4, dtype=np.float32)[::-1]}, {"v": a["w"]}, {"w": a["w"].astype(np.float64)},
              {"w": a["w"].reshape(2, 2)}]
    assert len({checkpoints.tree_digest(t) for t in [a, *others]}) == 5


def test_stale_temporary_folder_is_removed_by_the_next_save(tmp_path, params):
    stale = tmp_path / f"ck{checkpoints.TMP_SUFFIX}"
    (stale / "params").mkdir(parents=True)
    (stale / "meta").mkdir()
    assert not checkpoints.exists(stale)
    checkpoints.save(tmp_path / "ck", params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_follow_the_umask(tmp_path, params, umask):
    old = os.umask(umask)
    try:
        path = checkpoints.save(tmp_path / "ck", params, {"a": 1})
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [path, *path.rglob("*")] if p.is_dir()}
    assert modes == {0o777 & ~umask}
    modes = {stat.S_IMODE(p.stat().st_mode) for p in path.rglob("*") if p.is_file()}
    assert modes == {0o666 & ~umask}


@pytest.fixture(scope="module")
def tiny_data():
    return load_mnist(DataConfig(source="embedded", max_train=100, max_test=50))


TINY = TrainConfig(epochs=1, batch_size=50)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    cache = tmp_path_factory.mktemp("pristine")
    params, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=cache)
    assert info["trained_now"] and sorted(p.name for p in cache.iterdir()) == [pathlib.Path(info["checkpoint"]).name]
    return params, pathlib.Path(info["checkpoint"])


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_model_cache_retrains_a_damaged_checkpoint(tmp_path, tiny_data, trained, kind, caplog):
    params, pristine = trained
    path = tmp_path / pristine.name
    shutil.copytree(pristine, path)
    DAMAGE[kind][0](path)
    with caplog.at_level(logging.WARNING, logger="jaxfool.zoo"):
        retrained, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=tmp_path)
    # jaxfool's own records only: after a failed concurrent read, orbax's unretrieved asyncio tasks log
    # "Task exception was never retrieved" whenever the garbage collector frees them (this test was flaky).
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("jaxfool")]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "making it again" in warnings[0]
    assert info["trained_now"]
    jax.tree.map(np.testing.assert_array_equal, retrained, params)  # the same training, bit for bit
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.name + ".damaged"])
    again, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=tmp_path)
    assert not info["trained_now"]
    jax.tree.map(np.testing.assert_array_equal, again, params)


def _unwritable_cache(tmp_path: pathlib.Path, how: str) -> pathlib.Path:
    if how == "under a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "models"
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir(mode=0o555)
    return tmp_path / "ro"


@pytest.mark.parametrize("how", ["under a file", "read-only folder"])
def test_unwritable_cache_keeps_the_training(tmp_path, tiny_data, trained, how, caplog):
    cache = _unwritable_cache(tmp_path, how)
    with caplog.at_level(logging.WARNING):
        params, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=cache)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not writable" in warnings[0] and "\n" not in warnings[0]
    assert info["trained_now"]
    jax.tree.map(np.testing.assert_array_equal, params, trained[0])


def test_failed_final_save_keeps_the_training_and_its_work_folder(tmp_path, tiny_data, trained, monkeypatch, caplog):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "save", full)
    with caplog.at_level(logging.WARNING):
        params, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=tmp_path)
    assert "No space left on device" in caplog.text and info["trained_now"]
    jax.tree.map(np.testing.assert_array_equal, params, trained[0])
    monkeypatch.undo()
    # The work folder holds the last epoch: the next call saves it without training again.
    assert [p.name for p in tmp_path.iterdir()] == [trained[1].name + ".partial"]
    params, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), tiny_data, TINY, cache_dir=tmp_path)
    assert info["trained_now"] and [p.name for p in tmp_path.iterdir()] == [trained[1].name]
    jax.tree.map(np.testing.assert_array_equal, params, trained[0])
