"""Several processes (hosts), one global device mesh: start-up, feeding each process's rows, per-device maps, gathering.

Every process runs the same program. After :func:`initialize`, ``jax.devices()`` lists the devices of all
processes; a mesh over them (``jax.make_mesh``) is global, each process feeds only the rows its own devices hold
(:func:`global_batch`), the attacks' :func:`~jaxfool.attacks.sweep` and the per-example maps of :func:`map_examples`
run as one program over all devices, and :func:`gather` gives every process the whole result. The README's
multi-host recipe is ``tests/multihost_worker.py``, which ``tests/test_multihost.py`` runs as two processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from jaxfool import xla

Array = jax.Array


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_collectives: str = "gloo",
) -> None:
    """Joins this process to the others; call it first, before any JAX computation.

    Args:
        coordinator_address: ``"host:port"`` of process 0; ``None`` lets JAX read it from the cluster
            environment (SLURM, TPU pods, Open MPI), like the other two arguments.
        num_processes: how many processes take part.
        process_id: this process's index in ``0..num_processes - 1``.
        cpu_collectives: the cross-process collectives of the CPU backend (``"gloo"``; ``"mpi"`` needs an MPI
            library). Without them CPU processes cannot exchange data (gathers, resharding); GPUs and TPUs use
            their own.
    """
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must be in 0..{num_processes - 1} for num_processes={num_processes}")
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def global_batch(local: Any, mesh: Mesh, axis: str = "batch") -> Any:
    """The global arrays whose leading axis, split over mesh axis ``axis``, is every process's ``local`` rows.

    Process ``p`` passes its own rows (for a batch of N over P equal processes, rows ``p * N/P`` to
    ``(p + 1) * N/P``, in ``jax.process_index()`` order); nothing is copied between processes.

    Args:
        local: a pytree of ``[n_local, ...]`` arrays (host or device).
        mesh: a mesh over the devices of all processes.
        axis: the mesh axis of the batch.

    Returns:
        The pytree of global ``jax.Array`` s, ``[N, ...]``, sharded ``P(axis)``.
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {', '.join(mesh.axis_names)}")
    sharding = NamedSharding(mesh, jax.P(axis))
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local)


def map_examples(fn: Callable[..., Any], mesh: Mesh, axis: str = "batch") -> Callable[..., Any]:
    """``fn(shared, *example)`` on ONE example, as one jitted program over a batch sharded along ``axis``.

    Each device runs ``jax.vmap(fn)`` over its own rows (``jax.shard_map``): examples are independent, so the
    program has no cross-device communication at all. ``shared`` (model weights) is replicated.

    Args:
        fn: ``(shared, *example) -> outputs`` for one example (e.g. ``lambda p, x, y: explain.cams(net, p, x, y)``).
        mesh: the device mesh (all processes' devices for a multi-host run).
        axis: the mesh axis the batch is split over.

    Returns:
        ``(shared, *batch) -> outputs`` with a leading batch axis, sharded ``P(axis)``; each batch size must
        divide by the number of devices along ``axis``.
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {', '.join(mesh.axis_names)}")

    def per_device(shared, *batch):
        return jax.vmap(fn, in_axes=(None, *(0 for _ in batch)))(shared, *batch)

    def run(shared, *batch):
        # check_vma=False: each device runs fn as if alone. With JAX's varying-across-devices typing on, the
        # transpose of a device-invariant value (the weights, or zeros made inside fn, such as the taps that
        # all-layer CAMs differentiate) is a psum over devices: gradients would be summed over the other
        # devices' examples (measured: Grad-CAM off by 0.05-0.3 on 4 devices).
        mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(jax.P(), *(jax.P(axis) for _ in batch)),
                               out_specs=jax.P(axis), check_vma=False)
        return mapped(shared, *batch)

    return xla.jit(run)  # XLA:CPU's faster CNN options, as jaxfool's own programs (see jaxfool.xla)


def gather(tree: Any) -> Any:
    """Every process's copy of the whole of each global array in ``tree``, as NumPy arrays."""
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
