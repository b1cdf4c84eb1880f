"""Bring your own model: a Linen, NNX or Equinox model, or a plain function, as a jaxfool :class:`Network`.

Each adapter takes the model as its authors wrote it and returns ``(net, params)`` that every jaxfool function
accepts. Named activations are the model's own sub-layers, named by their paths, plus ``inputs`` (the pixels, before
any ``preprocess``) first and ``logits`` (the model's output) last:

* :func:`from_linen`: submodule outputs, intercepted with ``flax.linen.intercept_methods`` (``Conv_1``,
  ``encoder/block2/conv``); the parameters are the model's own tree;
* :func:`from_nnx`: submodule outputs by attribute path (``conv2``, ``blocks.3.conv``); the ``nnx.Param`` state
  becomes a plain nested dict, so weights are traced arguments rather than constants;
* :func:`from_equinox`: sub-modules, and functions in lists and tuples, by pytree path (``layers.0``,
  ``layers.2``);
* :func:`from_function`: ``f(params, x) -> logits``; only ``inputs`` and ``logits``.

Taps are added to the intercepted outputs, so all-layer methods still cost one forward and one backward pass.
A layer called more than once is named ``path``, then ``path#2``, ``path#3``; a layer whose path is ``inputs``
or ``logits`` becomes ``inputs#2`` / ``logits#2``. jaxfool's own models keep their :class:`Tap` convention for
one reason: it names values no submodule returns (``conv0`` of the MNIST CNN is the output of ReLU and pooling,
which are functions, not modules).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import get_opaque_trace_state

from jaxfool.models.network import Network, Params, Tap

Array = jax.Array
Preprocess = Callable[[Array], Array]

RESERVED = ("inputs", "logits")


class _Recorder:
    """Names intercepted outputs uniquely (``path``, ``path#2``, ...) and passes them through a :class:`Tap`."""

    def __init__(self, tap: Tap):
        self.tap = tap
        self.seen: dict[str, int] = {name: 1 for name in RESERVED}
        self.trace = get_opaque_trace_state()

    def __call__(self, path: str, out: Any, *, channels_first: bool = False) -> Any:
        if not isinstance(out, jax.Array) or not jnp.issubdtype(out.dtype, jnp.inexact):
            return out  # tuples, dicts, integer outputs: not an activation to tap
        if get_opaque_trace_state() != self.trace:
            return out  # called inside the model's own vmap/scan/jit: its value cannot leave that trace
        count = self.seen.get(path, 0) + 1
        self.seen[path] = count
        name = path if count == 1 else f"{path}#{count}"
        if channels_first and out.ndim == 3:  # Equinox [c, h, w] -> jaxfool's [h, w, c] and back
            return jnp.moveaxis(self.tap(name, jnp.moveaxis(out, 0, -1)), -1, 0)
        return self.tap(name, out)


class _LinenAdapter(nn.Module):
    """A Linen classifier whose submodule outputs are tapped; shares the model's scope, so same parameter tree."""

    model: nn.Module
    preprocess: Preprocess | None = None
    call_kwargs: tuple[tuple[str, Any], ...] = ()
    constants: _Constants | None = None  # collections other than "params" (batch_stats), read-only

    def setup(self):
        nn.share_scope(self, self.model)

    def apply(self, variables, *args, **kwargs):
        if self.constants is not None:
            variables = {**self.constants.value, **variables}
        return super().apply(variables, *args, **kwargs)

    def __call__(self, x: Array, taps: Mapping[str, Array] | None = None) -> dict[str, Array]:
        t = Tap(taps)
        x = t("inputs", x)
        if self.preprocess is not None:
            x = self.preprocess(x)
        record = _Recorder(t)
        depth = len(self.path)

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            path = context.module.path[depth:]
            if context.method_name != "__call__" or not path:
                return out
            return record("/".join(path), out)

        with nn.intercept_methods(interceptor):
            logits = self.model(x, **dict(self.call_kwargs))
        t("logits", logits)
        return t.activations


class _Constants:
    """Arrays a network reads but never differentiates or updates; hashed by identity (arrays cannot be)."""

    def __init__(self, value: Mapping[str, Any]):
        self.value = dict(value)


class _Adapter:
    """A model that is not a Linen module, with Linen's ``init``/``apply`` signatures (what :class:`Network`
    calls). Compared by identity: it holds arrays (initial weights, constant state), which cannot be hashed."""

    layer_help: str | None = None

    def __init__(self, initial: Params, preprocess: Preprocess | None):
        self.initial = initial
        self.preprocess = preprocess

    def init(self, key: Array, x: Array) -> dict[str, Params]:
        """The adapted model's own weights (``key`` is unused: the adapter cannot re-draw them)."""
        del key, x
        return {"params": self.initial}

    def apply(self, variables: Mapping[str, Params], x: Array, *, taps: Mapping[str, Array] | None = None):
        t = Tap(taps)
        x = t("inputs", x)
        if self.preprocess is not None:
            x = self.preprocess(x)
        t("logits", self.logits(variables["params"], x, _Recorder(t)))
        return t.activations

    def logits(self, params: Params, x: Array, record: _Recorder) -> Array:
        raise NotImplementedError


class _FunctionAdapter(_Adapter):
    layer_help = ("it is a plain function (from_function), whose only layers are 'inputs' and 'logits'; methods at "
                  "inner layers need the model itself: adapt it with from_linen, from_nnx or from_equinox")

    def __init__(self, f, initial, preprocess):
        super().__init__(initial, preprocess)
        self.f = f

    def logits(self, params, x, record):
        return self.f(params, x)


class _NnxAdapter(_Adapter):
    def __init__(self, graphdef, rest, initial, preprocess):
        super().__init__(initial, preprocess)
        self.graphdef, self.rest = graphdef, rest

    def logits(self, params, x, record):
        from flax import nnx

        model = nnx.merge(self.graphdef, params, self.rest)  # fresh objects: safe to retype below
        for path, module in nnx.iter_modules(model):
            if path and callable(module):
                module.__class__ = _tapped_nnx_class(type(module))
                _NNX_CALLS[id(module)] = (".".join(map(str, path)), record)
        try:
            return model(x)
        finally:
            for _, module in nnx.iter_modules(model):
                _NNX_CALLS.pop(id(module), None)


_NNX_CALLS: dict[int, tuple[str, _Recorder]] = {}
_NNX_CLASSES: dict[type, type] = {}


def _tapped_nnx_class(cls: type) -> type:
    """A subclass of ``cls`` whose ``__call__`` output goes through the forward pass's recorder."""
    if cls not in _NNX_CLASSES:
        def __call__(self, *args, **kwargs):
            out = cls.__call__(self, *args, **kwargs)
            path, record = _NNX_CALLS[id(self)]
            return record(path, out)

        _NNX_CLASSES[cls] = type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})
    return _NNX_CLASSES[cls]


