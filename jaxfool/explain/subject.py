"""A network under explanation: its parameters, its Grad-CAM layer and a batched, jitted Grad-CAM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.explain.gradcam import grad_cam, spatial_layers
from jaxfool.models.network import Network, Params, predict_proba

Array = jax.Array


class Subject(NamedTuple):
    """A model under study (build it with :func:`subject`).

    Attributes:
        net, params: the network.
        layer: its Grad-CAM layer.
        cam: ``(params, x [N, H, W, C], labels [N]) -> [N, H, W]``, jitted once.
    """

    net: Network
    params: Params
    layer: str
    cam: Callable[..., Any]

    def top1(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 classes ``[N]`` and their probabilities ``[N]`` of ``x: [N, H, W, C]``."""
        probs = np.asarray(predict_proba(self.net, self.params, jnp.asarray(x), batch_size=16))
        return probs.argmax(-1), probs.max(-1)

    def look(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(top-1 [N], probability [N], Grad-CAM of the top-1 class [N, H, W])`` of ``x: [N, H, W, C]``."""
        pred, prob = self.top1(x)
        return pred, prob, np.asarray(self.cam(self.params, jnp.asarray(x), jnp.asarray(pred)))


def subject(net: Network, params: Params, layer: str = "") -> Subject:
    """``net`` with its Grad-CAM ``layer`` (``""``: the last spatial one); a one-line error for other layers."""
    spatial = spatial_layers(net, params, jnp.zeros(net.input_shape, jnp.float32))
    layer = layer or spatial[-1]
    if layer not in spatial:
        raise ValueError(f"layer={layer!r} of {net.name} is not a spatial layer; valid: {', '.join(spatial)}")
    cam = xla.jit(jax.vmap(lambda p, xi, yi: grad_cam(net, p, xi, yi, layer=layer), in_axes=(None, 0, 0)))
    return Subject(net, params, layer, cam)
