"""XLA compiler options that make CNNs faster on XLA:CPU, and a ``jit`` that applies them.

XLA:CPU (JAX 0.10) hands convolutions and matmuls to YNNPACK by default. On this project's CNNs its
convolutions are slower than XLA's own (Eigen) ones: on 2 cores, the MNIST CNN's second convolution (14x14x32 ->
64, 5x5, batch 256) takes 56 ms forward and 124 ms forward+input-gradient with YNNPACK, 29 and 58 ms without;
PGD-40 on 256 digits x 5 epsilons takes 42 s against 24 s; VGG16 at 224 is no slower without it (forward batch 8
1.41 -> 1.34 s, batch 1 0.19 -> 0.18 s; a whole-network YNNPACK graph, its default for a forward pass, was the
slowest of all). Its matmuls are the better ones: XLA's own (Eigen) run a matmul whose right operand is
transposed -- the input gradient of every dense layer, ``g @ W.T`` -- 2.5-4.5x slower than YNNPACK (the MNIST CNN's
fc layer at batch 256: 22.5 vs 8.9 ms; VGG16's fc1 at batch 8: 172 vs 38 ms), and are no faster elsewhere
(forward and weight-gradient matmuls within 6%). So jaxfool's options on CPU, :data:`YNNPACK_DOTS`, keep
YNNPACK for matmuls only: the MNIST CNN's whole input gradient inside a loop takes 107 ms against 117 ms with no
YNNPACK at all (the option set to ``""``, jaxfool's previous choice) and 123 ms for PyTorch (best of 25, one
process). ``experiments/bench_attacks.py`` and ``experiments/bench_vgg16.py`` measure the variants.

The options are per compilation, never global, and only on the CPU backend: :func:`jit` is ``jax.jit`` that adds
them. It decides the backend at the first call, not at import, so importing jaxfool leaves JAX uninitialised
(``jax.distributed.initialize()`` must come before any backend starts). A jaxfool function called inside a
caller's own ``jax.jit`` is compiled with the caller's options: pass :func:`cnn_compiler_options` there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

try:  # jax.extend is JAX's public API for code that builds on its internals
    from jax.extend.core import find_top_trace as _find_top_trace
    from jax.extend.core import take_current_trace as _take_current_trace
except ImportError:
    _find_top_trace = _take_current_trace = None

YNNPACK_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
PER_LAYER_YNNPACK = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
    ),
}


def cnn_compiler_options(backend: str | None = None) -> dict[str, str]:
    """The options for ``backend`` (default: JAX's default backend): :data:`YNNPACK_DOTS` on CPU, else none."""
    return dict(YNNPACK_DOTS) if (backend or jax.default_backend()) == "cpu" else {}


class _BackendJit:
    """``jax.jit(fun, **kwargs)`` with :func:`cnn_compiler_options` of the default backend at call time.

    Called inside another transformation that stages it out (an outer ``jit``, ``grad``), where JAX rejects
    compiler options on an inner ``jit``, it is a plain ``jax.jit``: the outermost compilation decides.
    """

    def __init__(self, fun: Callable[..., Any], kwargs: dict[str, Any]):
        self._fun, self._kwargs = fun, kwargs
        self._user_options = kwargs.pop("compiler_options", None) or {}
        self._jitted: dict[tuple[str, bool], Any] = {}
        functools.update_wrapper(self, fun)

    def _for_backend(self, top_level: bool = True) -> Any:
        key = (jax.default_backend(), top_level)
        if key not in self._jitted:
            options = {**cnn_compiler_options(key[0]), **self._user_options} if top_level else {}
            self._jitted[key] = jax.jit(self._fun, compiler_options=options or None, **self._kwargs)
        return self._jitted[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._for_backend(_at_top_level())(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, clear_cache...
        if name.startswith("_"):  # private names (and copy/pickle probing a half-built object) are not jit's
            raise AttributeError(name)
        return getattr(self._for_backend(), name)


def _at_top_level() -> bool:
    """Whether no JAX transformation is tracing (then a ``jit`` may carry compiler options)."""
    if _take_current_trace is None:  # a JAX without these: never risk the nested-jit error
        return False
    # take_current_trace swaps in the evaluation trace and hands back the current one: they are the same
    # object exactly when nothing (jit, grad, vmap...) is tracing.
    with _take_current_trace() as current:
        return current is _find_top_trace(())


def jit(fun: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """``jax.jit(fun, **kwargs)`` with :func:`cnn_compiler_options` merged under any ``compiler_options``.

    Usable as ``jit(f, static_argnames=...)``, ``@jit`` or ``@jit(static_argnames=...)``.
    """
    if fun is None:
        return lambda f: _BackendJit(f, dict(kwargs))
    return _BackendJit(fun, dict(kwargs))
