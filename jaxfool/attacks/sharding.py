"""Placing attack inputs on a device mesh: examples over one mesh axis, sweep settings over another.

:func:`~jaxfool.attacks.perturb` and :func:`~jaxfool.attacks.sweep` are plain ``jit`` programs, so the computation
follows the data: shard the images (and, for a sweep, the settings) with these helpers and the attack runs on every
device of the mesh, with the same result as on one device (examples are independent; per-example keys are split
from one key the same way whatever the placement). Multi-host: call ``jax.distributed.initialize()`` first and
build the mesh over ``jax.devices()`` (all hosts); see the README.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def shard_leading(tree: Any, mesh: Mesh, axis: str) -> Any:
    """Splits the leading axis of every array in ``tree`` over mesh axis ``axis`` (other axes replicated).

    Raises a one-line error if a leading size does not divide by the number of devices along ``axis``.
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {', '.join(mesh.axis_names)}")
    n = mesh.shape[axis]
    sharding = NamedSharding(mesh, PartitionSpec(axis))

    def put(leaf):
        if leaf.ndim == 0 or leaf.shape[0] % n:
            raise ValueError(
                f"leading size {leaf.shape[0] if leaf.ndim else 'scalar'} does not divide over the {n} devices of "
                f"mesh axis {axis!r}; pad or trim the batch to a multiple of {n}"
            )
        return jax.device_put(leaf, sharding)

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copies every array in ``tree`` to all devices of ``mesh`` (model weights, shared keys)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
