"""The valid range of every numeric config field, checked by :func:`jaxfool.cli.validate`.

A field name means one thing everywhere in jaxfool (``learning_rate`` is always a positive step size, ``eps``
always a non-negative radius), so ranges are declared once per name in :data:`RANGES` rather than in every
dataclass. A field can declare its own range in its annotation, which takes precedence::

    from typing import Annotated
    from annotated_types import Ge, Le
    keep: Annotated[float, Ge(0), Le(1)] = 0.5

Ranges apply to ``int`` and ``float`` values and to each element of a tuple of them; ``None`` is always
allowed where the annotation allows it. Every float must be finite. A numeric field whose name is in neither
place is reported by :func:`missing_ranges` (and so by the test suite), so new fields get a range.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import annotated_types as at

# Constraint groups, named for what they mean.
POSITIVE = (at.Gt(0),)
NON_NEGATIVE = (at.Ge(0),)
COUNT = (at.Ge(1),)  # sizes, steps, repeats: at least one
PROBABILITY = (at.Ge(0), at.Le(1))
OPEN_PROBABILITY = (at.Gt(0), at.Le(1))
ANY_FINITE = ()
SEED = (at.Ge(0), at.Lt(2**32))  # jax.random.key takes a uint32 seed

RANGES: dict[str, tuple[Any, ...]] = {
    # optimisation
    "learning_rate": POSITIVE, "step": POSITIVE, "step_size": POSITIVE, "universal_rel_step": POSITIVE,
    "epochs": COUNT, "universal_epochs": COUNT, "ramp_epochs": NON_NEGATIVE, "max_steps": COUNT, "steps": COUNT,
    "pgd_steps": COUNT, "restarts": COUNT, "num_mono_dec_saves": COUNT, "updates_per_check": COUNT,
    "unroll": NON_NEGATIVE, "seed": SEED, "temperature": POSITIVE, "decay": NON_NEGATIVE,
    # sizes and counts
    "batch_size": COUNT, "batch_sizes": COUNT, "images_per_label": COUNT, "refs_per_label": NON_NEGATIVE,
    "n_images": COUNT, "n_test": COUNT, "num_images": COUNT, "universal_images": COUNT, "perlin_images": COUNT,
    "filters_per_layer": COUNT, "speed_filters": COUNT, "top": COUNT, "repeat": COUNT, "repeats": COUNT, "score_cam_batch": NON_NEGATIVE,
    "n_queries": COUNT, "deepfool_steps": COUNT, "cw_steps": COUNT, "cw_search_steps": COUNT, "max_images": COUNT,
    "rounds": COUNT, "snapshots": COUNT, "panel_scale": COUNT, "gif_ms": COUNT, "matmul_size": COUNT,
    "peak_size": COUNT, "image_size": (at.Ge(32),), "size": (at.Ge(32),),  # VGG16 pools five times
    "max_train": NON_NEGATIVE, "max_test": NON_NEGATIVE, "nn_layers_max_train": NON_NEGATIVE,
    "window": COUNT, "stride": COUNT, "perlin_octaves": COUNT,
    # class indices (the upper bound depends on the network and is checked where it is known)
    "labels": NON_NEGATIVE, "class_index": NON_NEGATIVE, "source_class": NON_NEGATIVE,
    "target_class": NON_NEGATIVE,
    # attack radii and noise
    "eps": NON_NEGATIVE, "epsilons": NON_NEGATIVE, "linf_epsilons": NON_NEGATIVE, "l2_epsilons": NON_NEGATIVE,
    "cross_eps": NON_NEGATIVE, "cw_const": POSITIVE, "cw_initial_const": POSITIVE, "fgsm_eps": NON_NEGATIVE, "universal_eps": NON_NEGATIVE,
    "diversity_prob": PROBABILITY, "perlin_freq_sine": POSITIVE, "perlin_period": POSITIVE,
    "noise_centre": ANY_FINITE, "noise_spread": NON_NEGATIVE,
    # probabilities and fractions
    "prob_cap_min": OPEN_PROBABILITY, "reinit_below": PROBABILITY, "thresholds": PROBABILITY,
    "fraction": OPEN_PROBABILITY, "ink_threshold": PROBABILITY,
    # loss weights and regularisers
    "prev_coeff": NON_NEGATIVE, "sim_coeff": NON_NEGATIVE, "layer_factors": NON_NEGATIVE,
    "tv_weight": NON_NEGATIVE, "blur_sigma": NON_NEGATIVE, "blur_every": NON_NEGATIVE, "jitter": NON_NEGATIVE,
    "rotate": NON_NEGATIVE, "scale": NON_NEGATIVE, "decay_centre": ANY_FINITE, "max_shift": NON_NEGATIVE,
    "pointing_tolerance": NON_NEGATIVE,
    # pixel values (checked against the model's bounds where the model is known)
    "bounds": ANY_FINITE, "baseline": ANY_FINITE, "other_baselines": ANY_FINITE,
}


def field_constraints(cls: type, name: str) -> tuple[Any, ...] | None:
    """The constraints of field ``name`` of dataclass ``cls``: its annotation's, else :data:`RANGES`'s."""
    hint = typing.get_type_hints(cls, include_extras=True).get(name)
    declared: list[Any] = []
    for m in getattr(hint, "__metadata__", ()):
        if isinstance(m, at.GroupedMetadata):  # Interval(ge=0, le=1) is Ge(0) and Le(1)
            declared.extend(m)
        elif isinstance(m, at.BaseMetadata):
            declared.append(m)
    if declared:
        return tuple(declared)
    return RANGES.get(name)


def describe(constraints: tuple[Any, ...]) -> str:
    """``(Ge(0), Le(1))`` -> ``">= 0 and <= 1"``; ``()`` -> ``"finite"``."""
    words = []
    for c in constraints:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(c, attr, None)
            if bound is not None:
                words.append(f"{op} {bound}" if isinstance(bound, int) else f"{op} {bound:g}")
    return " and ".join(words) or "finite"


def violation(value: Any, constraints: tuple[Any, ...]) -> Any | None:
    """The first number in ``value`` (a number or a tuple of them) outside ``constraints``, else ``None``."""
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    for v in numbers:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            return v
        for c in constraints:
            if not _holds(v, c):
                return v
    return None


def _holds(v: float, c: Any) -> bool:
    checks = (("gt", lambda b: v > b), ("ge", lambda b: v >= b), ("lt", lambda b: v < b), ("le", lambda b: v <= b))
    return all(getattr(c, attr, None) is None or ok(getattr(c, attr)) for attr, ok in checks)


def is_numeric(tp: Any) -> bool:
    """Whether annotation ``tp`` holds numbers (``int``, ``float``, tuples and optionals of them)."""
    if tp in (int, float):
        return True
    return any(is_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)


def missing_ranges(config: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the numeric fields of ``config`` (recursively) that have no declared range."""
    missing = []
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            missing += missing_ranges(value, f"{prefix}{f.name}.")
        elif is_numeric(hints[f.name]) and field_constraints(type(config), f.name) is None:
            missing.append(f"{prefix}{f.name}")
    return missing
