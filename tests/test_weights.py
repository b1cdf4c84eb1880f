"""Weights: Keras HDF5 import, hash and layout errors, atomic orbax checkpoints, fetch offline, the CLI."""

from __future__ import annotations

import json
import pickle
import shutil

import h5py
import jax
import numpy as np
import pytest
import requests
from vgg_helpers import random_params, write_official_h5

from jaxfool import weights as W
from jaxfool.models import forward
from jaxfool.models.vgg16 import vgg16

VGG16_FILES = W.ARCHITECTURES["vgg16"].keras_files


def leftovers(folder):
    """Files or folders a failed write could have left behind."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def notop():
    return random_params(False, seed=1)


@pytest.fixture(scope="module")
def notop_file(tmp_path_factory, notop):
    path = tmp_path_factory.mktemp("h5") / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_official_h5(path, notop)
    return path


def test_import_official_layout_roundtrips(notop_file, notop):
    params, info = W.import_keras_h5(notop_file, check_hash=False)
    assert info == {
        "model": "vgg16", "source": "keras_h5", "file": notop_file.name, "md5": W.file_digest(notop_file), "include_top": False,
        "preprocessing": "caffe",
    }
    assert jax.tree.structure(params) == jax.tree.structure(notop)
    jax.tree.map(np.testing.assert_array_equal, params, notop)
    assert params["block1_conv1"]["kernel"].shape == (3, 3, 3, 64)


def test_hash_is_checked_by_default(notop_file):
    with pytest.raises(W.WeightsError, match=r"MD5 [0-9a-f]{32} is not that of an official Keras file"):
        W.import_keras_h5(notop_file)


def test_truncated_file_is_a_clear_error_and_converts_to_nothing(tmp_path, notop_file):
    truncated = tmp_path / "in" / "truncated.h5"
    truncated.parent.mkdir()
    truncated.write_bytes(notop_file.read_bytes()[: notop_file.stat().st_size // 2])
    with pytest.raises(W.WeightsError, match="not a readable HDF5 file.*truncated or corrupt"):
        W.import_keras_h5(truncated, check_hash=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(W.WeightsError, match="MD5"):
        W.convert(truncated, out / "vgg16")
    with pytest.raises(W.WeightsError, match="truncated"):
        W.convert(truncated, out / "vgg16", check_hash=False)
    assert leftovers(out) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["block2_conv1"].update(kernel=np.zeros((3, 3, 64, 64), np.float32)),
         r"block2_conv1/kernel has shape \(3, 3, 64, 64\), VGG16 needs \(3, 3, 64, 128\)"),
        (lambda p: p.pop("block5_conv3"), r"missing \['block5_conv3'\]"),
        (lambda p: p.update(extra_conv={"kernel": np.zeros(1), "bias": np.zeros(1)}), r"unexpected \['extra_conv'\]"),
    ],
)
def test_wrong_layers_or_shapes_are_clear_errors(tmp_path, notop, edit, message):
    params = {name: dict(p) for name, p in notop.items()}
    edit(params)
    path = tmp_path / "bad.h5"
    write_official_h5(path, params)
    with pytest.raises(W.WeightsError, match=message):
        W.convert(path, tmp_path / "ckpt", check_hash=False)
    assert leftovers(tmp_path) == ["bad.h5"]


def test_not_a_legacy_weights_file(tmp_path):
    path = tmp_path / "new_layout.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers").create_group("conv2d").create_dataset("vars/0", data=np.zeros(3))
    with pytest.raises(W.WeightsError, match="no root attribute 'layer_names'"):
        W.import_keras_h5(path, check_hash=False)
    with pytest.raises(W.WeightsError, match="no weights file"):
        W.import_keras_h5(tmp_path / "missing.h5")
    with pytest.raises(W.WeightsError, match="unknown weights file type"):
        W.import_weights(tmp_path / "weights.npz")


def test_checkpoint_restores_bit_identical_logits(tmp_path, notop_file):
    ckpt = W.convert(notop_file, tmp_path / "vgg16_notop", check_hash=False)
    assert leftovers(tmp_path) == ["vgg16_notop"]
    meta = W.read_metadata(ckpt)
    assert meta["source"] == "keras_h5" and meta["include_top"] is False and meta["md5"] == W.file_digest(notop_file)
    imported, _ = W.import_keras_h5(notop_file, check_hash=False)
    restored, restored_meta = W.restore_checkpoint(ckpt)
    assert restored_meta == meta
    net = vgg16(include_top=False)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    a, _ = forward(net, imported, x)
    b, _ = forward(net, restored, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # vgg16_params on the checkpoint folder gives the same parameters again.
    again = W.vgg16_params(ckpt, include_top=False)
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), v), again, restored)
    with pytest.raises(W.WeightsError, match="no classifier"):
        W.vgg16_params(ckpt, include_top=True)


def test_checkpoint_writes_are_atomic(tmp_path, notop, monkeypatch):
    dest = tmp_path / "ckpt"
    W.save_checkpoint(notop, dest, metadata={"source": "test", "include_top": False})
    with pytest.raises(W.WeightsError, match="already exists"):
        W.save_checkpoint(notop, dest, metadata={"include_top": False})
    # A failure in the middle of an overwrite keeps the old checkpoint and leaves no temporary folder.
    async def boom(*args, **kwargs):  # the metadata write fails (orbax's JSON writer)
        raise OSError("disk full")

    import orbax.checkpoint as ocp

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", boom)
    with pytest.raises(OSError, match="disk full"):
        W.save_checkpoint(notop, dest, metadata={"include_top": False}, overwrite=True)
    assert leftovers(tmp_path) == ["ckpt"]
    assert W.read_metadata(dest)["source"] == "test"


def test_restore_rejects_non_checkpoints(tmp_path, notop):
    (tmp_path / "empty").mkdir()
    with pytest.raises(W.WeightsError, match="not a jaxfool weights checkpoint"):
        W.restore_checkpoint(tmp_path / "empty")
    bad = {name: dict(p) for name, p in notop.items()}
    bad["block1_conv1"]["kernel"] = np.zeros((3, 3, 3, 8), np.float32)
    with pytest.raises(W.WeightsError, match="block1_conv1/kernel has shape"):
        W.save_checkpoint(bad, tmp_path / "bad", metadata={"include_top": False})
    assert leftovers(tmp_path) == ["empty"]


def offline(progress):
    def download(url, output_file, pooch):
        raise requests.exceptions.ConnectionError(f"Failed to resolve {url}: Name or service not known")

    return download


def local_server(folder):
    """A pooch downloader that serves ``folder`` (a stand-in for Keras' bucket), as pooch calls downloaders."""
    def make(progress):
        def download(url, output_file, pooch):
            shutil.copyfile(folder / url.rsplit("/", 1)[-1], output_file)

        return download

    return make


@pytest.mark.parametrize("model", ["vgg16", "resnet50", "resnet101"])
def test_imagenet_weights_offline_fail_at_once_with_instructions(tmp_path, monkeypatch, capsys, model):
    monkeypatch.setattr(W.downloads, "_downloader", offline)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.keras/models cache either
    dest = tmp_path / "cache"
    expected = dest / W.ARCHITECTURES[model].keras_files[True][0]
    with pytest.raises(W.WeightsError, match=f"cannot download .*put it at {expected} .*fetch {model}`"):
        W.load_params(model, "imagenet", cache_dir=dest)
    assert leftovers(dest) == []
    assert W.main(["fetch", model, "--dest", str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download") and err.count("\n") == 1


def test_fetch_uses_a_local_file_and_checks_its_hash(tmp_path, notop_file, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dest = tmp_path / "cache"
    dest.mkdir()
    (dest / VGG16_FILES[False][0]).write_bytes(notop_file.read_bytes())  # right name, not the official bytes
    assert W.main(["fetch", "vgg16", "--no-top", "--dest", str(dest)]) == 1
    assert "is not that of an official Keras file" in capsys.readouterr().err
    assert leftovers(dest) == [VGG16_FILES[False][0]]


def test_cli_convert(tmp_path, notop_file, capsys):
    dest = tmp_path / "converted"
    assert W.main(["convert", str(notop_file), "--dest", str(dest), "--no-hash-check"]) == 0
    assert capsys.readouterr().out.strip() == str(dest.absolute())
    assert W.read_metadata(dest)["include_top"] is False
    assert W.main(["convert", str(notop_file), "--dest", str(dest), "--no-hash-check"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_random_weights_need_a_key():
    with pytest.raises(ValueError, match="needs a PRNG key"):
        W.vgg16_params("random", include_top=False)
    a = W.vgg16_params("random", include_top=False, key=jax.random.key(0))
    b = W.vgg16_params("random", include_top=False, key=jax.random.key(0))
    assert set(a) == set(W.param_shapes(False))
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_param_shapes_match_the_module():
    params = jax.eval_shape(lambda: vgg16().init(key=jax.random.key(0)))
    assert jax.tree.map(lambda a: a.shape, params) == {
        name: {"bias": s["bias"], "kernel": s["kernel"]} for name, s in W.param_shapes(True).items()
    }


def test_torchvision_export_roundtrips(tmp_path, notop):
    torch = pytest.importorskip("torch")
    state = W.to_torchvision(notop)
    assert state["features.0.weight"].shape == (64, 3, 3, 3) and "classifier.0.weight" not in state
    path = tmp_path / "export.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    back, _ = W.import_torchvision(path)
    jax.tree.map(np.testing.assert_array_equal, back, notop)
    # fc1's row permutation (checked against PyTorch in test_vgg16) and its inverse, on a thin kernel.
    kernel = np.random.default_rng(0).normal(size=(25088, 2)).astype(np.float32)
    torch_rows = W.fc1_rows(kernel, to_torch=True)
    np.testing.assert_array_equal(W.fc1_rows(torch_rows, to_torch=False), kernel)
    # Row h*7*512 + w*512 + c (NHWC) becomes row c*49 + h*7 + w (NCHW).
    np.testing.assert_array_equal(torch_rows[5 * 49 + 3 * 7 + 6], kernel[3 * 7 * 512 + 6 * 512 + 5])


def test_torchvision_files_are_checked(tmp_path, notop):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(v) for k, v in W.to_torchvision(notop).items()}
    good = tmp_path / "vgg16_notop.pth"
    torch.save(state, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100_000])
    with pytest.raises(W.WeightsError, match="not a loadable PyTorch state dict"):
        W.import_torchvision(truncated)
    # torch.hub names downloads by their SHA-256 prefix; a name that does not match its bytes is corrupt.
    misnamed = tmp_path / "vgg16-deadbeef.pth"
    misnamed.write_bytes(good.read_bytes())
    with pytest.raises(W.WeightsError, match="does not start with the deadbeef in its name"):
        W.import_torchvision(misnamed)
    renamed = tmp_path / f"vgg16-{W.file_digest(good, 'sha256')[:8]}.pth"
    renamed.write_bytes(good.read_bytes())
    assert W.import_torchvision(renamed)[1]["sha256"] == W.file_digest(good, "sha256")
    bn = dict(state, **{"features.1.running_mean": torch.zeros(64)})
    torch.save(bn, tmp_path / "bn.pth")
    with pytest.raises(W.WeightsError, match="batch-norm VGG"):
        W.import_torchvision(tmp_path / "bn.pth")


def test_safetensors_import(tmp_path, notop):
    safetensors = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "vgg16_notop.safetensors"
    safetensors.save_file(W.to_torchvision(notop), str(path))
    params, info = W.import_weights(path)
    assert info["source"] == "torchvision"
    jax.tree.map(np.testing.assert_array_equal, params, notop)


def test_fetch_downloads_checks_the_hash_and_converts(tmp_path, notop_file, notop, monkeypatch):
    # A local folder stands in for Keras' bucket; the published MD5 is swapped for the test file's.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    server = tmp_path / "server"
    server.mkdir()
    name = VGG16_FILES[False][0]
    (server / name).write_bytes(notop_file.read_bytes())
    monkeypatch.setattr(W.downloads, "_downloader", local_server(server))
    monkeypatch.setitem(W.ARCHITECTURES["vgg16"].keras_files, False, (name, W.file_digest(notop_file)))
    dest = tmp_path / "cache"
    assert W.fetch_vgg16(include_top=False, dest=dest) == dest / "vgg16_notop"
    assert leftovers(dest) == sorted([name, "vgg16_notop"])
    params = W.vgg16_params("imagenet", include_top=False, cache_dir=dest)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), params, notop)
    # A corrupted download is refused before it is renamed into place, and nothing is converted.
    (server / name).write_bytes(notop_file.read_bytes()[:-10] + b"0123456789")
    other = tmp_path / "cache2"
    with pytest.raises(W.WeightsError, match="downloaded .* has the wrong MD5"):
        W.fetch_vgg16(include_top=False, dest=other)
    assert leftovers(other) == []


def test_auto_uses_official_weights_only_when_already_on_disk(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = tmp_path / "cache"
    cache.mkdir()
    assert W.local_imagenet_weights(include_top=True, cache_dir=cache) is None
    with caplog.at_level("WARNING"):
        assert W.resolve_weights("auto", include_top=True, cache_dir=cache) == "random"
    assert "RANDOM weights" in caplog.text and "fetch vgg16`" in caplog.text
    # Keras' own cache holds the official file: found without any download.
    keras_h5 = tmp_path / "home" / ".keras" / "models" / VGG16_FILES[True][0]
    keras_h5.parent.mkdir(parents=True)
    keras_h5.touch()
    assert W.local_imagenet_weights(include_top=True, cache_dir=cache) == keras_h5
    assert W.local_imagenet_weights(include_top=False, cache_dir=cache) is None  # the notop file is another one
    # A converted checkpoint with the classifier serves both, and comes before the .h5.
    (cache / "vgg16").mkdir()
    assert W.local_imagenet_weights(include_top=False, cache_dir=cache) == cache / "vgg16"
    assert W.resolve_weights("auto", include_top=False, cache_dir=cache) == "imagenet"
    for other in ("imagenet", "random", "some/file.h5"):
        assert W.resolve_weights(other, cache_dir=cache) == other


class Payload:
    """A pickled object that is not a tensor (a real attack would run code in __reduce__)."""


def test_a_pth_holding_objects_other_than_tensors_is_refused_for_safety(tmp_path, notop):
    torch = pytest.importorskip("torch")
    path = tmp_path / "vgg16_with_object.pth"
    state = {k: torch.from_numpy(v) for k, v in W.to_torchvision(notop).items()}
    torch.save({**state, "extra": Payload()}, path)
    with pytest.raises(W.WeightsError, match=r"holds objects other than tensors \(.*Payload\) and is refused for safety") as e:
        W.import_torchvision(path)
    assert "\n" not in str(e.value) and "truncated" not in str(e.value) and "weights_only=False" not in str(e.value)
    # Even a plain pickle (not torch's zip format) is never unpickled.
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(W.WeightsError, match="refused for safety|not a loadable PyTorch state dict"):
        W.import_torchvision(raw)
    with pytest.raises(W.WeightsError):
        W.convert(path, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_non_finite_weights_are_refused_before_anything_is_written(tmp_path, notop):
    params = {name: dict(p) for name, p in notop.items()}
    kernel = params["block3_conv2"]["kernel"].copy()
    kernel[0, 0, 0, 0] = np.nan
    params["block3_conv2"]["kernel"] = kernel
    path = tmp_path / "nan.h5"
    write_official_h5(path, params)
    with pytest.raises(W.WeightsError, match="block3_conv2/kernel holds non-finite values"):
        W.convert(path, tmp_path / "ckpt", check_hash=False)
    with pytest.raises(W.WeightsError, match="non-finite"):
        W.save_checkpoint(params, tmp_path / "ckpt", metadata={"include_top": False})
    assert leftovers(tmp_path) == ["nan.h5"]


def test_a_damaged_checkpoint_is_refused_in_one_line(tmp_path, notop):
    ckpt = W.save_checkpoint(notop, tmp_path / "ckpt", metadata={"source": "test", "include_top": False})
    # Overwrite the stored array data: orbax reads NaNs, or fails to decode.
    data = sorted((p for p in (ckpt / "params").rglob("*") if p.is_file() and p.stat().st_size > 1 << 20),
                  key=lambda p: p.stat().st_size)
    assert data, "orbax wrote no array data files"
    for p in data:
        p.write_bytes(b"\xff" * p.stat().st_size)
    with pytest.raises(W.WeightsError) as e:
        W.restore_checkpoint(ckpt)
    assert "\n" not in str(e.value) and ("damaged" in str(e.value) or "non-finite" in str(e.value))
    for meta in (p for p in (ckpt / "meta").rglob("*") if p.is_file()):
        meta.write_text("{not json")
    with pytest.raises(W.WeightsError, match="metadata cannot be read.*convert it again") as e:
        W.restore_checkpoint(ckpt)
    assert "\n" not in str(e.value)
