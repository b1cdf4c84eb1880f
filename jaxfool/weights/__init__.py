"""Pretrained ImageNet weights (VGG16, ResNet50, ResNet101): import the official Keras files or torchvision state
dicts, convert them once into orbax checkpoints, and load them quickly in experiments.

* :mod:`~jaxfool.weights.keras_h5` -- Keras legacy HDF5 files (MD5-checked against the published hashes);
* :mod:`~jaxfool.weights.torchvision` -- torchvision state dicts, read without unpickling code;
* :mod:`~jaxfool.weights.store` -- checkpoint folders (atomic, checked on the way in and out);
* :mod:`~jaxfool.weights.downloads` -- pooch downloads and ``fetch``;
* :mod:`~jaxfool.weights.loading` -- ``'imagenet'`` / ``'random'`` / ``'auto'`` / path -> ``(network, params)``;
* :mod:`~jaxfool.weights.architectures` -- per-model shapes, official files and layout mappings;
* :mod:`~jaxfool.weights.cli` -- the command line::

    python -m jaxfool.weights fetch vgg16|resnet50|resnet101 [--no-top] [--dest DIR]   # download and convert
    python -m jaxfool.weights convert FILE [--dest DIR] [--no-hash-check] [--overwrite]

Every file is validated completely (layout, shapes, finite values) before anything is written; a failed import
or an interrupted write leaves nothing behind.
"""

from jaxfool.weights.architectures import ARCHITECTURES, Architecture, fc1_rows
from jaxfool.weights.cli import main
from jaxfool.weights.common import WeightsError, default_cache_dir, file_digest, keras_cache_dir
from jaxfool.weights.downloads import download, fetch, fetch_vgg16
from jaxfool.weights.keras_h5 import import_keras_h5
from jaxfool.weights.loading import (
    load_network,
    load_params,
    load_resnet50,
    load_resnet101,
    load_vgg16,
    local_imagenet_weights,
    param_shapes,
    random_params,
    resolve_weights,
    vgg16_params,
)
from jaxfool.weights.store import (
    METADATA_FILE,
    checkpoint_name,
    convert,
    import_weights,
    read_metadata,
    restore_checkpoint,
    save_checkpoint,
)
from jaxfool.weights.torchvision import import_torchvision, read_state_dict, to_torchvision

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "METADATA_FILE",
    "WeightsError",
    "checkpoint_name",
    "convert",
    "default_cache_dir",
    "download",
    "fc1_rows",
    "fetch",
    "fetch_vgg16",
    "file_digest",
    "import_keras_h5",
    "import_torchvision",
    "import_weights",
    "keras_cache_dir",
    "load_network",
    "load_params",
    "load_resnet101",
    "load_resnet50",
    "load_vgg16",
    "local_imagenet_weights",
    "main",
    "param_shapes",
    "random_params",
    "read_metadata",
    "read_state_dict",
    "resolve_weights",
    "restore_checkpoint",
    "save_checkpoint",
    "to_torchvision",
    "vgg16_params",
]
