"""What every explanation method shares: the class score, input validation, chunked input gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import checks
from jaxfool.models.network import Network, Params, forward

Array = jax.Array

SCORES = ("logit", "probability")


def check_score(score: str) -> str:
    """Returns ``score`` or raises a one-line error naming the valid class scores."""
    if score not in SCORES:
        raise ValueError(f"unknown class score {score!r}; use one of: {', '.join(SCORES)}")
    return score


def class_score(logits: Array, label: Array | int, score: str = "logit") -> Array:
    """The score of class ``label`` given ``logits [num_classes]``: its logit or its softmax probability."""
    if score == "probability":
        return jax.nn.softmax(logits)[label]
    return logits[label]


def is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_example(net: Network, x: Any, label: Any = None, *, what: str = "image") -> None:
    """One-line errors for a single example ``x [H, W, C]`` and its class index.

    Values (NaN, bounds, class range) are only checked on concrete arrays; under ``jit``/``vmap`` only the
    shape is checked, so the checks never cost anything inside compiled code.
    """
    desc = f"{net.name} {what}"
    if is_traced(x):
        # A zero-strided view has the tracer's shape and dtype without allocating it.
        checks.check_images(np.broadcast_to(np.zeros((), x.dtype), x.shape), net.input_shape, None,
                            batched=False, what=desc)
    else:
        checks.check_images(x, net.input_shape, net.bounds, batched=False, what=desc)
    if label is not None and not is_traced(label):
        if np.ndim(label) != 0 or not np.issubdtype(np.asarray(label).dtype, np.integer):
            raise ValueError(f"class index must be one integer, got {label!r}; vmap over examples for a batch")
        net.check_class(int(label))


def pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    """``k`` or ``(kh, kw)`` -> ``(kh, kw)`` of positive ints, or a one-line error."""
    out = (int(value), int(value)) if np.ndim(value) == 0 else tuple(int(v) for v in value)  # type: ignore[arg-type]
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f"{what} must be a positive int or a pair (height, width) of them, got {value!r}")
    return out  # type: ignore[return-value]


def input_gradients(
    net: Network,
    params: Params,
    xs: Array,
    label: Array | int,
    *,
    score: str = "logit",
    batch_size: int | None = None,
) -> Array:
    """Gradients of the class score with respect to each of ``xs [n, H, W, C]``, evaluated in chunks.

    The examples are independent, so the gradient of the summed score gives every per-example gradient in one
    backward pass. Chunks are a Python loop (unrolled under ``jit``) rather than ``lax.map``: on XLA:CPU the
    backward convolutions inside a scan body ran about 4x slower than the same chunks unrolled.
    """
    n = xs.shape[0]
    size = n if batch_size is None else max(1, min(int(batch_size), n))

    def total(chunk: Array) -> Array:
        logits = forward(net, params, chunk)[0]
        return jax.vmap(lambda lg: class_score(lg, label, score))(logits).sum()

    grad = jax.grad(total)
    return jnp.concatenate([grad(xs[i : i + size]) for i in range(0, n, size)])


def chunk_loop(fn, n: int, batch_size: int, *, count: Array | int | None = None) -> Array:
    """``fn(start) -> [size, ...]`` (rows ``start .. start + size``) over ``n`` rows as one ``lax.while_loop``.

    ``size = min(batch_size, n)``; chunk ``i`` starts at ``min(i * size, n - size)`` (the last chunk overlaps the
    one before rather than being padded, so every chunk has one static shape), and its rows are written to
    ``[n, ...]`` at that start. Only the chunks covering the first ``count`` rows (default ``n``; may be traced)
    run; rows past them stay 0. The loop is what bounds memory: unrolled chunks (a Python loop under ``jit``)
    are independent, and XLA:CPU's default concurrency-optimised scheduler keeps several in flight at once
    (VGG16 Score-CAM's 16 chunks of 32 at 224x224 compiled to 6.9 GiB of temporaries, against 0.8 GiB as a
    loop; or 0.8 GiB unrolled with ``xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED``, which a
    caller's own ``jit`` would not carry). Forward convolutions in the loop body were no slower than unrolled
    (VGG16, 2 chunks of 32, interleaved on a loaded 2-core machine: 27 s loop, 45 s unrolled, 38 s unrolled with
    the memory-optimised scheduler); :func:`input_gradients` keeps unrolled chunks for backward passes.
    """
    size = max(1, min(int(batch_size), n))
    out = jax.eval_shape(fn, jnp.int32(0))
    if out.shape[0] != size:
        raise ValueError(f"chunk_loop: fn returned {out.shape[0]} rows for a chunk of {size}")
    last = (n if count is None else jnp.minimum(count, n)) if n else 0
    trips = (jnp.asarray(last, jnp.int32) + size - 1) // size

    def body(state):
        i, buf = state
        start = jnp.minimum(i * size, n - size)
        return i + 1, jax.lax.dynamic_update_slice_in_dim(buf, fn(start), start, axis=0)

    buf = jnp.zeros((n, *out.shape[1:]), out.dtype)
    return jax.lax.while_loop(lambda state: state[0] < trips, body, (jnp.int32(0), buf))[1]


def chunked(fn, xs: Array, batch_size: int) -> Array:
    """``fn`` over ``xs [n, ...]`` in chunks of ``batch_size``: ``[n, ...]``, one chunk in memory at a time
    (:func:`chunk_loop`)."""
    size = max(1, min(int(batch_size), xs.shape[0]))
    return chunk_loop(lambda start: fn(jax.lax.dynamic_slice_in_dim(xs, start, size)), xs.shape[0], size)


def class_scores(net: Network, params: Params, xs: Array, label: Array | int, *, score: str,
                 batch_size: int) -> Array:
    """The class score of each of ``xs [n, H, W, C]``: ``[n]``, ``batch_size`` examples per forward pass, one
    pass in memory at a time (:func:`chunk_loop`)."""
    return chunked(lambda chunk: jax.vmap(lambda lg: class_score(lg, label, score))(forward(net, params, chunk)[0]),
                   xs, batch_size)
