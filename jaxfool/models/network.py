"""A classifier as a pure function with named activations.

Every model in jaxfool is a flax module whose ``__call__(x, taps=None)`` passes each named activation
through a :class:`Tap` and returns the dict of all of them, in forward order, the logits last. That one
convention gives every consumer what it needs without touching the model:

* :func:`forward` returns the logits and any named activations (backwork costs, filter objectives);
* :func:`forward_with_taps` adds a zero "tap" to chosen activations, so ``jax.grad`` with respect to the
  taps yields the gradient at every chosen layer from a single backward pass (Grad-CAM for all layers);
* :func:`logits_fn` closes over the parameters and gives the ``x -> logits`` function attacks expect.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfool import checks, xla

Params = Any  # a pytree of arrays
Array = jax.Array


class Tap:
    """Records named activations inside a module's ``__call__`` and adds the caller's taps to them.

    Usage inside a module: ``t = Tap(taps)``; ``x = t("conv0", x)`` at each named activation;
    ``return t.activations``. Unused activations cost nothing under ``jit`` (XLA drops them).
    """

    def __init__(self, taps: Mapping[str, Array] | None):
        self.taps = taps or {}
        self.activations: dict[str, Array] = {}

    def __call__(self, name: str, x: Array) -> Array:
        if name in self.taps:
            x = x + self.taps[name]
        self.activations[name] = x
        return x


@dataclasses.dataclass(frozen=True)
class Network:
    """A classifier and the facts attacks and explanations need about it.

    Hashable, so it can be a static argument of ``jax.jit``.

    Attributes:
        name: short name used in run folders and tables.
        module: the model: a flax module whose ``__call__(x, taps=None)`` maps ``x [batch, *input_shape]`` to
            the dict of named activations (see :class:`Tap`), whose last entry is the logits; or anything with
            the same ``apply(variables, x, taps=...)`` and ``init(key, x)``, as the adapters of
            :mod:`jaxfool.models.adapters` make for models written without taps.
        input_shape: shape of one example, e.g. ``(28, 28, 1)``; ``None`` entries accept any size.
        layer_names: the named activations in forward order; the last one is the logits.
        bounds: the valid pixel range ``(low, high)`` of the module's input units.
        num_classes: number of output classes.
        class_names: optional human-readable class names, one per class.
    """

    name: str
    module: nn.Module | Any  # or an adapter with Linen's apply/init signatures
    input_shape: tuple[int | None, ...]
    layer_names: tuple[str, ...]
    bounds: tuple[float, float]
    num_classes: int
    class_names: tuple[str, ...] | None = None

    def init(self, *, key: Array, input_shape: Sequence[int] | None = None) -> Params:
        """Random parameters. ``input_shape`` fills in ``None`` sizes of :attr:`input_shape`."""
        shape = tuple(input_shape or self.input_shape)
        if any(s is None for s in shape):
            raise ValueError(f"{self.name}: input size {shape} is not fixed; pass input_shape=(H, W, C) to init")
        return _init(self, shape, key)

    def check_layers(self, layers: Sequence[str]) -> tuple[str, ...]:
        """Returns ``layers`` as a tuple, or raises a one-line error naming the valid layers."""
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        for layer in layers:
            if layer not in self.layer_names:
                hint = getattr(self.module, "layer_help", None)
                raise ValueError(
                    f"unknown layer {layer!r} for {self.name}; valid layers: {', '.join(self.layer_names)}"
                    + (f"; {hint}" if hint else "")
                )
        return layers

    def with_layers(self, layers: Sequence[str]) -> Network:
        """This network with only ``layers`` (and the logits) named: what methods that use every named layer
        (the backwork cost, reference activations) then see. Same module, same parameters."""
        chosen = tuple(n for n in self.check_layers(layers) if n != self.layer_names[-1])
        return dataclasses.replace(self, layer_names=(*chosen, self.layer_names[-1]))

    def check_class(self, label: int) -> int:
        """Returns ``label`` as an int, or raises a one-line error if it is not a class index."""
        if not 0 <= int(label) < self.num_classes:
            raise ValueError(f"class index {int(label)} out of range for {self.name}: use 0..{self.num_classes - 1}")
        return int(label)

    def class_name(self, label: int) -> str:
        """The human-readable name of class ``label``: from :attr:`class_names`, else the index as text."""
        label = self.check_class(label)
        return self.class_names[label] if self.class_names else str(label)

    def check_input(self, x: Any, *, batched: bool = True) -> None:
        """Raises a one-line error if ``x`` has the wrong shape, NaNs, or pixels outside :attr:`bounds`."""
        checks.check_images(x, self.input_shape, self.bounds, batched=batched, what=f"{self.name} input")


@jax.jit(static_argnums=(0, 1))
def _init(net: Network, shape: tuple[int, ...], key: Array) -> Params:
    # One compiled program: run eagerly, every initialiser op compiles on its own (seconds per process).
    return net.module.init(key, jnp.zeros((1, *shape), jnp.float32))["params"]


def forward(
    net: Network, params: Params, x: Array, *, layers: Sequence[str] = ()
) -> tuple[Array, dict[str, Array]]:
    """Runs the network and returns the logits and the requested named activations.

    Args:
        net: the network.
        params: its parameters.
        x: ``[batch, height, width, channels]`` in the network's input units.
        layers: names from ``net.layer_names`` to return.

    Returns:
        ``(logits [batch, num_classes], {name: activation [batch, ...]})``.
    """
    return forward_with_taps(net, params, x, {}, layers=layers)


def forward_with_taps(
    net: Network,
    params: Params,
    x: Array,
    taps: Mapping[str, Array],
    *,
    layers: Sequence[str] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Like :func:`forward`, but adds ``taps[name]`` to each named activation on the way.

    With zero taps the output equals :func:`forward`'s, and the gradient of any function of the output
    with respect to ``taps[name]`` is its gradient with respect to activation ``name``: one backward
    pass gives the gradients at every tapped layer.

    Args:
        net: the network.
        params: its parameters.
        x: ``[batch, height, width, channels]``.
        taps: ``{name: [batch, ...]}``, as made by :func:`zero_taps`.
        layers: the activations to return; default: the tapped ones.

    Returns:
        ``(logits [batch, num_classes], {name: activation [batch, ...]})``, activations including taps.
    """
    net.check_layers(tuple(taps))
    layers = net.check_layers(tuple(taps) if layers is None else layers)
    acts = net.module.apply({"params": params}, x, taps=dict(taps))
    return acts[net.layer_names[-1]], {name: acts[name] for name in layers}


