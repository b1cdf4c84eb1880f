"""Several hosts for real: two processes on localhost join one global mesh (``jax.distributed`` with CPU
collectives, 2 virtual CPU devices each), run a sharded PGD sweep and a batch of all-layer Grad-CAMs
(``tests/multihost_worker.py``, the README's recipe), gather them, and must equal the single-process results."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks, explain
from tests import multihost_worker as worker
from tests.explain_twins import assert_close

WORKER = pathlib.Path(worker.__file__)
LIMIT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(out: pathlib.Path) -> float:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    address = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "--coordinator", address, "--num-processes", "2", "--process-id", str(i),
             "--out", str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=max(1.0, 2 * LIMIT_S - (time.monotonic() - start)))[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    elapsed = time.monotonic() - start
    for i, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"process {i} failed:\n{log[-3000:]}"
    return elapsed


def test_two_processes_equal_the_single_process_run(tmp_path):
    elapsed = _run_two_processes(tmp_path)
    print(f"two processes, start to gathered results: {elapsed:.1f} s")
    results = [dict(np.load(tmp_path / f"process{i}.npz")) for i in range(2)]
    assert int(results[0].pop("devices")) == int(results[1].pop("devices")) == 4, "one mesh over 2 x 2 devices"
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])  # both processes gathered the whole

    net, params, x, labels, key = worker.problem()
    with jax.default_device(jax.devices("cpu")[0]):
        pgd = attacks.get_attack("pgd", steps=3)
        model = attacks.network_model(net, params)
        want_adv = attacks.sweep(pgd, model, x, labels, pgd.params(jnp.array(worker.EPS)), key=key, bounds=net.bounds)
        want_cams = jax.jit(jax.vmap(lambda xi, yi: explain.cams(net, params, xi, yi)))(x, labels)

    got = results[0]
    assert got["x_adv"].shape == (len(worker.EPS), worker.N, 12, 12, 3)
    assert not np.array_equal(got["x_adv"][0], x)
    np.testing.assert_allclose(got["x_adv"], want_adv, atol=1e-6)
    assert sorted(k.removeprefix("cam/") for k in got if k.startswith("cam/")) == sorted(want_cams)
    for layer, cam in want_cams.items():
        assert got[f"cam/{layer}"].shape == (worker.N, 12, 12) and float(np.abs(cam).max()) > 0
        assert_close(got[f"cam/{layer}"], cam)
    assert elapsed < LIMIT_S, f"the two processes took {elapsed:.0f} s (limit {LIMIT_S:.0f} s)"


def test_map_examples_runs_each_device_as_if_alone():
    # Inside jax.shard_map, differentiating a device-invariant value (here the zero taps of the all-layer CAMs)
    # psums its gradient over devices unless the map opts out; map_examples must give the per-example values.
    from jaxfool import distributed

    net, params, x, labels, _ = worker.problem()
    mesh = jax.make_mesh((4,), ("batch",), devices=jax.devices("cpu"))
    with jax.default_device(jax.devices("cpu")[0]):
        want = jax.jit(jax.vmap(lambda xi, yi: explain.cams(net, params, xi, yi)))(x, labels)
    cams = distributed.map_examples(lambda p, xi, yi: explain.cams(net, p, xi, yi), mesh, "batch")
    got = cams(attacks.replicate(params, mesh), *attacks.shard_leading((x, labels), mesh, "batch"))
    for layer in want:
        assert len(got[layer].sharding.device_set) == 4
        assert_close(got[layer], want[layer])
