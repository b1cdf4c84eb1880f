"""Explanation methods side by side: heatmaps by name, their faithfulness and their sanity, over a batch.

:func:`heatmap_method` turns a method name into a per-example function ``(params, x, label, key) -> [H, W]``
(vmappable; parameters are an argument so the sanity checks can swap them), :func:`faithfulness_scores` scores a
batch of examples with every method on deletion and insertion AUC, and :func:`sanity_curves` runs Adebayo et al.'s
cascading randomisation for every method. ``experiments/explanation_quality.py`` prints and plots them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import xla
from jaxfool.explain import faithfulness, sanity
from jaxfool.explain.gradcam import grad_cam, spatial_layers
from jaxfool.explain.gradients import integrated_gradients, saliency, smooth_grad, to_heatmap
from jaxfool.explain.guided import guided_backprop
from jaxfool.explain.occlusion import occlusion
from jaxfool.explain.perturbation_cams import score_cam
from jaxfool.models.network import Network, Params

Array = jax.Array
Heatmap = Callable[[Params, Array, Array, Array], Array]  # (params, x [H, W, C], label, key) -> [H, W]

HEATMAP_METHODS = ("saliency", "smooth_grad", "integrated_gradients", "guided_backprop", "grad_cam", "score_cam",
                   "occlusion", "random")


def heatmap_method(net: Network, name: str, *, layer: str | None = None, occlusion_window: int = 4) -> Heatmap:
    """The per-example heatmap function of method ``name`` (one of :data:`HEATMAP_METHODS`).

    Pixel attributions are reduced to ``[H, W]`` by their largest magnitude over channels; CAMs use ``layer``
    (required for them) and are upsampled to the input; ``random`` is a uniform map, the chance level.
    """
    if name not in HEATMAP_METHODS:
        raise ValueError(f"unknown heatmap method {name!r}; use one of: {', '.join(HEATMAP_METHODS)}")
    if name in ("grad_cam", "score_cam") and layer is None:
        raise ValueError(f"{name} needs a layer; e.g. one of the network's spatial layers")
    methods: dict[str, Heatmap] = {
        "saliency": lambda p, x, y, k: to_heatmap(saliency(net, p, x, y, absolute=False)),
        "smooth_grad": lambda p, x, y, k: to_heatmap(smooth_grad(net, p, x, y, key=k)),
        "integrated_gradients": lambda p, x, y, k: to_heatmap(integrated_gradients(net, p, x, y)),
        "guided_backprop": lambda p, x, y, k: to_heatmap(guided_backprop(net, p, x, y)),
        "grad_cam": lambda p, x, y, k: grad_cam(net, p, x, y, layer=layer),
        "score_cam": lambda p, x, y, k: score_cam(net, p, x, y, layer=layer),
        "occlusion": lambda p, x, y, k: occlusion(net, p, x, y, window=occlusion_window, stride=1),
        "random": lambda p, x, y, k: jax.random.uniform(k, x.shape[:2]),
    }
    return methods[name]


def default_layer(net: Network, params: Params, x: Array) -> str:
    """The last spatial layer of ``net`` for inputs like ``x [H, W, C]``: where CAMs usually look."""
    return spatial_layers(net, params, x)[-1]


def batch_heatmaps(fn: Heatmap, *, key: Array) -> Callable[[Params, Array, Array], Array]:
    """``(params, x [N, H, W, C], labels [N]) -> [N, H, W]``: ``fn`` vmapped and jitted, example ``i`` with key
    ``fold_in(key, i)``."""

    @xla.jit
    def run(params: Params, x: Array, labels: Array) -> Array:
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(x.shape[0]))
        return jax.vmap(fn, in_axes=(None, 0, 0, 0))(params, x, labels, keys)

    return run


def faithfulness_scores(
    net: Network,
    params: Params,
    x: Array,
    labels: Array,
    methods: dict[str, Callable[[Params, Array, Array], Array]],
    *,
    steps: int = 28,
    blur_sigma: float = 5.0,
    baseline: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Deletion and insertion AUC (class probability) of every method on ``x [N, H, W, C]``.

    Returns:
        ``{method: {"deletion_auc": mean, "insertion_auc": mean, "deletion": [N], "insertion": [N]}}``
        (deletion: lower is better; insertion: higher is better).
    """
    curves = xla.jit(jax.vmap(lambda xi, yi, hi: (
        faithfulness.deletion_curve(net, params, xi, yi, hi, steps=steps, baseline=baseline),
        faithfulness.insertion_curve(net, params, xi, yi, hi, steps=steps, blur_sigma=blur_sigma))))
    out = {}
    for name, heatmaps in methods.items():
        deletion, insertion = curves(x, labels, heatmaps(params, x, labels))
        d = np.asarray(jax.vmap(faithfulness.auc)(deletion))
        i = np.asarray(jax.vmap(faithfulness.auc)(insertion))
        out[name] = {"deletion_auc": float(d.mean()), "insertion_auc": float(i.mean()), "deletion": d,
                     "insertion": i}
    return out


def sanity_curves(
    net: Network,
    params: Params,
    x: Array,
    labels: Array,
    methods: dict[str, Callable[[Params, Array, Array], Array]],
    *,
    key: Array,
    layers: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Cascading randomisation (top layer first) for every method: ``{method: randomization_curve(...)}``."""
    stages = sanity.cascading_randomization(net, params, key=key, layers=layers)
    return {name: sanity.randomization_curve(fn, stages, params, x, labels) for name, fn in methods.items()}
