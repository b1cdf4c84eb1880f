"""Does a heatmap point at the object? On MNIST the object is the ink, a free ground-truth mask.

:func:`ink_overlap` measures, per digit, the IoU of a heatmap's top-``fraction`` region with the ink mask, for
occlusion, Grad-CAM and a uniformly random map (the chance level the others must beat).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxfool.explain.agreement import mask_iou
from jaxfool.explain.gradcam import grad_cam, spatial_layers
from jaxfool.explain.occlusion import OcclusionConfig
from jaxfool.models.network import Network, Params, predict_proba

Array = jax.Array


def ink_mask(image: Array, bounds: tuple[float, float] = (0.0, 1.0), *, threshold: float = 0.5) -> Array:
    """Boolean ``[H, W]``: pixels of ``image [H, W, C]`` brighter than ``threshold`` of the range ``bounds``."""
    lo, hi = bounds
    return ((jnp.asarray(image).mean(axis=-1) - lo) / (hi - lo)) > threshold


class InkOverlap(NamedTuple):
    """Per-image IoUs ``[n]`` of top-``fraction`` heatmap regions with the ink mask, and the labels explained."""

    occlusion: np.ndarray
    grad_cam: np.ndarray
    random: np.ndarray
    labels: np.ndarray

    def summary(self) -> dict[str, float]:
        """Means over the images."""
        return {
            "occlusion_iou": float(self.occlusion.mean()),
            "grad_cam_iou": float(self.grad_cam.mean()),
            "random_iou": float(self.random.mean()),
        }


def ink_overlap(
    net: Network,
    params: Params,
    images: np.ndarray,
    *,
    key: Array,
    labels: np.ndarray | None = None,
    fraction: float = 0.2,
    occlusion_config: OcclusionConfig | None = None,
    grad_cam_layer: str | None = None,
    threshold: float = 0.5,
) -> InkOverlap:
    """IoU of the top-``fraction`` occlusion / Grad-CAM / random region with the ink, per image.

    Args:
        net: the network (MNIST-like: bright ink on a dark background).
        params: its parameters.
        images: ``[n, H, W, C]`` in ``net.bounds``.
        key: PRNG key for the random maps.
        labels: ``[n]`` classes to explain; default the network's predictions.
        fraction: share of pixels in the top region (0.2: the top 20%).
        occlusion_config: occlusion settings; default a 4x4 black window with stride 1.
        grad_cam_layer: layer for Grad-CAM; default the last spatial layer.
        threshold: ink is brighter than this fraction of the pixel range.

    Returns:
        :class:`InkOverlap` with one IoU per image for each map.
    """
    net.check_input(images)
    images = jnp.asarray(images)
    if labels is None:
        labels = np.asarray(predict_proba(net, params, images).argmax(-1))
    labels = np.asarray(labels)
    spec, hyper = (occlusion_config or OcclusionConfig(window=4, stride=1, baseline=0.0)).build()
    masks = jax.vmap(lambda x: ink_mask(x, net.bounds, threshold=threshold))(images)

    occ = np.array([
        float(mask_iou(spec(net, params, x, int(y), hyper), m, fraction=fraction))
        for x, y, m in tqdm(zip(images, labels, masks, strict=True), total=len(images), desc="occlusion", leave=False)
    ])
    if grad_cam_layer is None:
        grad_cam_layer = spatial_layers(net, params, images[0])[-1]
    cam = jax.vmap(lambda x, y: grad_cam(net, params, x, y, layer=grad_cam_layer))(images, jnp.asarray(labels))
    rand = jax.random.uniform(key, masks.shape)
    iou = jax.vmap(lambda h, m: mask_iou(h, m, fraction=fraction))
    return InkOverlap(occlusion=occ, grad_cam=np.asarray(iou(cam, masks)), random=np.asarray(iou(rand, masks)),
                      labels=labels)
