"""The architectures the weights package knows: their parameter shapes, official files and layout mappings.

One :class:`Architecture` per model name (``vgg16``, ``resnet50``, ``resnet101``). Every importer and the
checkpoint store work from it, so adding a network means adding one entry here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxfool.models.resnet import DEPTHS as RESNET_DEPTHS
from jaxfool.models.resnet import param_shapes as resnet_shapes
from jaxfool.models.resnet import resnet as build_resnet
from jaxfool.models.vgg16 import BLOCKS, CONV_LAYERS, IMAGE_SIZE, NUM_CLASSES, vgg16
from jaxfool.models.network import Network
from jaxfool.weights.common import WeightsError

Shapes = dict[str, dict[str, tuple[int, ...]]]
Params = dict[str, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the weights package needs to know about one network.

    Attributes:
        name: ``'vgg16'``, ``'resnet50'``, ...
        shapes: ``include_top -> {layer: {kind: shape}}`` of the parameters as the jaxfool module keys them.
        top_layers: the parameter layers of the classifier (dropped for ``include_top=False``).
        keras_url: folder URL of the official Keras files.
        keras_files: ``include_top -> (file name, MD5)``, as ``keras.applications`` lists them.
        from_torchvision: torchvision state dict (numpy) -> params, or raises :class:`WeightsError`.
        to_torchvision: params -> torchvision state dict (numpy).
        build: ``(include_top, preprocessing, metadata, **options) -> Network`` for weights with that metadata.
    """

    name: str
    shapes: Callable[[bool], Shapes]
    top_layers: tuple[str, ...]
    keras_url: str
    keras_files: Mapping[bool, tuple[str, str]]
    from_torchvision: Callable[[Mapping[str, np.ndarray], str], Params]
    to_torchvision: Callable[[Mapping[str, Any]], dict[str, np.ndarray]]
    build: Callable[..., Network]


def _oihw_to_hwio(w: np.ndarray, key: str, where: str) -> np.ndarray:
    if w.ndim != 4:
        raise WeightsError(f"{where}: {key} has shape {w.shape}, expected a 4-D OIHW kernel")
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _hwio_to_oihw(w: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(w).transpose(3, 2, 0, 1))


def _need(state: Mapping[str, np.ndarray], expected: list[str], where: str, model: str) -> None:
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected and not k.endswith("num_batches_tracked")]
    if missing or extra:
        raise WeightsError(
            f"{where}: not torchvision's {model} layout: missing {missing[:4] or 'none'}, "
            f"unexpected {extra[:4] or 'none'}"
        )


# --- VGG16 ---------------------------------------------------------------------------------------------------------

# torchvision's vgg16: the Conv2d positions in `features` and the Linear positions in `classifier`.
_VGG_FEATURES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_CLASSIFIER = (0, 3, 6)
VGG16_TOP = ("fc1", "fc2", "predictions")


def vgg16_shapes(include_top: bool = True) -> Shapes:
    """``{layer: {'kernel': shape, 'bias': shape}}`` of VGG16's parameters (conv HWIO, dense ``(in, out)``)."""
    shapes = {}
    channels = 3
    for name, features in zip(
        CONV_LAYERS, [f for n, f in BLOCKS for _ in range(n)], strict=True
    ):
        shapes[name] = {"kernel": (3, 3, channels, features), "bias": (features,)}
        channels = features
    if include_top:
        size = IMAGE_SIZE // 2 ** len(BLOCKS)
        sizes = ((size * size * channels, 4096), (4096, 4096), (4096, NUM_CLASSES))
        for name, (n_in, n_out) in zip(VGG16_TOP, sizes, strict=True):
            shapes[name] = {"kernel": (n_in, n_out), "bias": (n_out,)}
    return shapes


