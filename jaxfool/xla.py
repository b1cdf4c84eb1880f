"""XLA compiler options that make CNNs faster on XLA:CPU, and a ``jit`` that applies them.

XLA:CPU (JAX 0.10) runs convolutions and matmuls through YNNPACK. For a forward pass alone it fuses the whole
convolutional stack (convolutions, bias, ReLU, pooling, the first dense layer) into one YNNPACK graph; on
VGG16 at batch 8 that graph runs at ~60% of the machine's matmul peak, against ~95% when every convolution
and dense layer is its own YNNPACK call with XLA fusing the elementwise work in between
(``experiments/bench_vgg16.py`` measures both). Gradients already get one call per layer, so the options
change nothing there. They are per compilation, not global: pass them to ``jax.jit(...,
compiler_options=...)`` or use :func:`jit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

PER_LAYER_YNNPACK = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
    ),
}


def cnn_compiler_options(backend: str | None = None) -> dict[str, str]:
    """The options for ``backend`` (default: JAX's default backend): :data:`PER_LAYER_YNNPACK` on CPU, else none."""
    return dict(PER_LAYER_YNNPACK) if (backend or jax.default_backend()) == "cpu" else {}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``jax.jit(fun, **kwargs)`` with :func:`cnn_compiler_options` (merged under any ``compiler_options``)."""
    options = {**cnn_compiler_options(), **(kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=options, **kwargs)
