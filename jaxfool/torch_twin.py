"""The study's MNIST CNN in plain PyTorch with a flax parameter tree copied in, for parity checks and benches
against PyTorch attack libraries (torchattacks). Imports torch only when called.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def mnist_cnn_torch(params: Any, device: str = "cpu"):
    """The backwork CNN (NCHW input) holding ``params`` (flax ``mnist_cnn`` layout); its logits equal the flax model's.

    Convolution kernels go HWIO -> OIHW and dense kernels are transposed; the flatten runs in NHWC order, so the
    dense weights carry over unchanged.
    """
    import torch

    class NhwcFlatten(torch.nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    p = jax.tree.map(lambda v: torch.from_numpy(np.array(v)), params)
    conv = lambda k: torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding="same")
    net = torch.nn.Sequential(
        conv(p["conv0"]["kernel"]), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        conv(p["conv1"]["kernel"]), torch.nn.MaxPool2d(2), torch.nn.ReLU(),
        NhwcFlatten(), torch.nn.Linear(3136, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10),
    )
    with torch.no_grad():
        for i, name in ((0, "conv0"), (3, "conv1")):
            net[i].weight.copy_(p[name]["kernel"].permute(3, 2, 0, 1))
            net[i].bias.copy_(p[name]["bias"])
        for i, name in ((7, "fc"), (9, "logits")):
            net[i].weight.copy_(p[name]["kernel"].T)
            net[i].bias.copy_(p[name]["bias"])
    return net.eval().to(device)


def to_torch(x: Any, y: Any, device: str = "cpu"):
    """``x [n, H, W, C]``, ``y [n]`` as NCHW float and long tensors."""
    import torch

    xt = torch.from_numpy(np.array(x, np.float32)).permute(0, 3, 1, 2).contiguous().to(device)
    return xt, torch.from_numpy(np.array(y)).long().to(device)
