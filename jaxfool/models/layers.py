"""Layers shared by the models."""

from __future__ import annotations

import jax


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling with stride 2 (``VALID``) of ``x: [batch, height, width, channels]``.

    Written as a reshape and a max rather than ``lax.reduce_window`` because XLA:CPU differentiates
    ``reduce_window`` through ``select_and_scatter``, which is about 10x slower than the reshape's gradient;
    the forward values are identical. Odd trailing rows or columns are dropped, as with ``VALID`` padding.
    """
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
