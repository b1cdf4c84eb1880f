"""Training killed (SIGKILL, SIGINT) mid-epoch and mid-save resumes and ends bitwise where an uninterrupted run does."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from jaxfool import checkpoints

# A tiny training through the model cache; HANG_STEP / HANG_SAVE make the n-th train step or the n-th JSON item
# save (one per epoch checkpoint, one for the final model) block, so the test kills it at a known point.
WORKER = r"""
import pathlib, sys, time
import jax, numpy as np, orbax.checkpoint as ocp
from jaxfool import zoo
from jaxfool.data import DataConfig, load_mnist
from jaxfool.models import mnist_zoo
from jaxfool.train import TrainConfig

train_module = sys.modules["jaxfool.train"]  # the module: jaxfool.train is also the re-exported function

cache, out, hang_step, hang_save = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def hang(where):
    # Written aside and renamed: the test polls for the marker and must never read it half-written.
    out.with_suffix(".hung-tmp").write_text(where)
    out.with_suffix(".hung-tmp").rename(out.with_suffix(".hung"))
    time.sleep(600)

make_step = train_module._make_step
def counting_make_step(*args, **kwargs):
    step, calls = make_step(*args, **kwargs), [0]
    def counted(*a):
        calls[0] += 1
        if calls[0] == hang_step:
            hang("step")
        return step(*a)
    return counted
train_module._make_step = counting_make_step

json_save, saves = ocp.JsonCheckpointHandler.async_save, [0]
async def slow_save(self, directory, *args, **kwargs):
    saves[0] += 1
    if saves[0] == hang_save:
        hang(str(directory))
    return await json_save(self, directory, *args, **kwargs)
ocp.JsonCheckpointHandler.async_save = slow_save

data = load_mnist(DataConfig(source="embedded", max_train=100, max_test=50))
params, info = zoo.load_or_train(mnist_zoo.mnist_mlp(), data, TrainConfig(epochs=4, batch_size=20), cache_dir=cache)
np.savez(out, losses=np.array(info["losses"]), *jax.tree.leaves(params))
"""
STEPS_PER_EPOCH = 5


def _start(cache, out, hang_step=0, hang_save=0):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(cache), str(out), str(hang_step), str(hang_save)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when_hung(proc, out, sig):
    marker = pathlib.Path(out).with_suffix(".hung")
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, f"worker ended before hanging:\n{proc.communicate()[1][-3000:]}"
        assert time.time() < deadline, "worker never reached the hang point"
        time.sleep(0.05)
    where = marker.read_text()
    marker.unlink()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    return where, err


def _steps(work: pathlib.Path) -> list[int]:
    """The committed epoch checkpoints in the work folder."""
    return sorted(int(p.name) for p in work.iterdir() if p.name.isdigit())


def test_killed_training_resumes_bitwise(tmp_path):
    reference = _start(tmp_path / "ref_cache", tmp_path / "ref.npz")
    cache = tmp_path / "cache"
    out = tmp_path / "out.npz"

    # 1. SIGKILL in the middle of epoch 2 (3 of its 5 steps done): epoch 1 is saved, nothing is final.
    _kill_when_hung(_start(cache, out, hang_step=STEPS_PER_EPOCH + 4), out, signal.SIGKILL)
    (work,) = cache.glob("*.partial")
    final = work.with_name(work.name.removesuffix(".partial"))
    assert _steps(work) == [1] and not final.exists()

    # 2. Resumes at epoch 2; SIGKILL in the middle of epoch 2's save: orbax's temporary folder is left, epoch 1
    #    is still the last complete one.
    where, _ = _kill_when_hung(_start(cache, out, hang_save=1), out, signal.SIGKILL)
    assert checkpoints.TMP_SUFFIX in where and _steps(work) == [1]
    assert any(checkpoints.TMP_SUFFIX in p.name for p in work.iterdir())

    # 3. Resumes at epoch 2 again (the temporary folder is cleaned); Ctrl-C in the middle of epoch 3.
    _, err = _kill_when_hung(_start(cache, out, hang_step=STEPS_PER_EPOCH + 2), out, signal.SIGINT)
    assert "KeyboardInterrupt" in err and _steps(work) == [2]
    assert not any(checkpoints.TMP_SUFFIX in p.name for p in work.iterdir())

    # 4. Resumes at epoch 3, trains epochs 3 and 4; SIGKILL in the middle of the final model's save (the third
    #    JSON save): nothing at the model's path is taken for a finished model.
    where, _ = _kill_when_hung(_start(cache, out, hang_save=3), out, signal.SIGKILL)
    assert where.startswith(str(final) + checkpoints.TMP_SUFFIX) and _steps(work) == [4]
    assert not checkpoints.exists(final) and not final.exists()

    # 5. Nothing left to train: saves the model, removes the work and temporary folders.
    last = _start(cache, out)
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err[-3000:]
    assert [p.name for p in cache.iterdir()] == [final.name] and checkpoints.exists(final)

    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err[-3000:]
    want, got = np.load(tmp_path / "ref.npz"), np.load(out)
    assert sorted(want.files) == sorted(got.files) and len(want.files) == 7  # 6 arrays and the losses
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
