"""Plain-PyTorch twins of jaxfool's models holding the same weights: the references of parity tests and the
peers' models in benchmarks (Captum, pytorch-grad-cam, torchattacks and Foolbox need a torch module).

PyTorch is optional for jaxfool: it is imported when a twin is built, never at import. Weights are copied
HWIO -> OIHW for convolutions and transposed for dense layers; the twins take NCHW input but flatten in NHWC
order, so one set of dense weights serves both. No torchvision is needed (its CPU wheels do not load beside
the CPU torch this project pins): VGG16 is written out in torchvision's layout.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import jax
import numpy as np

VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def device() -> str:
    """Where PyTorch peers run: the GPU when JAX runs on one (a like-for-like race), else the CPU."""
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def nchw(x: Any, *, on: str | None = None) -> Any:
    """``[H, W, C]`` or ``[N, H, W, C]`` array -> ``[N, C, H, W]`` float32 tensor on ``on`` (default: CPU)."""
    import torch

    x = np.asarray(x, np.float32)
    x = x[None] if x.ndim == 3 else x
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(on or "cpu")


def batch(x: Any, y: Any, *, on: str | None = None) -> tuple[Any, Any]:
    """``x [n, H, W, C]``, ``y [n]`` -> NCHW float32 and int64 tensors on ``on`` (default: CPU)."""
    import torch

    return nchw(x, on=on), torch.from_numpy(np.array(y)).long().to(on or "cpu")


def frozen(model: Any) -> Any:
    """``model`` in eval mode with parameter gradients off (the peers' fastest setting for input gradients)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def conv(p: Any, padding: int | str) -> Any:
    """A ``torch.nn.Conv2d`` holding flax conv params ``{"kernel": [kh, kw, in, out], "bias": [out]}``."""
    import torch

    k = np.asarray(p["kernel"])
    m = torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=padding)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
        m.bias.copy_(torch.from_numpy(np.array(p["bias"])))
    return m


def dense(p: Any) -> Any:
    """A ``torch.nn.Linear`` holding flax dense params ``{"kernel": [in, out], "bias": [out]}``."""
    import torch

    k = np.asarray(p["kernel"])
    m = torch.nn.Linear(*k.shape)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(k.T.copy()))
        m.bias.copy_(torch.from_numpy(np.array(p["bias"])))
    return m


def mnist_cnn(params: Any, *, on: str | None = None) -> Any:
    """The twin of :class:`jaxfool.models.MnistCNN`; ``relu0``, ``relu1`` and ``fc`` output the JAX model's
    ``conv0``, ``conv1`` and ``fc`` activations (for Captum's and pytorch-grad-cam's layer hooks)."""
    import torch

    class MnistTwin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for i in range(2):
                setattr(self, f"conv{i}", conv(params[f"conv{i}"], 2))
                setattr(self, f"pool{i}", torch.nn.MaxPool2d(2))
                setattr(self, f"relu{i}", torch.nn.ReLU())
            self.fc, self.relu_fc, self.logits = dense(params["fc"]), torch.nn.ReLU(), dense(params["logits"])

        def forward(self, x):
            x = self.relu0(self.pool0(self.conv0(x)))
            x = self.relu1(self.pool1(self.conv1(x)))
            return self.logits(self.relu_fc(self.fc(x.permute(0, 2, 3, 1).flatten(1))))

    return frozen(MnistTwin()).to(on or "cpu")


def vgg16(state_dict: dict[str, np.ndarray] | None = None, *, include_top: bool = True) -> Any:
    """A plain PyTorch VGG16 laid out as torchvision's (``features`` / ``classifier`` indices), in eval mode,
    loaded with ``state_dict`` (numpy arrays, e.g. from :func:`jaxfool.weights.to_torchvision`) if given.
    Without the top it returns the ``features`` output (NCHW)."""
    import torch
    from torch import nn

    layers: list[Any] = []
    channels = 3
    for n, features in VGG16_BLOCKS:
        for _ in range(n):
            layers += [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
            channels = features
        layers.append(nn.MaxPool2d(2, 2))

    class VGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            if include_top:
                self.classifier = nn.Sequential(
                    nn.Linear(channels * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                    nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                    nn.Linear(4096, 1000),
                )

        def forward(self, x: Any) -> Any:
            x = self.features(x)
            return self.classifier(torch.flatten(x, 1)) if include_top else x

    model = VGG().eval()
    if state_dict is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})  # writable copies
    return model


