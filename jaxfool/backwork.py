"""Backwork: gradient descent on inputs towards strongly classified inputs that resemble no training example.

After jalexvig/cnn_backwork ("backworking strongly classified spurious inputs in CNNs"). For a target label,
a batch of inputs starts at U(0, 1) and Adam minimises

    sum_k f_k * (prev_coeff / reference_k + sim_coeff / batch_k)  +  f_out * mean_b (1 - p_b(label))

over every named layer ``k`` but the output, where ``reference_k`` is the mean over the batch of the squared
distance from each generated input's activation to its nearest training activation of the same label, and
``batch_k`` the mean squared difference between the generated inputs' activations. Large distances make
small costs, so the inputs are pushed away from the training data and from each other while their class
probability is pushed up. An input whose probability stops rising while still low is re-initialised.

The per-label functions here work on one label's batch; :func:`run_backwork` vmaps them over labels and over
a sweep of hyperparameters, so all labels (and all settings) are one compiled step.

Choices that differ from the original, on purpose:

* pixels are clipped to the model's bounds after every step (the original clipped only at initialisation, so
  its images could leave [0, 1]; a fooling image outside the valid pixel range is not an image);
* the output term is ``-log p`` by default rather than ``1 - p`` (see :func:`output_cost`).

As in the original: an input is "stuck" when its last ``num_mono_dec_saves`` checked probabilities never rose
(its ``ProbTracker`` window: 3 values, so 2 comparisons) while the latest is below ``reinit_below``; a
re-initialised input gets new pixels but keeps Adam's moments (the original assigned the variable and left the
optimiser alone); the references are every training example of the label.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from annotated_types import Ge

from jaxfool import xla
from jaxfool.data.subsets import stratified_indices
from jaxfool.models.network import Network, Params, forward
from jaxfool.progress import bar as progress_bar

Array = jax.Array


@dataclasses.dataclass
class BackworkConfig:
    """The backwork search (defaults are the original study's).

    Attributes:
        images_per_label: generated inputs per label (the batch).
        learning_rate: Adam's step size on the inputs.
        prev_coeff: weight of the distance-to-training-data terms.
        sim_coeff: weight of the within-batch diversity terms.
        layer_factors: one factor per named layer, the output last: ``logspace(-5, -1, 5)`` with the
            output's multiplied by 100.
        prob_cap_min: the search stops when its least confident input reaches this probability.
        max_steps: at most this many checks (the study's "saves").
        updates_per_check: Adam updates between two checks.
        num_mono_dec_saves: re-initialise an input whose last this many checked probabilities never rose
            (the study's window: 3 values, 2 comparisons)...
        reinit_below: ...while the latest is below this probability.
        reset_adam_on_reinit: zero a re-initialised input's Adam moments; by default they are kept, as in the
            study (which assigned new pixels to the variable and left the optimiser alone).
        refs_per_label: training examples per label whose activations are the reference; 0 (the default, the
            study's) uses every training example of the label.
        dense_gap_refs: 0 (the study's cost) or ``N >= 2``: make each dense reference term independent of the
            reference count by giving it the size ``N`` references give. Unit by unit, the nearest of ``n``
            training values is ever closer as ``n`` grows, so ``1 / distance`` grows with ``n``; the term's
            distance is multiplied, per label, by ``gap(N) / gap(n)``, where ``gap`` is the references' mean
            squared leave-one-out nearest gap per unit, over the label's first ``N`` references and over all
            ``n`` (see :func:`dense_gap`); 1 for a label with at most ``N`` references.
        dense_reference: how a dense layer's activation is compared with the references: ``"per_unit"`` (the
            study's: each unit with the nearest value of that unit) or ``"whole"`` (the whole vector with the
            nearest training example's, as the spatial layers are).
        output_loss: ``"one_minus_p"`` (the study's ``1 - p``) or ``"cross_entropy"`` (``-log p``, the
            default; see :func:`output_cost` for why).
        stop_per_label: stop each label's batch on its own when its least confident input reaches
            ``prob_cap_min`` (the study ran one label at a time); by default all labels of a setting form
            one batch and stop together.
        labels: the target labels.

    :meth:`build` turns it (and a sweep) into what reaches ``jax.jit``: the static :class:`Backwork` and the
    traced :class:`BackworkParams`. The PRNG key is an argument of :func:`run_backwork`.
    """

    images_per_label: int = 8
    learning_rate: float = 0.01
    prev_coeff: float = 0.5
    sim_coeff: float = 0.5
    layer_factors: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1 * 100)
    prob_cap_min: float = 0.999
    max_steps: int = 60
    num_mono_dec_saves: int = 3
    updates_per_check: int = 1
    reinit_below: float = 0.99
    reset_adam_on_reinit: bool = False
    refs_per_label: int = 0
    dense_gap_refs: Annotated[int, Ge(0)] = 0
    dense_reference: str = "per_unit"
    output_loss: str = "cross_entropy"
    stop_per_label: bool = False
    labels: tuple[int, ...] = tuple(range(10))

    def validate(self) -> None:
        if self.images_per_label < 2:
            raise ValueError("backwork.images_per_label must be >= 2 (the batch term compares inputs)")
        if min(self.max_steps, self.updates_per_check) < 1:
            raise ValueError("backwork.max_steps and backwork.updates_per_check must be >= 1")
        if self.num_mono_dec_saves < 2:
            raise ValueError("backwork.num_mono_dec_saves must be >= 2 (it compares that many checked probabilities)")
        if self.refs_per_label == 1 or self.refs_per_label < 0:
            raise ValueError("backwork.refs_per_label must be 0 (every training example) or >= 2")
        if self.dense_gap_refs == 1 or self.dense_gap_refs < 0:
            raise ValueError("backwork.dense_gap_refs must be 0 (the study's unscaled cost) or >= 2 (a gap needs two "
                             "references)")
        if not 0 < self.prob_cap_min <= 1 or not 0 < self.reinit_below <= 1:
            raise ValueError("backwork.prob_cap_min and backwork.reinit_below must be in (0, 1]")
        if self.dense_reference not in ("per_unit", "whole"):
            raise ValueError(f"backwork.dense_reference={self.dense_reference!r} is not one of per_unit, whole")
        if self.dense_reference == "whole" and self.dense_gap_refs:
            raise ValueError("backwork.dense_gap_refs scales the per-unit dense term; with dense_reference=whole "
                             "set it to 0")
        if self.output_loss not in OUTPUT_LOSSES:
            raise ValueError(f"backwork.output_loss={self.output_loss!r} is not one of {', '.join(OUTPUT_LOSSES)}")
        if not self.labels:
            raise ValueError("backwork.labels is empty; give at least one label, e.g. (0,)")
        if len(self.layer_factors) == 0:
            raise ValueError("backwork.layer_factors is empty; give one factor per layer, the output last")

    def build(self, sweep: BackworkSweepConfig | None = None) -> tuple[Backwork, BackworkParams]:
        """The static settings and the traced hyperparameters stacked over the sweep's settings: leaves
        ``[settings, ...]`` (one setting without a sweep)."""
        self.validate()
        spec = Backwork(
            images_per_label=int(self.images_per_label), num_mono_dec_saves=int(self.num_mono_dec_saves),
            reinit_below=float(self.reinit_below), prob_cap_min=float(self.prob_cap_min),
            output_loss=self.output_loss, reset_adam_on_reinit=bool(self.reset_adam_on_reinit),
        )
        settings = (sweep or BackworkSweepConfig()).settings(self)
        hyper = BackworkParams(
            prev_coeff=jnp.array([s["prev_coeff"] for s in settings], jnp.float32),
            sim_coeff=jnp.array([s["sim_coeff"] for s in settings], jnp.float32),
            learning_rate=jnp.array([s["learning_rate"] for s in settings], jnp.float32),
            layer_factors=jnp.tile(jnp.asarray(self.layer_factors, jnp.float32), (len(settings), 1)),
        )
        return spec, hyper


@dataclasses.dataclass(frozen=True)
class Backwork:
    """The static part of the search: what fixes the compiled steps. Hashable: a static argument of ``jax.jit``.

    Attributes:
        images_per_label: generated inputs per label (the batch).
        num_mono_dec_saves: re-initialise an input whose probability has not risen over this many checks...
        reinit_below: ...while it is below this probability.
        prob_cap_min: a label's batch is done when its least confident input reaches this probability.
        output_loss: ``"cross_entropy"`` or ``"one_minus_p"`` (see :func:`output_cost`).
        reset_adam_on_reinit: zero a re-initialised input's Adam moments (the study keeps them).
    """

    images_per_label: int = 8
    num_mono_dec_saves: int = 3
    reinit_below: float = 0.99
    prob_cap_min: float = 0.999
    output_loss: str = "cross_entropy"
    reset_adam_on_reinit: bool = False


@dataclasses.dataclass
class BackworkSweepConfig:
    """A grid of backwork hyperparameters run as one vmapped program; empty tuples keep the base value."""

    prev_coeff: tuple[float, ...] = ()
    sim_coeff: tuple[float, ...] = ()
    learning_rate: tuple[float, ...] = ()

    def settings(self, base: BackworkConfig) -> list[dict[str, float]]:
        """The grid as a list of ``{name: value}``, one per setting (one setting when the sweep is empty)."""
        axes = {f.name: getattr(self, f.name) or (getattr(base, f.name),) for f in dataclasses.fields(self)}
        return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


class BackworkParams(NamedTuple):
    """Traced hyperparameters: vmapping over a stack of these is a sweep without recompilation."""

    prev_coeff: Array
    sim_coeff: Array
    learning_rate: Array
    layer_factors: Array  # [num_layers]


class References(NamedTuple):
    """One label's training activations per reference layer, laid out for fast nearest-neighbour costs.

    Spatial layers: ``acts[name]`` is ``[n, d]`` (flattened) and ``sqnorm[name]`` its squared row norms ``[n]``.
    Dense layers: ``acts[name]`` is ``[units, n]``, each row sorted, and ``sqnorm[name]`` is unused (``[0]``).
    ``scale[name]`` (a scalar) multiplies the layer's reference distance: 1 but for a dense layer under
    ``dense_gap_refs`` (see :class:`BackworkConfig`).
    """

    acts: dict[str, Array]
    sqnorm: dict[str, Array]
    scale: dict[str, Array]


class State(NamedTuple):
    """One label's search state.

    Attributes:
        x: ``[batch, H, W, C]`` the generated inputs.
        adam: Adam's moments for ``x``.
        history: ``[num_mono_dec_saves, batch]`` the latest correct-class probabilities, oldest first;
            ``-1`` marks checks not made yet (after initialisation or re-initialisation).
        prob: ``[batch]`` the correct-class probability at the last check.
        reinitialised: ``[batch]`` re-initialisations so far.
        steps: Adam updates taken.
        done: whether the least confident input has reached ``prob_cap_min``.
    """

    x: Array
    adam: optax.ScaleByAdamState
    history: Array
    prob: Array
    reinitialised: Array
    steps: Array
    done: Array


# ----------------------------------------------------------------------------------------------- the costs


def reference_distance(gen: Array, ref: Array) -> Array:
    """Mean over the batch of the squared distance to the nearest reference activation (the definition).

    Spatial activations (``gen: [batch, ...]`` of rank > 2) are compared whole, as the mean squared
    difference per example; dense ones (``[batch, units]``) unit by unit, as the study's ``fc`` layer:
    each unit's value against the nearest value of that unit among the references. This is the plain
    O(batch * n * d) form; :func:`backwork_cost` uses the equal, faster forms on :class:`References`.

    Args:
        gen: ``[batch, ...]`` activations of the generated inputs.
        ref: ``[n, ...]`` activations of training examples of the same label.

    Returns:
        A scalar.
    """
    if gen.ndim == 2:
        return jnp.mean(jnp.min(jnp.square(gen[:, None, :] - ref[None]), axis=1))
    diff = gen.reshape(len(gen), 1, -1) - ref.reshape(1, len(ref), -1)
    return jnp.mean(jnp.min(jnp.mean(jnp.square(diff), -1), axis=1))


def _spatial_reference_distance(gen: Array, ref: Array, ref_sqnorm: Array) -> Array:
    """:func:`reference_distance` for ``gen: [batch, ...]`` against ``ref: [n, d]`` with ``ref_sqnorm: [n]``."""
    g = gen.reshape(len(gen), -1)
    # |g - r|^2 = |g|^2 - 2 g.r + |r|^2 as one matmul, instead of a [batch, n, d] difference tensor.
    sq = jnp.sum(jnp.square(g), -1)[:, None] - 2 * g @ ref.T + ref_sqnorm[None, :]
    return jnp.mean(jnp.min(jnp.maximum(sq, 0.0), axis=1)) / g.shape[1]


def _dense_reference_distance(gen: Array, sorted_ref: Array) -> Array:
    """:func:`reference_distance` for ``gen: [batch, units]`` against ``sorted_ref: [units, n]``, each row sorted.

    The nearest value in one dimension is a neighbour in sorted order: a binary search per unit replaces the
    ``[batch, n, units]`` difference tensor (about 80x faster for the study's fc layer on CPU).
    """

    def per_unit(col: Array, q: Array) -> Array:
        i = jnp.clip(jnp.searchsorted(col, q), 1, col.shape[0] - 1)
        return jnp.minimum(jnp.square(q - col[i - 1]), jnp.square(q - col[i]))

    return jnp.mean(jax.vmap(per_unit, in_axes=(0, 1), out_axes=1)(sorted_ref, gen))


def batch_distance(gen: Array) -> Array:
    """Mean squared difference between all pairs (self-pairs included, as in the study) of ``gen: [batch, ...]``."""
    g = gen.reshape(len(gen), -1)
    return jnp.mean(jnp.square(g[:, None, :] - g[None, :, :]))


OUTPUT_LOSSES = ("cross_entropy", "one_minus_p")


def output_cost(logits: Array, label: Array, loss: str = "cross_entropy") -> Array:
    """The output term over ``logits: [batch, classes]``: mean ``1 - p(label)`` (the study's) or ``-log p(label)``.

    Near ``p = 1`` both have the same gradient with respect to the label's logit (``-(1 - p)`` against
    ``-p (1 - p)``), so they favour the same confident inputs; far from it, ``1 - p`` has a vanishing gradient
    (``p`` of about 1e-5 for noise the net confidently calls another digit), and the distance terms then drive
    the search away from the label for good. Cross-entropy keeps pulling.
    """
    if loss == "cross_entropy":
        return -jnp.mean(jax.nn.log_softmax(logits)[:, label])
    return jnp.mean(1.0 - jax.nn.softmax(logits)[:, label])


def _distances(net: Network, params: Params, x: Array, refs: References) -> tuple[Array, dict[str, tuple[Array, Array]]]:
    """The logits of ``x: [batch, H, W, C]`` and, per reference layer, ``(reference_k, batch_k)``."""
    layers = net.layer_names[:-1]
    logits, acts = forward(net, params, x, layers=layers)
    out = {}
    for name in layers:
        a = acts[name]
        if a.ndim == 2 and refs.sqnorm[name].shape[-1] == 0:  # dense, per unit (the study's)
            ref = _dense_reference_distance(a, refs.acts[name])
        else:  # spatial, or dense compared whole (dense_reference="whole")
            ref = _spatial_reference_distance(a, refs.acts[name], refs.sqnorm[name])
        out[name] = (ref * refs.scale[name], batch_distance(a))
    return logits, out


def backwork_cost(
    net: Network,
    params: Params,
    x: Array,
    refs: References,
    label: Array,
    hyper: BackworkParams,
    output_loss: str = "cross_entropy",
) -> tuple[Array, Array]:
    """The total backwork cost of one label's batch ``x: [batch, H, W, C]``, and its logits."""
    logits, dists = _distances(net, params, x, refs)
    cost = hyper.layer_factors[-1] * output_cost(logits, label, output_loss)
    for i, (ref, batch) in enumerate(dists.values()):
        cost += hyper.layer_factors[i] * (hyper.prev_coeff / ref + hyper.sim_coeff / batch)
    return cost, logits


def cost_terms(
    net: Network,
    params: Params,
    x: Array,
    refs: References,
    label: Array,
    hyper: BackworkParams,
    output_loss: str = "cross_entropy",
) -> dict[str, Array]:
    """Each weighted term of :func:`backwork_cost` (they sum to it) for one label's batch ``x: [batch, H, W, C]``.

    Keys: ``"output"``, and per reference layer ``"<layer>/reference"`` (``f_k * prev_coeff / reference_k``)
    and ``"<layer>/batch"`` (``f_k * sim_coeff / batch_k``).
    """
    logits, dists = _distances(net, params, x, refs)
    terms = {"output": hyper.layer_factors[-1] * output_cost(logits, label, output_loss)}
    for i, (name, (ref, batch)) in enumerate(dists.items()):
        terms[f"{name}/reference"] = hyper.layer_factors[i] * hyper.prev_coeff / ref
        terms[f"{name}/batch"] = hyper.layer_factors[i] * hyper.sim_coeff / batch
    return terms


def term_gradient_norms(
    net: Network,
    params: Params,
    x: Array,
    refs: References,
    label: Array,
    hyper: BackworkParams,
    output_loss: str = "cross_entropy",
) -> dict[str, tuple[float, float]]:
    """``{term: (value, norm of its gradient with respect to x)}`` for one label's batch ``x: [batch, H, W, C]``.

    A diagnostic (one gradient per term, not jitted): Adam normalises the total gradient, so what steers the
    search is how the terms' gradients compare.
    """
    out = {}
    for name in cost_terms(net, params, x, refs, label, hyper, output_loss):
        value, grad = jax.value_and_grad(lambda z, n=name: cost_terms(net, params, z, refs, label, hyper,
                                                                      output_loss)[n])(x)
        out[name] = (float(value), float(jnp.linalg.norm(grad)))
    return out


# ------------------------------------------------------------------------------------------ one label's step


def init_state(net: Network, spec: Backwork, *, key: Array) -> State:
    """Inputs drawn uniformly in the network's bounds, fresh optimiser state, empty history."""
    b = spec.images_per_label
    lo, hi = net.bounds
    x = jax.random.uniform(key, (b, *net.input_shape), minval=lo, maxval=hi)
    return State(
        x=x,
        adam=optax.scale_by_adam().init(x),
        history=jnp.full((spec.num_mono_dec_saves, b), -1.0, jnp.float32),
        prob=jnp.zeros(b),
        reinitialised=jnp.zeros(b, jnp.int32),
        steps=jnp.zeros((), jnp.int32),
        done=jnp.zeros((), bool),
    )


def record_check(history: Array, prob: Array) -> Array:
    """``history [checks, batch]`` with ``prob [batch]`` appended and the oldest entry dropped."""
    return jnp.concatenate([history[1:], prob[None]])


def stuck(history: Array, prob: Array, reinit_below: float) -> Array:
    """``[batch]`` whether each input's probabilities in ``history`` never rose, while the latest is low.

    The study's ``ProbTracker.get_mask``: with a window of 3, an input is stuck at the third check after its
    (re-)initialisation if ``p1 >= p2 >= p3`` and ``p3 < reinit_below``.

    Args:
        history: ``[checks, batch]`` probabilities, oldest first, ``-1`` for checks not made yet.
        prob: ``[batch]`` the latest probability.
        reinit_below: only inputs below this probability count as stuck.
    """
    full = jnp.all(history >= 0, axis=0)
    not_rising = jnp.all(jnp.diff(history, axis=0) <= 0, axis=0)
    return full & not_rising & (prob < reinit_below)


def backwork_update(
    net: Network,
    params: Params,
    refs: References,
    label: Array,
    hyper: BackworkParams,
    state: State,
    output_loss: str = "cross_entropy",
) -> State:
    """One Adam step on one label's batch ``state.x: [batch, H, W, C]``, pixels clipped to the bounds.

    A label that is already done is returned unchanged, so labels (and sweep settings) stop independently
    while sharing one vmapped step.
    """
    grad, _ = jax.grad(backwork_cost, argnums=2, has_aux=True)(net, params, state.x, refs, label, hyper, output_loss)
    updates, adam = optax.scale_by_adam().update(grad, state.adam)
    x = jnp.clip(state.x - hyper.learning_rate * updates, *net.bounds)
    new = state._replace(x=x, adam=adam, steps=state.steps + 1)
    return jax.tree.map(lambda old, n: jnp.where(state.done, old, n), state, new)


def backwork_check(
    net: Network, spec: Backwork, params: Params, label: Array, state: State, *, key: Array
) -> State:
    """The study's "save": probabilities of one label's batch, re-initialisation of stuck inputs, stopping.

    Re-initialised inputs restart from ``U(bounds)`` with an empty history; their Adam moments are kept
    unless ``spec.reset_adam_on_reinit``.
    """
    prob = jax.nn.softmax(forward(net, params, state.x)[0])[:, label]
    history = record_check(state.history, prob)
    redo = stuck(history, prob, spec.reinit_below)
    per_image = redo.reshape(-1, *([1] * (state.x.ndim - 1)))
    x = jnp.where(per_image, jax.random.uniform(key, state.x.shape, minval=net.bounds[0], maxval=net.bounds[1]), state.x)
    adam = state.adam
    if spec.reset_adam_on_reinit:
        adam = adam._replace(mu=jnp.where(per_image, 0.0, adam.mu), nu=jnp.where(per_image, 0.0, adam.nu))
    new = State(
        x=x,
        adam=adam,
        history=jnp.where(redo[None], -1.0, history),
        prob=prob,
        reinitialised=state.reinitialised + redo,
        steps=state.steps,
        done=jnp.min(prob) >= spec.prob_cap_min,
    )
    return jax.tree.map(lambda old, n: jnp.where(state.done, old, n), state, new)


# ------------------------------------------------------------------------------------- references and runs


@functools.partial(xla.jit, static_argnames=("net", "layers"))
def activations(net: Network, params: Params, x: Array, layers: tuple[str, ...]) -> dict[str, Array]:
    """The named activations ``layers`` of a batch ``x: [batch, H, W, C]``: leaves ``[batch, ...]``.

    One jitted function for the module, so that every call with the same network and shapes reuses one program.
    """
    return forward(net, params, x, layers=layers)[1]


def reference_activations(
    net: Network,
    params: Params,
    images: np.ndarray,
    labels: np.ndarray,
    targets: Sequence[int],
    per_label: int = 0,
    *,
    gap_refs: int = 0,
    dense_whole: bool = False,
    chunk: int = 1000,
) -> References:
    """Training activations of every reference layer, stacked over ``targets``: leaves ``[labels, n, ...]``.

    Each target uses its first ``min(per_label, count)`` training examples (all of them when ``per_label`` is
    0). Labels have different counts; to vmap over labels, each label's set is padded to the largest count
    ``n`` by repeating its own examples, which leaves every nearest-neighbour distance unchanged. Activations
    are computed ``chunk`` images at a time by one compiled forward pass (the last chunk padded), so memory
    beyond the references themselves stays bounded on full MNIST.

    Args:
        net: the network; its layers but the last are the reference layers.
        params: trained parameters.
        images: ``[N, H, W, C]`` training images.
        labels: ``[N]`` their labels.
        targets: the labels to collect references for.
        per_label: at most this many examples per label; 0 keeps all.
        gap_refs: 0, or the reference count whose size the dense terms keep: each label's dense ``scale`` is
            ``dense_gap(first gap_refs) / dense_gap(all its references)`` (1 with at most ``gap_refs``).
        dense_whole: lay dense layers out like spatial ones (compared whole, ``dense_reference="whole"``).
        chunk: images per forward pass.
    """
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be >= 1")
    counts = [int(np.sum(labels == t)) for t in targets]
    if min(counts) == 0:
        raise ValueError(f"no training examples of label {targets[counts.index(0)]}; check backwork.labels")
    n = max(counts) if per_label <= 0 else min(per_label, max(counts))
    layers = net.layer_names[:-1]
    chunk = min(chunk, n)
    bufs: dict[str, np.ndarray] | None = None
    for j, t in enumerate(targets):
        rows = np.flatnonzero(labels == t)[: n]
        rows = np.resize(rows, n)  # repeats the label's own examples up to n
        for i in range(0, n, chunk):
            x = images[rows[i : i + chunk]]
            if len(x) < chunk:  # pad so every call has the compiled shape
                x = np.concatenate([x, np.zeros((chunk - len(x), *x.shape[1:]), x.dtype)])
            acts = activations(net, params, jnp.asarray(x), layers)
            if bufs is None:
                bufs = {k: np.empty((len(targets), n, int(np.prod(a.shape[1:]))), np.float32) for k, a in acts.items()}
            m = min(chunk, n - i)
            for k in layers:
                bufs[k][j, i : i + m] = np.asarray(acts[k]).reshape(chunk, -1)[:m]
    out, sqnorm, scale = {}, {}, {}
    kept = [min(c, n) for c in counts]  # each label's own references, before the padding repeats
    for name in layers:
        shape = acts[name].shape[1:]
        scale[name] = jnp.ones(len(targets), jnp.float32)
        if len(shape) == 1 and not dense_whole:  # dense: per unit, its values sorted (_dense_reference_distance)
            if gap_refs:
                scale[name] = jnp.asarray([
                    1.0 if k <= gap_refs else dense_gap(bufs[name][j, :gap_refs]) / dense_gap(bufs[name][j, :k])
                    for j, k in enumerate(kept)], jnp.float32)
            out[name] = jnp.asarray(np.sort(np.swapaxes(bufs.pop(name), 1, 2), axis=-1))
            sqnorm[name] = jnp.zeros((len(targets), 0))
        else:
            out[name] = jnp.asarray(bufs.pop(name))
            sqnorm[name] = jnp.sum(jnp.square(out[name]), -1)
    return References(out, sqnorm, scale)


def config_references(
    net: Network, params: Params, train_images: np.ndarray, train_labels: np.ndarray, config: BackworkConfig
) -> References:
    """:func:`reference_activations` as ``config`` asks for them: its labels, ``refs_per_label``,
    ``dense_gap_refs`` and ``dense_reference`` (``train_images: [n, H, W, C]``, ``train_labels: [n]``)."""
    targets = tuple(net.check_class(t) for t in config.labels)
    return reference_activations(net, params, train_images, train_labels, targets, config.refs_per_label,
                                 gap_refs=config.dense_gap_refs, dense_whole=config.dense_reference == "whole")


def dense_gap(acts: np.ndarray) -> float:
    """Mean squared leave-one-out nearest gap of dense activations ``acts: [n, units]``, unit by unit.

    For each unit, each of the ``n`` values' squared distance to the nearest other value of that unit: the size
    the dense reference distance has for an input that lies among the references. It shrinks as ``n`` grows
    (about as ``1 / n^2`` for a smooth density), which is what ``dense_gap_refs`` corrects for.
    """
    if len(acts) < 2:
        raise ValueError(f"dense_gap needs at least 2 examples, got {len(acts)}")
    gaps = np.diff(np.sort(np.asarray(acts, np.float64), axis=0), axis=0)  # [n - 1, units]
    inf = np.full((1, gaps.shape[1]), np.inf)
    nearest = np.minimum(np.concatenate([inf, gaps]), np.concatenate([gaps, inf]))
    return float(np.mean(np.square(nearest)))


class BackworkResult(NamedTuple):
    """What :func:`run_backwork` found; leading axes ``[settings, labels, ...]``.

    Attributes:
        images: ``[settings, labels, batch, H, W, C]``.
        probs: ``[settings, labels, batch]`` final correct-class probabilities.
        reinitialised: ``[settings, labels, batch]``.
        steps: ``[settings, labels]`` Adam updates each label's search took.
        settings: the hyperparameters of each setting.
        labels: the target labels.
        trajectory: ``[checks, settings, labels, batch]`` the correct-class probability at every check (before
            that check's re-initialisations): whether an unfinished search was still rising; ``None`` if not
            recorded.
    """

    images: np.ndarray
    probs: np.ndarray
    reinitialised: np.ndarray
    steps: np.ndarray
    settings: list[dict[str, float]]
    labels: tuple[int, ...]
    trajectory: np.ndarray | None = None

    def summary(self, setting: int = 0, cap: float = 0.999) -> dict[str, Any]:
        """One setting's per-image confidences (label-major), labels, steps and re-initialisations, and how many
        inputs reach ``cap`` and 0.9999."""
        probs = self.probs[setting]  # [labels, batch]
        return {
            "confidences": probs.reshape(-1).tolist(),
            "labels": np.repeat(self.labels, probs.shape[1]).tolist(),
            "steps": self.steps[setting].tolist(),
            "reinitialised": self.reinitialised[setting].reshape(-1).tolist(),
            "n_at_least_cap": int((probs >= cap).sum()),
            "n_at_least_0.9999": int((probs >= 0.9999).sum()),
            "median_confidence": float(np.median(probs)),
            "min_confidence": float(probs.min()),
            "per_label": [
                {"label": int(lab), "n_at_least_cap": int((p >= cap).sum()), "n_at_least_0.9999": int((p >= 0.9999).sum()),
                 "median": float(np.median(p)), "min": float(p.min()), "reinitialised": int(r.sum())}
                for lab, p, r in zip(self.labels, probs, self.reinitialised[setting], strict=True)
            ],
            # the least confident input of each label at every check, label-major: [labels][checks]
            "min_prob_per_check": (None if self.trajectory is None
                                   else self.trajectory[:, setting].min(-1).T.round(6).tolist()),
        }


class Steps(NamedTuple):
    """The search's two jitted functions over ``[settings, labels]`` (each compiles once).

    ``update(params, refs, labels, hypers, state) -> state`` and ``check(params, labels, state, keys) -> state``,
    where ``refs`` leaves and ``keys`` are ``[labels, ...]``, ``hypers`` leaves ``[settings, ...]`` and ``state``
    leaves ``[settings, labels, ...]``.
    """

    update: Callable[..., State]
    check: Callable[..., State]


@functools.lru_cache(maxsize=16)
def make_steps(net: Network, spec: Backwork) -> Steps:
    """vmaps :func:`backwork_update` and :func:`backwork_check` over labels, then over sweep settings, and jits.

    Cached on ``(net, spec)``, both hashable: repeated searches (retraining rounds, tests) compile once.
    """

    def update_one(params, refs, label, hyper, state):
        return backwork_update(net, params, refs, label, hyper, state, spec.output_loss)

    update = jax.vmap(update_one, in_axes=(None, 0, 0, None, 0))
    update = jax.vmap(update, in_axes=(None, None, None, 0, 0))

    def check_one(params, label, state, key):
        return backwork_check(net, spec, params, label, state, key=key)

    # Keys are per label, shared by all settings: every setting of a sweep starts from the same noise.
    check = jax.vmap(jax.vmap(check_one, in_axes=(None, 0, 0, 0)), in_axes=(None, None, 0, None))
    return Steps(xla.jit(update, donate_argnums=4), xla.jit(check, donate_argnums=2))


def run_backwork(
    net: Network,
    params: Params,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    config: BackworkConfig,
    sweep: BackworkSweepConfig | None = None,
    *,
    key: Array,
    references: References | None = None,
    desc: str = "backwork",
    progress: bool = False,
) -> BackworkResult:
    """Runs the backwork search for every label (and sweep setting) at once.

    Args:
        net: the network; its layers but the last are the reference layers.
        params: trained parameters.
        train_images: ``[n, H, W, C]`` training images (the references are drawn from them).
        train_labels: ``[n]`` their labels.
        config: the search settings.
        sweep: optional grid of hyperparameters, run as one vmapped program.
        key: PRNG key of the initial inputs and of every re-initialisation.
        references: :func:`config_references` of ``config``, to reuse across searches on the same network;
            computed here by default.
        desc: progress-bar label.
        progress: show a progress bar (see :mod:`jaxfool.progress`).
    """
    spec, hypers = config.build(sweep)
    if len(config.layer_factors) != len(net.layer_names):
        raise ValueError(
            f"backwork.layer_factors has {len(config.layer_factors)} entries but {net.name} has "
            f"{len(net.layer_names)} layers ({', '.join(net.layer_names)}); give one factor per layer"
        )
    targets = tuple(net.check_class(t) for t in config.labels)
    settings = (sweep or BackworkSweepConfig()).settings(config)
    refs = config_references(net, params, train_images, train_labels, config) if references is None else references
    n_set, n_lab = len(settings), len(targets)

    init_key, key = jax.random.split(key)
    one_setting = jax.vmap(lambda k: init_state(net, spec, key=k))(jax.random.split(init_key, n_lab))
    state = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_set, *a.shape)).copy(), one_setting)
    steps = make_steps(net, spec)
    labels = jnp.asarray(targets, jnp.int32)
    trajectory = []
    with progress_bar(range(config.max_steps), progress=progress, desc=desc) as bar:
        for _ in bar:
            for _ in range(config.updates_per_check):
                state = steps.update(params, refs, labels, hypers, state)
            key, check_key = jax.random.split(key)
            state = steps.check(params, labels, state, jax.random.split(check_key, n_lab))
            trajectory.append(np.asarray(state.prob))
            if not config.stop_per_label:  # a setting's labels stop together, when all are done
                state = state._replace(done=jnp.broadcast_to(state.done.all(1, keepdims=True), state.done.shape))
            bar.set_postfix(min_p=f"{float(state.prob.min()):.5f}", done=f"{int(state.done.sum())}/{n_set * n_lab}")
            if bool(state.done.all()):
                break
    # Final probabilities from the final inputs (re-initialised inputs have not been checked yet).
    x = np.asarray(state.x)
    flat = x.reshape(-1, *x.shape[3:])
    probs = np.asarray(jax.nn.softmax(forward(net, params, jnp.asarray(flat))[0]))
    probs = probs.reshape(n_set, n_lab, -1, probs.shape[-1])[..., :]
    correct = np.take_along_axis(probs, np.asarray(targets)[None, :, None, None], axis=-1)[..., 0]
    return BackworkResult(
        images=x,
        probs=correct,
        reinitialised=np.asarray(state.reinitialised),
        steps=np.asarray(state.steps),
        settings=settings,
        labels=targets,
        trajectory=np.stack(trajectory),
    )


@functools.partial(xla.jit, static_argnames=("exclude_self",))
def _nearest_in_chunk(q: Array, p: Array, q_start: Array, p_start: Array, p_valid: Array, exclude_self: bool) -> Array:
    """``[Q]`` smallest squared distance from each row of ``q: [Q, d]`` to the first ``p_valid`` rows of
    ``p: [P, d]``; with ``exclude_self``, query ``q_start + i`` skips pool row ``p_start + i`` (itself)."""
    sq = jnp.sum(jnp.square(q), -1)[:, None] - 2 * q @ p.T + jnp.sum(jnp.square(p), -1)[None]
    cols = jnp.arange(p.shape[0])
    sq = jnp.where(cols[None] < p_valid, sq, jnp.inf)
    if exclude_self:
        sq = jnp.where((q_start + jnp.arange(q.shape[0]))[:, None] == (p_start + cols)[None], jnp.inf, sq)
    return jnp.min(sq, axis=1)


def nearest_distances(
    queries: np.ndarray, pool: np.ndarray, *, exclude_self: bool = False, chunk: int = 1024, pool_chunk: int = 8192
) -> np.ndarray:
    """Euclidean distance from each of ``queries [q, ...]`` to its nearest row of ``pool [n, ...]``.

    With ``exclude_self`` (``queries`` is ``pool``), an example is not its own neighbour. Computed ``chunk``
    queries against ``pool_chunk`` pool rows at a time (a running minimum; both padded to one compiled shape), so
    memory beyond the inputs is ``chunk x pool_chunk`` distances, whatever the pool size (all 60,000 MNIST digits).
    """
    q = np.asarray(queries, np.float32).reshape(len(queries), -1)
    p = np.asarray(pool, np.float32).reshape(len(pool), -1)
    if exclude_self and len(p) < 2:
        raise ValueError("nearest_distances with exclude_self needs a pool of at least 2 examples")
    qc, pc = min(chunk, len(q)), min(pool_chunk, len(p))
    # Padded once to whole chunks (the queries are visited once per pool chunk); padded rows are never read back.
    q_chunks = [jnp.asarray(c) for c in np.split(np.pad(q, ((0, -len(q) % qc), (0, 0))), range(qc, len(q), qc))]
    best = np.full(len(q), np.inf, np.float32)
    for j in range(0, len(p), pc):
        pj = jnp.asarray(np.pad(p[j : j + pc], ((0, pc - len(p[j : j + pc])), (0, 0))))
        for i, qi in zip(range(0, len(q), qc), q_chunks):
            m = np.asarray(_nearest_in_chunk(qi, pj, i, j, len(p) - j, exclude_self))[: len(q) - i]
            np.minimum(best[i : i + qc], m, out=best[i : i + qc])
    return np.sqrt(np.maximum(best, 0.0))


def nearest_neighbour_report(
    net: Network, params: Params, generated: np.ndarray, labels: Sequence[int], train_images: np.ndarray,
    train_labels: np.ndarray, *, max_train: int = 0, layers: Sequence[str] = (), batch_size: int = 500,
) -> dict[str, Any]:
    """Per layer, the generated inputs' distance to their nearest training example next to the training
    examples' own nearest-neighbour distance (leave-one-out), per label.

    Distances are Euclidean, on each reference layer's activations (``inputs`` is pixel space); training
    examples are compared against all kept training examples (any label). One layer's training activations
    are held at a time and the distances are chunked (:func:`nearest_distances`), so memory stays bounded on
    all 60,000 MNIST digits; time grows as the square of the kept examples.

    Args:
        net, params: the network.
        generated: ``[labels, batch, H, W, C]``, e.g. one setting of :attr:`BackworkResult.images`.
        labels: the label of each row of ``generated``.
        train_images: ``[n, H, W, C]``.
        train_labels: ``[n]``.
        max_train: keep this many training examples, stratified by class (0: all).
        layers: the layers to compare on, the first being the one ``pixel_space_all_exceed`` reads (default: every
            reference layer, ``inputs`` first).
        batch_size: examples per forward pass (bounds memory).

    Returns:
        ``{"train_examples", "layers": {layer: [per label: generated_nn, train_nn_median,
        all_generated_exceed_train_median]}, "pixel_space_all_exceed": [per label]}``.
    """
    keep = stratified_indices(train_labels, max_train)
    tr_x, tr_y = train_images[keep], train_labels[keep]
    layers = tuple(layers) or net.layer_names[:-1]
    unknown = [name for name in layers if name not in net.layer_names[:-1]]
    if unknown:
        raise ValueError(f"nearest-neighbour layers {unknown} are not reference layers of {net.name}; "
                         f"choose from {', '.join(net.layer_names[:-1])}")

    def acts(x: np.ndarray, layer: str) -> np.ndarray:
        chunks = [np.asarray(activations(net, params, jnp.asarray(x[i : i + batch_size]), (layer,))[layer])
                  for i in range(0, len(x), batch_size)]
        return np.concatenate([c.reshape(len(c), -1) for c in chunks])

    gen_x = generated.reshape(-1, *generated.shape[2:])
    out: dict[str, Any] = {"train_examples": len(keep), "layers": {}}
    for layer in layers:
        tr_acts = acts(tr_x, layer)
        gen_nn = nearest_distances(acts(gen_x, layer), tr_acts).reshape(len(labels), -1)
        tr_nn = nearest_distances(tr_acts, tr_acts, exclude_self=True)
        del tr_acts
        per_label = []
        for i, lab in enumerate(labels):
            median_train = float(np.median(tr_nn[tr_y == lab]))
            per_label.append({
                "label": int(lab),
                "generated_nn": gen_nn[i].tolist(),
                "train_nn_median": median_train,
                "all_generated_exceed_train_median": bool((gen_nn[i] > median_train).all()),
            })
        out["layers"][layer] = per_label
    out["pixel_space_all_exceed"] = [p["all_generated_exceed_train_median"] for p in out["layers"][layers[0]]]
    return out


def logspace_factors(num_layers: int, output_boost: float = 100.0) -> tuple[float, ...]:
    """The study's layer factors for a network of ``num_layers`` named layers: ``logspace(-5, -1, L)``, the
    last multiplied by ``output_boost``."""
    f = [10.0 ** (-5 + 4 * i / (num_layers - 1)) for i in range(num_layers)]
    f[-1] *= output_boost
    return tuple(float(f"{v:.6g}") for v in f)
