"""Explanations of a classifier's decision, as pure functions of ``(net, params, x, label)``.

Every method takes ONE example ``x [H, W, C]`` and a class index and works on any
:class:`~jaxfool.models.Network`; ``jax.vmap`` them over a batch and ``jax.jit`` them with the network static.

* Class activation maps: :func:`grad_cam`, :func:`grad_cam_plus_plus`, :func:`layer_cam`, :func:`xgrad_cam`,
  :func:`hires_cam`, :func:`eigen_cam`, and :func:`cams` for every layer from one forward and one backward pass;
  the gradient-free :func:`score_cam` and :func:`ablation_cam` (batched perturbed forward passes).
* Gradients in pixel space: :func:`saliency`, :func:`smooth_grad`, :func:`integrated_gradients`,
  :func:`guided_backprop` (via :func:`guided_relu`) and :func:`guided_grad_cam`.
* Perturbation: :func:`occlusion` (Captum's definition, memory-bounded batches).
* Can a map be trusted? Faithfulness (:mod:`jaxfool.explain.faithfulness`: deletion / insertion curves and
  their :func:`auc`, :func:`road`, :func:`infidelity`, :func:`max_sensitivity`) and sanity checks
  (:mod:`jaxfool.explain.sanity`: cascading and independent randomisation, :func:`similarity`).
* Agreement between heatmaps and masks: :func:`compare_heatmaps` and the metrics of
  :mod:`jaxfool.explain.agreement`.
* Pictures: :mod:`jaxfool.explain.render`.
"""

from jaxfool.explain._common import SCORES, class_score
from jaxfool.explain.agreement import (
    Agreement,
    centroid_shift,
    compare_heatmaps,
    iou,
    load_mask,
    mask_iou,
    pointing_game,
    spearman,
    top_k_iou,
    top_k_region,
)
from jaxfool.explain.gradcam import (
    METHODS,
    cams,
    eigen_cam,
    grad_cam,
    grad_cam_plus_plus,
    hires_cam,
    layer_cam,
    xgrad_cam,
    layer_gradients,
    spatial_layers,
)
from jaxfool.explain.faithfulness import (
    auc,
    deletion_curve,
    impute,
    infidelity,
    insertion_curve,
    max_sensitivity,
    road,
)
from jaxfool.explain.gradients import integrated_gradients, saliency, smooth_grad, to_heatmap
from jaxfool.explain.guided import guided_backprop, guided_grad_cam, guided_network, guided_relu
from jaxfool.explain.perturbation_cams import ablation_cam, score_cam
from jaxfool.explain.sanity import (
    cascading_randomization,
    independent_randomization,
    randomization_curve,
    randomize,
    similarity,
)
from jaxfool.explain.localization import InkOverlap, ink_mask, ink_overlap
from jaxfool.explain.occlusion import OcclusionConfig, occlusion, window_starts

__all__ = [
    "auc",
    "deletion_curve",
    "impute",
    "infidelity",
    "insertion_curve",
    "max_sensitivity",
    "road",
    "cascading_randomization",
    "independent_randomization",
    "randomization_curve",
    "randomize",
    "similarity",
    "Agreement",
    "ablation_cam",
    "eigen_cam",
    "hires_cam",
    "score_cam",
    "xgrad_cam",
    "InkOverlap",
    "METHODS",
    "OcclusionConfig",
    "SCORES",
    "cams",
    "centroid_shift",
    "class_score",
    "compare_heatmaps",
    "grad_cam",
    "grad_cam_plus_plus",
    "guided_backprop",
    "guided_grad_cam",
    "guided_network",
    "guided_relu",
    "ink_mask",
    "ink_overlap",
    "integrated_gradients",
    "iou",
    "layer_cam",
    "layer_gradients",
    "load_mask",
    "mask_iou",
    "occlusion",
    "pointing_game",
    "saliency",
    "smooth_grad",
    "spatial_layers",
    "spearman",
    "to_heatmap",
    "top_k_iou",
    "top_k_region",
    "window_starts",
]
