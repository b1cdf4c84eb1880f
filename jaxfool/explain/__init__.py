"""Explanations of a classifier's decision, as pure functions of ``(net, params, x, label)``.

Every method takes ONE example ``x [H, W, C]`` and a class index and works on any
:class:`~jaxfool.models.Network`; ``jax.vmap`` them over a batch and ``jax.jit`` them with the network static.

* Class activation maps: :func:`grad_cam`, :func:`grad_cam_plus_plus`, :func:`layer_cam`, :func:`xgrad_cam`,
  :func:`hires_cam`, :func:`eigen_cam`, and :func:`cams` for every layer from one forward and one backward pass;
  the gradient-free :func:`score_cam` and :func:`ablation_cam` (batched perturbed forward passes).
* Gradients in pixel space: :func:`saliency`, :func:`smooth_grad`, :func:`integrated_gradients`,
  :func:`guided_backprop` (via :func:`guided`, which swaps :func:`guided_relu` into any model) and
  :func:`guided_grad_cam`.
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
    against_mask,
    compare_stacks,
    finite_mean,
    mean_agreement,
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
from jaxfool.explain.guided import guided, guided_backprop, guided_grad_cam, guided_network, guided_relu
from jaxfool.explain.perturbation_cams import ablation_cam, score_cam
from jaxfool.explain.sanity import (
    cascading_randomization,
    independent_randomization,
    randomization_curve,
    randomize,
    similarity,
)
from jaxfool.explain.localization import InkOverlap, ink_mask, ink_overlap
from jaxfool.explain.occlusion import Occlusion, OcclusionConfig, OcclusionParams, occlusion, window_starts

__all__ = [
    "Agreement",
    "InkOverlap",
    "METHODS",
    "Occlusion",
    "OcclusionConfig",
    "OcclusionParams",
    "SCORES",
    "ablation_cam",
    "against_mask",
    "auc",
    "cams",
    "cascading_randomization",
    "centroid_shift",
    "class_score",
    "compare_heatmaps",
    "compare_stacks",
    "deletion_curve",
    "eigen_cam",
    "finite_mean",
    "grad_cam",
    "grad_cam_plus_plus",
    "guided",
    "guided_backprop",
    "guided_grad_cam",
    "guided_network",
    "guided_relu",
    "hires_cam",
    "impute",
    "independent_randomization",
    "infidelity",
    "ink_mask",
    "ink_overlap",
    "insertion_curve",
    "integrated_gradients",
    "iou",
    "layer_cam",
    "layer_gradients",
    "load_mask",
    "mask_iou",
    "max_sensitivity",
    "mean_agreement",
    "occlusion",
    "pointing_game",
    "randomization_curve",
    "randomize",
    "road",
    "saliency",
    "score_cam",
    "similarity",
    "smooth_grad",
    "spatial_layers",
    "spearman",
    "to_heatmap",
    "top_k_iou",
    "top_k_region",
    "window_starts",
    "xgrad_cam",
]
