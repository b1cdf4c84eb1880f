"""Datasets."""

from jaxfool.data.mnist import DataConfig, Mnist, load_embedded, load_files, load_mnist, load_tfds
from jaxfool.data.subsets import stratified_indices

__all__ = ["DataConfig", "Mnist", "load_embedded", "load_files", "load_mnist", "load_tfds", "stratified_indices"]
