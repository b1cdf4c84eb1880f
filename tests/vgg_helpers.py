"""Reference implementations and file writers shared by the VGG16 tests (Keras and PyTorch are test-only)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from jaxfool.models.vgg16 import BLOCKS
from jaxfool.weights import param_shapes


def import_keras():
    """Keras 3 on the JAX backend, or skip. The backend must be chosen before keras is first imported."""
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


def random_params(include_top: bool, *, seed: int = 0) -> dict:
    """VGG16-shaped float32 params, scaled so activations neither vanish nor explode through 16 layers."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shapes in param_shapes(include_top).items():
        fan_in = int(np.prod(shapes["kernel"][:-1]))
        params[name] = {
            "kernel": (rng.standard_normal(shapes["kernel"]) * np.sqrt(2.0 / fan_in)).astype(np.float32),
            "bias": (rng.standard_normal(shapes["bias"]) * 0.1).astype(np.float32),
        }
    return params


def write_official_h5(path, params: dict, *, skip: tuple[str, ...] = ()) -> None:
    """Writes ``params`` in the layout of the official ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``.

    That file (Keras 2) stores byte-string attributes, lists the weightless layers (``input_1``, pools,
    ``flatten``) in ``layer_names`` with empty ``weight_names``, and names weights ``<layer>_W_1:0`` and
    ``<layer>_b_1:0``. ``skip`` leaves layers out (to make broken files).
    """
    include_top = "fc1" in params
    names = ["input_1"]
    for b, (n, _) in enumerate(BLOCKS, 1):
        names += [f"block{b}_conv{i}" for i in range(1, n + 1)] + [f"block{b}_pool"]
    if include_top:
        names += ["flatten", "fc1", "fc2", "predictions"]
    names += [name for name in params if name not in names]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names if n not in skip]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        for name in names:
            if name in skip:
                continue
            group = f.create_group(name)
            if name not in params:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            weight_names = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
            group.attrs["weight_names"] = weight_names
            for weight, kind in zip(weight_names, ("kernel", "bias"), strict=True):
                group.create_dataset(weight.decode(), data=params[name][kind])


def torch_vgg16(include_top: bool = True):
    """The benchmark's plain PyTorch VGG16 (torchvision's layout, eval mode), He-initialised from seed 0."""
    torch = pytest.importorskip("torch")
    from jaxfool.torch_twins import vgg16 as build

    torch.manual_seed(0)
    model = build(include_top=include_top)
    with torch.no_grad():
        # He initialisation keeps the signal alive through all 16 layers (PyTorch's default init shrinks it
        # until the biases alone decide the logits, which would make a weak test).
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.normal_(module.bias, std=0.1)
    return model
