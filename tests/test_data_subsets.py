"""The stratified subset helper, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jaxfool.data import stratified_indices


def test_interleaved_takes_classes_in_turn():
    labels = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(stratified_indices(labels, 5, interleave=True), [0, 3, 5, 1, 4])


def test_sorted_takes_the_first_of_each_class():
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1])  # three classes, three of each
    np.testing.assert_array_equal(stratified_indices(labels, 6), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(stratified_indices(labels, 2), [0, 1, 2])  # at least one per class
    np.testing.assert_array_equal(stratified_indices(labels, 0), np.arange(9))
    np.testing.assert_array_equal(stratified_indices(labels, 100), np.arange(9))
    with pytest.raises(ValueError, match="must be >= 0"):
        stratified_indices(labels, -1)
