"""Class-balanced subsets of a labelled dataset."""

from __future__ import annotations

import numpy as np


def stratified_indices(labels: np.ndarray, n: int, *, interleave: bool = False) -> np.ndarray:
    """Indices of about ``n`` examples taken evenly from every class present, each class's first ones.

    Args:
        labels: ``[N]`` integer class labels.
        n: how many examples to keep; ``0`` (or ``n >= N``) keeps all.
        interleave: ``False``: the first ``max(1, n // classes)`` examples of each class, as sorted indices
            (``N`` order is kept, so a sorted dataset stays sorted). ``True``: the classes taken in turn (each
            class's first example, then each class's second, ...), exactly ``min(n, N)`` indices in that order,
            so any prefix is as balanced as it can be.

    Returns:
        ``[k]`` int64 indices into ``labels``.
    """
    labels = np.asarray(labels)
    if n < 0:
        raise ValueError(f"subset size n={n} must be >= 0 (0 keeps all)")
    if n == 0 or n >= len(labels):
        return np.arange(len(labels))
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if not interleave:
        return np.sort(np.concatenate([idx[: max(1, n // len(per_class))] for idx in per_class]))
    order = [idx[i] for i in range(max(map(len, per_class))) for idx in per_class if i < len(idx)]
    return np.asarray(order[:n], np.int64)