def fc1_rows(kernel: np.ndarray, *, to_torch: bool) -> np.ndarray:
    """Permutes ``fc1``'s input rows between VGG16's NHWC flatten of block5_pool and torchvision's NCHW one."""
    size, channels = IMAGE_SIZE // 2 ** len(BLOCKS), BLOCKS[-1][1]
    if kernel.shape[0] != size * size * channels:
        raise WeightsError(f"fc1 kernel has {kernel.shape[0]} input rows, VGG16 needs {size * size * channels}")
    if to_torch:
        return kernel.reshape(size, size, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
    return kernel.reshape(channels, size, size, -1).transpose(1, 2, 0, 3).reshape(kernel.shape)


def _vgg16_from_torchvision(state: Mapping[str, np.ndarray], where: str) -> Params:
    if any("running_mean" in k for k in state):
        raise WeightsError(f"{where} is a batch-norm VGG (vgg16_bn); only plain vgg16 is supported")
    include_top = any(k.startswith("classifier.") for k in state)
    expected = [f"features.{i}.{p}" for i in _VGG_FEATURES for p in ("weight", "bias")]
    if include_top:
        expected += [f"classifier.{i}.{p}" for i in _VGG_CLASSIFIER for p in ("weight", "bias")]
    _need(state, expected, where, "vgg16")
    params = {}
    for name, i in zip(CONV_LAYERS, _VGG_FEATURES, strict=True):
        key = f"features.{i}.weight"
        params[name] = {"kernel": _oihw_to_hwio(state[key], key, where), "bias": state[f"features.{i}.bias"]}
    if include_top:
        for name, i in zip(VGG16_TOP, _VGG_CLASSIFIER, strict=True):
            w = state[f"classifier.{i}.weight"]
            if w.ndim != 2:
                raise WeightsError(f"{where}: classifier.{i}.weight has shape {w.shape}, expected (out, in)")
            params[name] = {"kernel": w.T, "bias": state[f"classifier.{i}.bias"]}
        params["fc1"]["kernel"] = fc1_rows(params["fc1"]["kernel"], to_torch=False)
    return params


def _vgg16_to_torchvision(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    state = {}
    for name, i in zip(CONV_LAYERS, _VGG_FEATURES, strict=True):
        state[f"features.{i}.weight"] = _hwio_to_oihw(params[name]["kernel"])
        state[f"features.{i}.bias"] = np.asarray(params[name]["bias"])
    if "fc1" in params:
        for name, i in zip(VGG16_TOP, _VGG_CLASSIFIER, strict=True):
            kernel = np.asarray(params[name]["kernel"])
            if name == "fc1":
                kernel = fc1_rows(kernel, to_torch=True)
            state[f"classifier.{i}.weight"] = np.ascontiguousarray(kernel.T)
            state[f"classifier.{i}.bias"] = np.asarray(params[name]["bias"])
    return state


def _vgg16_build(include_top: bool, preprocessing: str, metadata: Mapping[str, Any], **options: Any) -> Network:
    if options:
        raise TypeError(f"VGG16 takes no options {sorted(options)}")
    return vgg16(include_top=include_top, preprocess=preprocessing)


# --- ResNet50 / ResNet101 --------------------------------------------------------------------------------------------

# torchvision's names: bn{k} -> _k_bn, downsample.{0,1} -> the projection shortcut _0_conv / _0_bn.
_BN_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _torch_names(depths: tuple[int, ...]) -> dict[str, str]:
    """``{keras conv/bn layer: torchvision module prefix}`` for a ResNet."""
    names = {"conv1_conv": "conv1", "conv1_bn": "bn1"}
    for s, n in enumerate(depths, 2):
        for b in range(1, n + 1):
            keras, torch = f"conv{s}_block{b}", f"layer{s - 1}.{b - 1}"
            if b == 1:
                names[f"{keras}_0_conv"], names[f"{keras}_0_bn"] = f"{torch}.downsample.0", f"{torch}.downsample.1"
            for k in (1, 2, 3):
                names[f"{keras}_{k}_conv"], names[f"{keras}_{k}_bn"] = f"{torch}.conv{k}", f"{torch}.bn{k}"
    return names


def _resnet_from_torchvision(name: str) -> Callable[[Mapping[str, np.ndarray], str], Params]:
    depths = RESNET_DEPTHS[name]

    def convert(state: Mapping[str, np.ndarray], where: str) -> Params:
        include_top = "fc.weight" in state
        names = _torch_names(depths)
        expected = [
            f"{t}.{p}" for k, t in names.items()
            for p in (_BN_TORCH.values() if k.endswith("_bn") else ("weight",))
        ]
        expected += ["fc.weight", "fc.bias"] if include_top else []
        _need(state, expected, where, name)
        params: Params = {}
        for keras, torch in names.items():
            if keras.endswith("_bn"):
                params[keras] = {kind: state[f"{torch}.{t}"] for kind, t in _BN_TORCH.items()}
            else:
                kernel = _oihw_to_hwio(state[f"{torch}.weight"], f"{torch}.weight", where)
                params[keras] = {"kernel": kernel, "bias": np.zeros(kernel.shape[-1], np.float32)}
        if include_top:
            if state["fc.weight"].ndim != 2:
                raise WeightsError(f"{where}: fc.weight has shape {state['fc.weight'].shape}, expected (out, in)")
            params["predictions"] = {"kernel": state["fc.weight"].T, "bias": state["fc.bias"]}
        return params

    return convert


def _resnet_to_torchvision(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    depths = RESNET_DEPTHS["resnet101" if "conv4_block7_1_conv" in params else "resnet50"]
    state = {}
    for keras, torch in _torch_names(depths).items():
        p = params[keras]
        if keras.endswith("_bn"):
            state.update({f"{torch}.{t}": np.asarray(p[kind]) for kind, t in _BN_TORCH.items()})
            continue
        if np.any(np.asarray(p["bias"]) != 0):
            raise WeightsError(
                f"{keras} has a non-zero bias, which torchvision's ResNet (bias-free convolutions) cannot hold; "
                "export weights of the torchvision family (zero convolution biases)"
            )
        state[f"{torch}.weight"] = _hwio_to_oihw(p["kernel"])
    if "predictions" in params:
        state["fc.weight"] = np.ascontiguousarray(np.asarray(params["predictions"]["kernel"]).T)
        state["fc.bias"] = np.asarray(params["predictions"]["bias"])
    return state


def _resnet_build(name: str) -> Callable[..., Network]:
    def build(include_top: bool, preprocessing: str, metadata: Mapping[str, Any], *, fold_batch_norm: bool = False):
        return build_resnet(
            int(name[len("resnet"):]), include_top=include_top, preprocess=preprocessing,
            stride_on=metadata.get("stride_on", "1x1"), batch_norm="folded" if fold_batch_norm else "separate",
        )

    return build


def _resnet(name: str, md5_top: str, md5_notop: str) -> Architecture:
    return Architecture(
        name=name,
        shapes=lambda include_top: resnet_shapes(RESNET_DEPTHS[name], include_top),
        top_layers=("predictions",),
        keras_url="https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
        keras_files={
            True: (f"{name}_weights_tf_dim_ordering_tf_kernels.h5", md5_top),
            False: (f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5_notop),
        },
        from_torchvision=_resnet_from_torchvision(name),
        to_torchvision=_resnet_to_torchvision,
        build=_resnet_build(name),
    )


ARCHITECTURES: dict[str, Architecture] = {
    "vgg16": Architecture(
        name="vgg16",
        shapes=vgg16_shapes,
        top_layers=VGG16_TOP,
        keras_url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
        keras_files={
            True: ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
            False: ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
        },
        from_torchvision=_vgg16_from_torchvision,
        to_torchvision=_vgg16_to_torchvision,
        build=_vgg16_build,
    ),
    # MD5s from keras.applications.resnet.WEIGHTS_HASHES (Keras 3.15), (with top, without).
    "resnet50": _resnet("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": _resnet("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
}


def get(name: str) -> Architecture:
    """The :class:`Architecture` called ``name``, or a one-line error listing the known ones."""
    if name not in ARCHITECTURES:
        raise WeightsError(f"unknown model {name!r}; the weights package knows {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def identify(layers: Any) -> str:
    """The architecture whose parameters have these layer names (Keras or torchvision keys), or an error."""
    layers = set(layers)
    if "block1_conv1" in layers or "features.0.weight" in layers:
        return "vgg16"
    if "conv1_conv" in layers or "layer1.0.conv1.weight" in layers:
        deep = {"conv4_block7_1_conv", "layer3.6.conv1.weight"} & layers
        return "resnet101" if deep else "resnet50"
    sample = sorted(layers)[:3]
    raise WeightsError(f"layers {sample} ... are not those of {', '.join(ARCHITECTURES)}")


def official_md5s() -> dict[str, tuple[str, bool]]:
    """``{md5: (model, include_top)}`` of every official Keras file."""
    return {md5: (a.name, top) for a in ARCHITECTURES.values() for top, (_, md5) in a.keras_files.items()}


def torch_hub_prefix(filename: str) -> str | None:
    """The SHA-256 prefix torch.hub puts in a download's name (``resnet50-0676ba61.pth`` -> ``0676ba61``)."""
    match = re.search(r"-([0-9a-f]{8,})\.", filename)
    return match.group(1) if match else None
