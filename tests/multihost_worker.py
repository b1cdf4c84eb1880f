"""One process of a multi-host jaxfool run: a sharded attack sweep and a batch of all-layer Grad-CAMs over one
global mesh. ``tests/test_multihost.py`` starts two of these on localhost; on a cluster, start one per host.

    python tests/multihost_worker.py --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I --out DIR
"""

from __future__ import annotations

import argparse
import pathlib
import sys

# Runs as a script (python tests/multihost_worker.py): the repository root holds jaxfool and tests/.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

N, EPS = 8, (0.05, 0.1, 0.2)  # 8 examples over every device of every process; 3 sweep settings


def problem():
    """The tiny CNN, its weights and the batch every process (and the single-process reference) uses."""
    import jax
    import numpy as np

    from tests.explain_twins import tiny_cnn, tiny_params

    net = tiny_cnn(size=12, channels=3)
    x = np.random.default_rng(0).uniform(0.0, 1.0, (N, 12, 12, 3)).astype(np.float32)
    return net, tiny_params(net, seed=1), x, np.arange(N) % net.num_classes, jax.random.key(0)


def run(coordinator: str, num_processes: int, process_id: int) -> dict:
    """The multi-host recipe: every process runs this; each returns the whole (gathered) results."""
    from jaxfool import distributed

    distributed.initialize(coordinator, num_processes, process_id)  # before any other JAX call

    import jax
    import jax.numpy as jnp

    from jaxfool import attacks, explain

    net, params, x, labels, key = problem()
    mesh = jax.make_mesh((jax.device_count(),), ("batch",))  # all devices of all processes
    rows = slice(process_id * N // num_processes, (process_id + 1) * N // num_processes)  # this process's share
    xs, ys = distributed.global_batch((x[rows], labels[rows]), mesh, "batch")

    pgd = attacks.get_attack("pgd", steps=3)
    model = attacks.replicate(attacks.network_model(net, params), mesh)
    x_adv = attacks.sweep(pgd, model, xs, ys, pgd.params(jnp.array(EPS)), key=key, bounds=net.bounds)  # [3, N, ...]

    cams = distributed.map_examples(lambda p, xi, yi: explain.cams(net, p, xi, yi), mesh, "batch")
    maps = cams(attacks.replicate(params, mesh), xs, ys)  # {layer: [N, 12, 12]}, every layer from one backward

    return distributed.gather({"x_adv": x_adv, "cams": maps})  # NumPy, the whole batch, on every process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for this process's results")
    args = parser.parse_args()
    results = run(args.coordinator, args.num_processes, args.process_id)

    import jax
    import numpy as np

    args.out.mkdir(parents=True, exist_ok=True)
    cams = {f"cam/{layer}": v for layer, v in results["cams"].items()}
    np.savez(args.out / f"process{args.process_id}.npz", devices=jax.device_count(), x_adv=results["x_adv"], **cams)


if __name__ == "__main__":
    main()
