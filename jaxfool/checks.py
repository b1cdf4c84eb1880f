"""One-line validation errors for arrays that come from users.

Checks run eagerly on concrete arrays (outside ``jit``), so they never cost anything inside compiled code.
Each error names the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_images(
    x: Any,
    example_shape: Sequence[int | None],
    bounds: tuple[float, float] | None,
    *,
    batched: bool = True,
    what: str = "input",
    floating: bool = False,
    nonempty: bool = False,
) -> None:
    """Raises ``ValueError`` if ``x`` is not a valid image (batch).

    Args:
        x: ``[batch, *example_shape]`` if ``batched`` else ``example_shape``.
        example_shape: expected shape of one example; ``None`` entries match any size.
        bounds: ``(low, high)`` pixel range, or ``None`` to skip the range check.
        batched: whether ``x`` has a leading batch axis.
        what: how to call ``x`` in the message.
        floating: require a floating dtype (attacks move pixels by fractions: int pixels cannot carry them).
        nonempty: require at least one example in the batch.
    """
    if isinstance(x, (list, tuple)):
        raise ValueError(f"{what} must be an array, got {type(x).__name__}; stack it with np.stack first")
    shape = tuple(np.shape(x))
    want = (("batch",) if batched else ()) + tuple("any" if s is None else s for s in example_shape)
    rank_ok = len(shape) == len(want)
    sizes_ok = rank_ok and all(
        w in ("batch", "any") or s == w for s, w in zip(shape, want, strict=True)
    )
    want_s = ", ".join(map(str, want))
    if not sizes_ok:
        fix = "add a batch axis with x[None]" if batched and len(shape) == len(want) - 1 else "resize or reshape it"
        raise ValueError(f"{what} has shape {shape}, expected [{want_s}]; {fix}")
    if nonempty and batched and shape[0] == 0:
        raise ValueError(f"{what} is an empty batch of shape {shape}; pass at least one example, "
                         f"[batch >= 1, {', '.join(map(str, want[1:]))}]")
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} has dtype {arr.dtype}, expected a numeric array")
    if floating and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what} has dtype {arr.dtype}, expected float pixels [{want_s}]; convert with "
                         "x.astype(np.float32) (and scale to the model's bounds)")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{what} contains {int((~np.isfinite(arr)).sum())} NaN or infinite values; clean it first")
    if bounds is not None:
        lo, hi = bounds
        amin, amax = (float(arr.min()), float(arr.max())) if arr.size else (lo, hi)
        if amin < lo or amax > hi:
            raise ValueError(
                f"{what} has pixels in [{amin:g}, {amax:g}], outside the model's bounds [{lo:g}, {hi:g}]; "
                "rescale it (e.g. x / 255 for [0, 1]) or clip it"
            )