class _EquinoxAdapter(_Adapter):
    def __init__(self, static, initial, preprocess):
        super().__init__(initial, preprocess)
        self.static = static

    def logits(self, params, x, record):
        import equinox as eqx

        def one(params, x, taps):  # Equinox models take one example, channels first
            t = Tap(taps)
            model = _tap_equinox(eqx.combine(params, self.static), (), _Recorder(t))
            return model(jnp.moveaxis(x, -1, 0)), t.activations

        taps = {k: v for k, v in record.tap.taps.items() if k not in RESERVED}
        out, acts = jax.vmap(one, in_axes=(None, 0, 0))(params, x, taps)
        for name, act in acts.items():  # already tapped inside; record in forward order
            record.tap.activations[name] = act
        return out


class _EqxTap:
    """Calls an Equinox sub-module (or function) and hands its output to the recorder under its path."""

    def __init__(self, inner, path, record):
        self.inner, self.path, self.record = inner, path, record

    def __call__(self, *args, **kwargs):
        return self.record(self.path, self.inner(*args, **kwargs), channels_first=True)

    def __getattr__(self, name):  # models may read attributes of their layers (e.g. `self.conv.out_channels`)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _tap_equinox(node, path: tuple, record: _Recorder):
    """Wraps every sub-module and function of a freshly combined Equinox model (mutated in place: a copy)."""
    import equinox as eqx

    def wrap(value, sub, in_sequence=False):
        is_module = isinstance(value, eqx.Module)
        if is_module or isinstance(value, (list, tuple, dict)):
            value = _tap_equinox(value, sub, record)
        # Functions count as layers only as elements of a sequence (the tutorial's `layers` list): a function
        # field such as eqx.nn.MLP's `activation` is called inside the module's own vmap.
        if is_module or (in_sequence and callable(value) and not isinstance(value, (jax.Array, np.ndarray, type))):
            return _EqxTap(value, ".".join(map(str, sub)), record)
        return value

    if isinstance(node, eqx.Module):
        for field in dataclasses.fields(node):
            value = getattr(node, field.name, None)
            object.__setattr__(node, field.name, wrap(value, (*path, field.name)))
        return node
    if isinstance(node, list):
        return [wrap(v, (*path, i), True) for i, v in enumerate(node)]
    if isinstance(node, tuple) and not hasattr(node, "_fields"):
        return tuple(wrap(v, (*path, i), True) for i, v in enumerate(node))
    if isinstance(node, dict):
        return {k: wrap(v, (*path, k)) for k, v in node.items()}
    return node


