"""Datasets."""

from jaxfool.data.mnist import DataConfig, Mnist, load_embedded, load_files, load_mnist, load_tfds

__all__ = ["DataConfig", "Mnist", "load_embedded", "load_files", "load_mnist", "load_tfds"]