def resnet(depth: int = 50, state_dict: dict[str, np.ndarray] | None = None, *, include_top: bool = True) -> Any:
    """A plain PyTorch ResNet laid out as torchvision's (``conv1``, ``bn1``, ``layerN.B.convK``/``bnK``,
    ``downsample``, ``fc``; v1.5 bottleneck), in eval mode, loaded with ``state_dict`` (numpy) if given.
    Without the top it returns ``layer4``'s output (NCHW)."""
    import torch
    from torch import nn

    from jaxfool.models.resnet import DEPTHS, FILTERS, TORCH_EPSILON

    class Bottleneck(nn.Module):
        def __init__(self, n_in: int, width: int, stride: int) -> None:
            super().__init__()
            for k, (a, b, size, s) in enumerate(((n_in, width, 1, 1), (width, width, 3, stride),
                                                 (width, 4 * width, 1, 1)), 1):
                setattr(self, f"conv{k}", nn.Conv2d(a, b, size, stride=s, padding=size // 2, bias=False))
                setattr(self, f"bn{k}", nn.BatchNorm2d(b, eps=TORCH_EPSILON))
            self.downsample = None
            if stride != 1 or n_in != 4 * width:
                self.downsample = nn.Sequential(nn.Conv2d(n_in, 4 * width, 1, stride=stride, bias=False),
                                                nn.BatchNorm2d(4 * width, eps=TORCH_EPSILON))

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=TORCH_EPSILON)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            n_in = 64
            for s, (n, width) in enumerate(zip(DEPTHS[f"resnet{depth}"], FILTERS, strict=True), 1):
                blocks = [Bottleneck(n_in if b == 0 else 4 * width, width, 2 if b == 0 and s > 1 else 1)
                          for b in range(n)]
                setattr(self, f"layer{s}", nn.Sequential(*blocks))
                n_in = 4 * width
            self.fc = nn.Linear(n_in, 1000) if include_top else None

        def forward(self, x: Any) -> Any:
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean(dim=(2, 3))) if include_top else x

    model = ResNet().eval()
    if state_dict is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, strict=False)
    return model


def vgg16_layers(model: Any) -> dict[str, Any]:
    """``{block1_conv1: module, ...}``: the module of :func:`vgg16`'s ``features`` whose output is each Keras-named
    conv layer's activation (the ReLU after it; Keras' conv layers include their ReLU)."""
    names = [f"block{b}_conv{i}" for b, (n, _) in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]
    relus = [m for m in model.features if type(m).__name__ == "ReLU"]
    return dict(zip(names, relus, strict=True))


def import_pytorch_grad_cam(site: str | None = None) -> Any:
    """The ``pytorch_grad_cam`` module, or ``None`` (with the reason printed) if it cannot be imported.

    It imports torchvision only for preprocessing and detection helpers its CAMs never call; PyPI's torchvision
    is built for CUDA torch and fails to load next to the CPU torch, so a stub stands in for it then. ``site``: a
    folder holding it (``pip install --no-deps --target DIR grad-cam ttach opencv-python-headless``).
    """
    if site and os.path.isdir(site) and site not in sys.path:
        sys.path.insert(0, site)
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (a CUDA build fails with RuntimeError, not ImportError)
        for mod in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[mod]
        stub = {name: types.ModuleType(name) for name in
                ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops")}
        stub["torchvision"].transforms = stub["torchvision.transforms"]
        stub["torchvision"].ops = stub["torchvision.ops"]
        stub["torchvision.transforms"].functional = stub["torchvision.transforms.functional"]
        for attr in ("Compose", "Normalize", "ToTensor"):
            setattr(stub["torchvision.transforms"], attr, None)
        stub["torchvision.transforms.functional"].resize = None
        sys.modules.update(stub)
    try:
        import pytorch_grad_cam

        return pytorch_grad_cam
    except Exception as err:  # noqa: BLE001
        print(f"pytorch-grad-cam unavailable ({type(err).__name__}: {err}); skipping it")
        return None


def num_threads() -> int:
    """PyTorch's intra-op thread count (reported beside CPU timings)."""
    import torch

    return torch.get_num_threads()