def activation_shapes(net: Network, params: Params, x: Array, layers: Sequence[str]) -> dict[str, Any]:
    """Shapes and dtypes of the named activations for input ``x``, without computing anything."""
    return jax.eval_shape(lambda p, v: forward(net, p, v, layers=layers)[1], params, x)


def zero_taps(net: Network, params: Params, x: Array, layers: Sequence[str]) -> dict[str, Array]:
    """Zero taps for :func:`forward_with_taps`: one array per layer, shaped like its activation."""
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), activation_shapes(net, params, x, layers))


def logits_fn(net: Network, params: Params) -> Callable[[Array], Array]:
    """The function ``x [batch, H, W, C] -> logits [batch, num_classes]`` with ``params`` fixed."""
    return lambda x: forward(net, params, x)[0]


def predict_proba(net: Network, params: Params, x: Array, *, batch_size: int = 1024) -> Array:
    """Softmax probabilities ``[batch, num_classes]`` for ``x [batch, H, W, C]``, in memory-bounded chunks."""
    return jnp.concatenate([_proba(net, params, x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@functools.partial(xla.jit, static_argnums=0)  # jaxfool's CPU options, as every other program
def _proba(net: Network, params: Params, x: Array) -> Array:
    return jax.nn.softmax(forward(net, params, x)[0])