def _equinox_modules(node, path: tuple):
    """``(path, module)`` for every Equinox module in ``node``, depth first."""
    import equinox as eqx

    if isinstance(node, eqx.Module):
        yield path, node
        children = [(f.name, getattr(node, f.name, None)) for f in dataclasses.fields(node)]
    elif isinstance(node, (list, tuple)):
        children = list(enumerate(node))
    elif isinstance(node, dict):
        children = list(node.items())
    else:
        return
    for key, child in children:
        yield from _equinox_modules(child, (*path, key))


def from_linen(
    module: nn.Module,
    params: Params,
    *,
    input_shape: Sequence[int],
    bounds: tuple[float, float],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    name: str | None = None,
    call_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Network, Params]:
    """A flax Linen classifier as a :class:`Network`; layers are its submodules' paths (``Conv_1``, ``a/b/conv``).

    Args:
        module: the model as written, ``module.apply({"params": params}, x [batch, *input_shape])`` -> logits.
        params: its ``"params"`` collection (the model's own tree, returned unchanged), or the whole variables
            dict: other collections (``batch_stats``) are then read as constants (pass ``call_kwargs`` such as
            ``{"train": False}`` so the model uses, and does not update, them).
        input_shape: one example's shape ``(H, W, C)``.
        bounds: the valid pixel range ``(low, high)``; attacks clip to it, budgets are in these units.
        num_classes: the number of classes; the output must be ``[batch, num_classes]``.
        class_names: optional names, one per class.
        preprocess: ``x -> model input`` run inside the network (e.g. normalisation), so pixels stay in ``bounds``.
        name: short name for tables and errors (default: the module's class name).
        call_kwargs: keyword arguments for every call of the model, e.g. ``{"train": False}``.

    Returns:
        ``(net, params)`` for every jaxfool function.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_linen takes a flax.linen.Module, got {type(module).__name__}; "
                        "for an NNX model use from_nnx, for a function from_function")
    try:
        hash(module)
    except TypeError:
        raise ValueError(f"{type(module).__name__} has an unhashable attribute (a list or dict?): jit needs the "
                         "module hashable; use tuples") from None
    constants = None
    if isinstance(params, Mapping) and "params" in params:  # the whole variables dict
        others = {k: v for k, v in params.items() if k != "params"}
        constants, params = (_Constants(others) if others else None), params["params"]
    kwargs = tuple(sorted((call_kwargs or {}).items()))
    try:
        hash(kwargs)
    except TypeError:
        raise ValueError(f"call_kwargs={call_kwargs!r} must hold hashable values (flags, not arrays)") from None
    adapter = _LinenAdapter(model=module, preprocess=preprocess, call_kwargs=kwargs, constants=constants)
    return _network(adapter, params, name or type(module).__name__,
                    input_shape, bounds, num_classes, class_names)


def from_nnx(
    model: Any,
    *,
    input_shape: Sequence[int],
    bounds: tuple[float, float],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    name: str | None = None,
) -> tuple[Network, Params]:
    """A flax NNX classifier as a :class:`Network`; layers are attribute paths (``conv2``, ``blocks.3.conv``).

    The model must be in evaluation mode (``model.eval()``): live dropout or batch statistics are an error.
    Its ``nnx.Param`` state becomes ``params``, a plain nested dict (``params["conv1"]["kernel"]``) that every
    jaxfool function takes as a traced argument; other state (batch-norm averages) is kept as constants.
    Arguments as :func:`from_linen`; ``model(x [batch, *input_shape])`` -> logits.
    """
    from flax import nnx

    if not isinstance(model, nnx.Module):
        raise TypeError(f"from_nnx takes a flax.nnx.Module, got {type(model).__name__}")
    label = name or type(model).__name__
    for path, module in nnx.iter_modules(model):
        where = ".".join(map(str, path)) or label
        if getattr(module, "deterministic", True) is False and getattr(module, "rate", 1) != 0:
            raise ValueError(f"{label}: {where} ({type(module).__name__}) is in training mode (dropout live); "
                             "call model.eval() before from_nnx")
        if getattr(module, "use_running_average", True) is False:
            raise ValueError(f"{label}: {where} ({type(module).__name__}) is in training mode (batch statistics "
                             "live); call model.eval() before from_nnx")
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    params = nnx.to_pure_dict(state)
    return _network(_NnxAdapter(graphdef, rest, params, preprocess), params, label, input_shape, bounds,
                    num_classes, class_names)


def from_equinox(
    model: Any,
    *,
    input_shape: Sequence[int],
    bounds: tuple[float, float],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    name: str | None = None,
) -> tuple[Network, Params]:
    """An Equinox classifier as a :class:`Network`; layers are pytree paths of its sub-modules and functions
    (``layers.0``, ``layers.2`` for a ``jax.nn.relu`` in a list), in call order.

    Equinox models take ONE example channels first: jaxfool hands ``model`` each example as ``[C, H, W]``
    (vmapped over the batch), and shows its 3-D activations ``[c, h, w]`` as ``[h, w, c]``. ``input_shape`` is
    jaxfool's ``(H, W, C)``. Dropout must be off (``eqx.nn.inference_mode(model)``). ``params`` are the model's
    inexact arrays (``eqx.partition(model, eqx.is_inexact_array)``); the rest is static. Needs
    ``pip install equinox``. Other arguments as :func:`from_linen`.
    """
    try:
        import equinox as eqx
    except ImportError:
        raise ImportError("from_equinox needs Equinox: pip install equinox (or jaxfool[equinox])") from None
    if not isinstance(model, eqx.Module):
        raise TypeError(f"from_equinox takes an equinox.Module, got {type(model).__name__}")
    label = name or type(model).__name__
    for path, module in _equinox_modules(model, ()):
        if getattr(module, "inference", True) is False and getattr(module, "p", 1) != 0:
            raise ValueError(f"{label}: {'.'.join(map(str, path)) or label} ({type(module).__name__}) is in training "
                             "mode (inference=False); call model = eqx.nn.inference_mode(model) before from_equinox")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return _network(_EquinoxAdapter(static, params, preprocess), params, label, input_shape, bounds,
                    num_classes, class_names)


def from_function(
    f: Callable[[Params, Array], Array],
    params: Params,
    *,
    input_shape: Sequence[int],
    bounds: tuple[float, float],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    name: str | None = None,
) -> tuple[Network, Params]:
    """A plain function ``f(params, x [batch, *input_shape]) -> logits [batch, num_classes]`` as a
    :class:`Network`. Everything that needs only outputs or input gradients works (attacks, saliency, SmoothGrad,
    IG, occlusion, class visualisation, agreement); methods at inner layers say they need the model itself.
    ``f`` is compared by identity (a static argument of ``jit``); ``params`` stay traced. Other arguments as
    :func:`from_linen`."""
    if not callable(f):
        raise TypeError(f"from_function takes a function f(params, x) -> logits, got {type(f).__name__}")
    label = name or getattr(f, "__name__", type(f).__name__)
    return _network(_FunctionAdapter(f, params, preprocess), params, label, input_shape, bounds, num_classes,
                    class_names)


def _network(module, params, name, input_shape, bounds, num_classes, class_names) -> tuple[Network, Params]:
    """Validates the facts, runs the model once abstractly to list its layers and check its output."""
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"{name}: input_shape={input_shape!r} must be positive ints, one example's (H, W, C)")
    low, high = (float(b) for b in bounds)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name}: bounds={tuple(bounds)!r} must be finite (low, high) with low < high")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{name}: num_classes={num_classes!r} must be a positive int")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{name}: {len(class_names)} class_names for num_classes={num_classes}; give one per class")
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    names: list[str] = []  # forward order (eval_shape's dict output comes back sorted)

    def run(p, v):
        acts = module.apply({"params": p}, v)
        names.extend(acts)
        return acts

    try:
        acts = jax.eval_shape(run, params, x)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ("; a model in training mode? pass call_kwargs such as {'train': False}" if "immutable" in first
                or "rng" in first.lower() else "")
        raise ValueError(f"{name} fails on a batch of inputs [2, {', '.join(map(str, shape))}]: {first}{hint}"
                         ) from err
    out = acts["logits"]
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != (2, int(num_classes)):
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name} returns {got} for a batch of 2 inputs {shape}; a classifier must return "
                         f"[batch, num_classes] = (2, {int(num_classes)}) logits")
    net = Network(
        name=name,
        module=module,
        input_shape=shape,
        layer_names=tuple(names),
        bounds=(low, high),
        num_classes=int(num_classes),
        class_names=None if class_names is None else tuple(class_names),
    )
    return net, params
