"""Evaluating predictions with explanations: where does a model look on regular inputs, and does it still look
there under FGSM, and through a second model? The numbers only; callers draw the pictures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import attacks
from jaxfool.explain.agreement import compare_stacks, finite_mean, mean_agreement
from jaxfool.explain.occlusion import OcclusionConfig
from jaxfool.explain.subject import Subject
from jaxfool.progress import bar as progress_bar

Array = jax.Array
#: The second model's agreement numbers: key in :func:`regular_and_fgsm`'s ``cross`` -> name in reports.
CROSS_NUMBERS = {"models_clean": "gradcam_vs_first_model_clean", "models_adv": "gradcam_vs_first_model_fgsm",
                 "shift": "attention_shift_clean_vs_fgsm"}


def regular_and_fgsm(
    first: Subject, second: Subject | None, x: np.ndarray, labels: np.ndarray, *, occlusion: OcclusionConfig,
    fgsm_eps: float, fraction: float, key: Array, progress: bool = False,
) -> dict[str, Any]:
    """Occlusion and Grad-CAM of each image's top-1 class and their agreement, the same numbers against random
    maps (chance), FGSM images (away from ``labels``, or from the top-1 where a label is ``-1``) with the Grad-CAM
    shift, and the second model on both.

    Args:
        first: the model under study; ``second``: an optional second model.
        x: ``[N, H, W, C]`` images; ``labels``: ``[N]`` true classes, ``-1`` where unknown.
        occlusion: the occlusion settings.
        fgsm_eps: FGSM's L-inf radius in the model's pixel units.
        progress: show a progress bar over the occlusion maps.
        fraction: share of pixels in the top-k regions of the agreement numbers.
        key: PRNG key; the random maps fold in 3, FGSM 1.

    Returns:
        ``pred, prob, cam, occ, x_adv, pred_adv, prob_adv, cam_adv`` (``[N, ...]`` arrays), ``methods``, ``chance``,
        ``shift`` (:func:`compare_stacks` results) and ``cross`` (empty without a second model; else its
        ``pred, prob, pred_adv, prob_adv, cam, cam_adv`` and the agreements of :data:`CROSS_NUMBERS`).
    """
    net = first.net
    pred, prob, cam = first.look(x)
    spec, hyper = occlusion.build()
    occ = np.stack([np.asarray(spec(net, first.params, xi, int(yi), hyper))
                    for xi, yi in zip(progress_bar(x, progress=progress, desc="occlusion"), pred, strict=True)])
    random_maps = jax.random.uniform(jax.random.fold_in(key, 3), occ.shape)
    fgsm = attacks.get_attack("fgsm")
    x_adv = np.asarray(attacks.perturb(fgsm, attacks.network_model(net, first.params), jnp.asarray(x),
                                       jnp.asarray(np.where(labels >= 0, labels, pred)), fgsm.params(fgsm_eps),
                                       key=jax.random.fold_in(key, 1), bounds=net.bounds))
    pred_adv, prob_adv, cam_adv = first.look(x_adv)
    out = {"pred": pred, "prob": prob, "cam": cam, "occ": occ, "x_adv": x_adv, "pred_adv": pred_adv,
           "prob_adv": prob_adv, "cam_adv": cam_adv, "methods": compare_stacks(occ, cam, fraction=fraction),
           "chance": compare_stacks(occ, random_maps, fraction=fraction),
           "shift": compare_stacks(cam, cam_adv, fraction=fraction), "cross": {}}
    if second is not None:
        p2, q2, cam2 = second.look(x)
        p2_adv, q2_adv, cam2_adv = second.look(x_adv)
        out["cross"] = {"pred": p2, "prob": q2, "pred_adv": p2_adv, "prob_adv": q2_adv, "cam": cam2,
                        "cam_adv": cam2_adv, "models_clean": compare_stacks(cam, cam2, fraction=fraction),
                        "models_adv": compare_stacks(cam_adv, cam2_adv, fraction=fraction),
                        "shift": compare_stacks(cam2, cam2_adv, fraction=fraction)}
    return out


def summary(r: dict[str, Any], labels: np.ndarray, per_image: list[dict[str, Any]],
            second: Subject | None = None) -> dict[str, Any]:
    """The means of :func:`regular_and_fgsm`'s numbers ``r``: accuracies (where ``labels`` are known), FGSM's
    top-1 change rate, mean agreements (also split by whether FGSM changed the top-1), the per-image mask
    numbers ``vs_<kind>_mask`` of ``per_image`` and the second model's."""
    changed, known = r["pred_adv"] != r["pred"], bool((labels >= 0).all())
    shift, cross = r["shift"], r["cross"]
    out = {"clean_accuracy": finite_mean(r["pred"] == labels) if known else None,
           "fgsm_accuracy": finite_mean(r["pred_adv"] == labels) if known else None,
           "fgsm_top1_change_rate": float(changed.mean()),
           "mean_clean_top1_probability": finite_mean(r["prob"]),
           "mean_fgsm_top1_probability": finite_mean(r["prob_adv"]),
           "occlusion_vs_gradcam": mean_agreement(r["methods"]), "occlusion_vs_random_map": mean_agreement(r["chance"]),
           "attention_shift_clean_vs_fgsm": mean_agreement(shift),
           "attention_shift_when_top1_changed": mean_agreement({k: v[changed] for k, v in shift.items()}),
           "attention_shift_when_top1_kept": mean_agreement({k: v[~changed] for k, v in shift.items()})}
    for kind in ("ink", "human"):
        rows = [item[f"vs_{kind}_mask"] for item in per_image if f"vs_{kind}_mask" in item]
        if rows:
            out[f"vs_{kind}_mask"] = {m: {k: finite_mean([row[m][k] for row in rows])
                                          for k in ("top_k_iou", "pointing")} for m in rows[0]}
    if cross and second is not None:
        out["second_model"] = {
            "name": second.net.name, "gradcam_layer": second.layer,
            "clean_accuracy": finite_mean(cross["pred"] == labels) if known else None,
            "fgsm_transfer_accuracy": finite_mean(cross["pred_adv"] == labels) if known else None,
            "fgsm_top1_change_rate": float(np.mean(cross["pred_adv"] != cross["pred"])),
            **{v: mean_agreement(cross[k]) for k, v in CROSS_NUMBERS.items()}}
    return out
