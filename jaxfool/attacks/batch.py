"""Running an attack on a batch, or a sweep of settings over a batch, as one jitted call.

:func:`perturb` vmaps an :class:`~jaxfool.attacks.Attack` over examples; :func:`sweep` vmaps that over a stack of
K :class:`~jaxfool.attacks.AttackParams`, so K settings x N images is a single compiled program that is reused
whenever only the values change. Both validate concrete inputs first (one-line errors) and accept inputs already
placed on a device mesh (:mod:`jaxfool.attacks.sharding`): the computation follows the data's sharding.

The model is passed *through* ``jit`` as a pytree (:func:`network_model` or any ``jax.tree_util.Partial``), so
its weights are traced arguments: a new set of weights reuses the compiled attack, and large weights are never
baked into the program as constants. A plain function also works; it is compared by identity, so a fresh closure
compiles again and its captured weights become constants.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from jax.tree_util import Partial

from jaxfool import checks, xla
from jaxfool.attacks.gradient import Attack
from jaxfool.attacks.loop import AttackParams, Model
from jaxfool.models.layers import canonical_conv_gradients
from jaxfool.models.network import Network, Params, forward

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class _NetworkLogits:
    """``(params, x) -> logits`` for one network; hashable, so ``Partial`` treedefs compare equal by value."""

    net: Network
    canonical_convs: bool = True

    def __call__(self, params: Params, x: Array) -> Array:
        if not self.canonical_convs:
            return forward(self.net, params, x)[0]
        with canonical_conv_gradients():
            return forward(self.net, params, x)[0]


def network_model(net: Network, params: Params, *, canonical_convs: bool = True) -> Partial:
    """The model function ``x [batch, H, W, C] -> logits`` of ``net`` as a pytree whose leaves are ``params``.

    Use it rather than :func:`jaxfool.models.logits_fn` when passing the model to :func:`perturb`/:func:`sweep`
    or through your own ``jit``: the weights stay arguments, so new weights do not recompile. With
    ``canonical_convs`` the model's ``flax.linen.Conv`` layers run under
    :func:`jaxfool.models.layers.canonical_conv_gradients` (same values; input gradients 3-4x faster inside the
    attack's step loop on CPU).
    """
    return Partial(_NetworkLogits(net, canonical_convs), params)


def perturb(
    attack: Attack,
    model: Model,
    x: Array,
    labels: Array,
    params: AttackParams,
    *,
    key: Array,
    bounds: tuple[float, float],
) -> Array:
    """Attacks every example of a batch in one jitted call.

    Args:
        attack: the attack.
        model: ``x [batch, H, W, C] -> logits [batch, num_classes]`` (see the module docstring).
        x: ``[N, H, W, C]`` inside ``bounds``.
        labels: ``[N]`` true classes, or targets for a targeted attack.
        params: scalar hyperparameters.
        key: PRNG key; example ``i`` uses ``jax.random.split(key, N)[i]``.
        bounds: the model's valid ``(low, high)`` input range.

    Returns:
        ``[N, H, W, C]`` adversarial examples.
    """
    bounds, params = _validate(attack, model, x, labels, params, bounds, sweep=False)
    return _perturb(attack, _as_pytree(model), x, jnp.asarray(labels, jnp.int32), params, key, bounds)


def sweep(
    attack: Attack,
    model: Model,
    x: Array,
    labels: Array,
    params: AttackParams,
    *,
    key: Array,
    bounds: tuple[float, float],
) -> Array:
    """Attacks a batch under K settings at once: ``params`` fields are ``[K]`` (a scalar field is shared).

    Setting ``k`` uses the same per-example keys as :func:`perturb` would, so ``sweep(...)[k]`` equals
    ``perturb(..., params=params[k])``. Changing the values (not the number K) reuses the compiled program.

    Returns:
        ``[K, N, H, W, C]`` adversarial examples.
    """
    bounds, params = _validate(attack, model, x, labels, params, bounds, sweep=True)
    return _sweep(attack, _as_pytree(model), x, jnp.asarray(labels, jnp.int32), params, key, bounds)


def stack_params(settings: list[AttackParams]) -> AttackParams:
    """Stacks K scalar :class:`AttackParams` into one with ``[K]`` fields, for :func:`sweep`."""
    return AttackParams(*(jnp.asarray([getattr(s, f) for s in settings], jnp.float32) for f in AttackParams._fields))


def _attack_batch(attack, model, x, labels, params, key, bounds):
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xi, yi, ki: attack(model, xi, yi, params, key=ki, bounds=bounds))(x, labels, keys)


@functools.partial(xla.jit, static_argnames=("attack", "bounds"))
def _perturb(attack, model, x, labels, params, key, bounds):
    run = lambda model, x, labels, params, key: _attack_batch(attack, model, x, labels, params, key, bounds)
    return _partitioned(run, model, x, labels, params, key, sweep=False)


@functools.partial(xla.jit, static_argnames=("attack", "bounds"))
def _sweep(attack, model, x, labels, params, key, bounds):
    run = lambda model, x, labels, params, key: jax.vmap(
        lambda p: _attack_batch(attack, model, x, labels, p, key, bounds)
    )(params)
    return _partitioned(run, model, x, labels, params, key, sweep=True)


def _partitioned(run, model, x, labels, params, key, *, sweep: bool):
    """``run(model, x, labels, params, key)``, with any *explicitly* sharded mesh axes switched to automatic partitioning.

    Under explicit sharding every vmapped operand must agree on its mesh axis and JAX's batching rules for
    convolutions merge the sweep and batch axes in ways explicit mode rejects; automatic (Shardy/GSPMD)
    partitioning of the same program has no such constraints. The output keeps the inputs' leading axes.
    """
    x_sharding, p_sharding = jax.typeof(x).sharding, jax.typeof(params.eps).sharding
    mesh = x_sharding.mesh if x_sharding.mesh.axis_names else p_sharding.mesh
    explicit = tuple(getattr(mesh, "explicit_axes", ()))
    if not explicit:
        return run(model, x, labels, params, key)
    lead = lambda sharding: sharding.spec[0] if len(sharding.spec) else None
    spec = PartitionSpec(lead(p_sharding), lead(x_sharding)) if sweep else PartitionSpec(lead(x_sharding))
    auto = jax.sharding.auto_axes(run, axes=explicit, out_sharding=NamedSharding(mesh, spec))
    return auto(model, x, labels, params, key)


@xla.jit
def _top1(model, x):
    # Module-level: one compiled program per model structure and batch shape, across all callers and calls.
    return model(x).argmax(-1)


def predict_labels(model: Model, x: Array | np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """Top-1 classes ``[N]`` of ``x: [N, H, W, C]``, ``batch_size`` examples per compiled call."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    model = _as_pytree(model)
    out = [np.asarray(_top1(model, jnp.asarray(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.int32)


def _as_pytree(model: Model) -> Partial:
    return model if isinstance(model, Partial) else Partial(model)


def _is_concrete(*trees: Any) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _validate(attack, model, x, labels, params, bounds, *, sweep: bool) -> tuple[tuple[float, float], AttackParams]:
    """One-line errors for bad arguments; returns normalised ``bounds`` and float32 ``params``."""
    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be an Attack (see jaxfool.attacks.get_attack), got {type(attack).__name__}")
    if not isinstance(params, AttackParams):
        raise TypeError(f"params must be AttackParams (e.g. attack.params(eps=0.3)), got {type(params).__name__}")
    if len(bounds) != 2 or not float(bounds[0]) < float(bounds[1]):
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
    bounds = (float(bounds[0]), float(bounds[1]))
    params = AttackParams(*(jnp.asarray(v, jnp.float32) for v in params))
    if sweep:
        sizes = {np.shape(v)[0] for v in params if np.ndim(v) == 1}
        if len(sizes) != 1 or any(np.ndim(v) > 1 for v in params):
            raise ValueError(f"sweep params must be scalars or [K] vectors of one length K, got {_shapes(params)}")
        k = sizes.pop()
        params = AttackParams(*(jnp.broadcast_to(v, (k,)) for v in params))
    elif any(np.ndim(v) for v in params):
        raise ValueError(f"perturb params must be scalars, got {_shapes(params)}; use sweep for [K] settings")
    if not _is_concrete(x, labels, params):
        return bounds, params  # called under the caller's own transformation: nothing concrete to check
    checks.check_images(_local(x), _example_shape(model), bounds, batched=True, what="attack input", floating=True,
                        nonempty=True)
    dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype  # a global array cannot be fetched
    if np.shape(labels) != (len(x),) or not np.issubdtype(dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(x)},), got {dtype} {np.shape(labels)}")
    labels = _local(labels)
    try:
        out = jax.eval_shape(model, jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), jnp.float32))
    except Exception as e:  # noqa: BLE001 -- re-raised as one line naming the input shape
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"the model cannot run on inputs of shape {tuple(np.shape(x)[1:])}: {first}") from None
    if len(out.shape) != 2 or out.shape[0] != 1:
        raise ValueError(f"the model must map [batch, H, W, C] to logits [batch, classes], got shape {out.shape}")
    if labels.size and not (0 <= labels.min() and labels.max() < out.shape[1]):
        raise ValueError(f"labels must be class indices in 0..{out.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    eps, rel_step, decay, prob = (_local(v) for v in params)
    if not all(np.isfinite(v).all() for v in (eps, rel_step, decay, prob)):
        raise ValueError("attack params contain NaN or infinite values")
    if (eps < 0).any() or (rel_step < 0).any() or (decay < 0).any() or ((prob < 0) | (prob > 1)).any():
        raise ValueError("attack params need eps >= 0, rel_step >= 0, decay >= 0 and 0 <= diversity_prob <= 1")
    return bounds, params


def _example_shape(model: Model) -> tuple[int | None, ...]:
    """The input shape of one example: the network's for :func:`network_model`, else any ``[H, W, C]``."""
    net = getattr(getattr(model, "func", None), "net", None)
    return tuple(net.input_shape) if isinstance(net, Network) else (None, None, None)


def _local(a: Any) -> np.ndarray:
    """The values of ``a`` that this process holds: all of them, or, for a global array that spans other
    processes' devices (a multi-host run), its addressable shards stacked; each process checks its own rows."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return np.concatenate([np.asarray(s.data).reshape(-1, *s.data.shape[1:]) for s in a.addressable_shards])
    return np.asarray(a)


def _shapes(params: AttackParams) -> str:
    return ", ".join(f"{name} {tuple(np.shape(v))}" for name, v in zip(AttackParams._fields, params, strict=True))
