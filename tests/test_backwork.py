"""The backwork costs against hand-computed values, the vmapped step against per-label steps, the
re-initialisation rule, compile-once, and bad inputs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool import backwork
from jaxfool.backwork import BackworkConfig, BackworkSweepConfig
from jaxfool.models import forward, mnist_cnn

KEY = jax.random.key(0)


# ------------------------------------------------------------------------------------------------ costs


def test_reference_distance_spatial_by_hand():
    # Two generated "images" of 2 pixels each, three references.
    gen = jnp.array([[[0.0], [1.0]], [[2.0], [2.0]]])  # [2, 2, 1]
    ref = jnp.array([[[0.0], [0.0]], [[1.0], [1.0]], [[3.0], [3.0]]])
    # Per example: mean sq diff to each ref -> gen0: (0+1)/2=0.5, (1+0)/2=0.5, (9+4)/2=6.5 -> min 0.5
    #                                         gen1: 4, 1, 1 -> min 1.   Mean over the batch: 0.75.
    assert float(backwork.reference_distance(gen, ref)) == pytest.approx(0.75)


def test_reference_distance_dense_is_per_unit_by_hand():
    gen = jnp.array([[0.0, 10.0], [4.0, 4.0]])  # [batch=2, units=2]
    ref = jnp.array([[1.0, 7.0], [5.0, 3.0]])  # [n=2, units=2]
    # unit 0: gen 0 -> min(1, 25)=1; gen 4 -> min(9, 1)=1.  unit 1: gen 10 -> min(9, 49)=9; gen 4 -> min(9, 1)=1
    assert float(backwork.reference_distance(gen, ref)) == pytest.approx((1 + 1 + 9 + 1) / 4)


def test_batch_distance_by_hand():
    gen = jnp.array([[0.0, 0.0], [1.0, 3.0]])
    # pairs (0,0),(1,1): 0; (0,1),(1,0): (1 + 9) per pair over 2 dims -> mean over 2*2*2 entries = 20 / 8
    assert float(backwork.batch_distance(gen)) == pytest.approx(20 / 8)


def test_output_cost_by_hand():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    assert float(backwork.output_cost(logits, 0, "one_minus_p")) == pytest.approx(1 - (0.7 + 0.1) / 2, rel=1e-6)
    assert float(backwork.output_cost(logits, 0, "cross_entropy")) == pytest.approx(
        -(np.log(0.7) + np.log(0.1)) / 2, rel=1e-6)


def test_fast_reference_forms_equal_the_definition():
    key1, key2, key3, key4 = jax.random.split(jax.random.key(0), 4)
    gen_s, ref_s = jax.random.normal(key1, (4, 3, 3, 2)), jax.random.normal(key2, (9, 3, 3, 2))
    flat = ref_s.reshape(9, -1)
    fast = backwork._spatial_reference_distance(gen_s, flat, jnp.sum(flat**2, -1))
    assert float(fast) == pytest.approx(float(backwork.reference_distance(gen_s, ref_s)), rel=1e-5)
    gen_d, ref_d = jax.random.normal(key3, (4, 16)), jax.random.normal(key4, (9, 16))
    fast = backwork._dense_reference_distance(gen_d, jnp.sort(ref_d.T, axis=-1))
    assert float(fast) == pytest.approx(float(backwork.reference_distance(gen_d, ref_d)), rel=1e-6)
    # and their gradients
    g_fast = jax.grad(lambda g: backwork._dense_reference_distance(g, jnp.sort(ref_d.T, -1)))(gen_d)
    g_def = jax.grad(lambda g: backwork.reference_distance(g, ref_d))(gen_d)
    np.testing.assert_allclose(g_fast, g_def, rtol=1e-5, atol=1e-7)


def test_total_cost_combines_terms_with_factors(trained_mnist, mnist):
    net, params = trained_mnist
    cfg = BackworkConfig(images_per_label=3, refs_per_label=5, labels=(2,))
    refs = backwork.reference_activations(net, params, mnist.train_images, mnist.train_labels, (2,), 5)
    refs1 = jax.tree.map(lambda a: a[0], refs)
    hyper = jax.tree.map(lambda a: a[0], cfg.build()[1])
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    cost, _ = backwork.backwork_cost(net, params, x, refs1, jnp.int32(2), hyper)

    ref_x = jnp.asarray(mnist.train_images[mnist.train_labels == 2][:5])
    logits, acts = forward(net, params, x, layers=net.layer_names)
    _, ref_acts = forward(net, params, ref_x, layers=net.layer_names)
    f = cfg.layer_factors
    expected = f[-1] * float(jnp.mean(-jax.nn.log_softmax(logits)[:, 2]))  # the default output term
    for i, name in enumerate(net.layer_names[:-1]):
        expected += f[i] * (0.5 / float(backwork.reference_distance(acts[name], ref_acts[name]))
                            + 0.5 / float(backwork.batch_distance(acts[name])))
    assert float(cost) == pytest.approx(expected, rel=1e-4)


def test_study_layer_factors():
    assert backwork.logspace_factors(5) == pytest.approx(BackworkConfig().layer_factors)
    assert BackworkConfig().layer_factors == pytest.approx((1e-5, 1e-4, 1e-3, 1e-2, 10.0))


# ---------------------------------------------------------------------------------- re-initialisation rule


def test_stuck_rule():
    # history [checks = 3, batch = 5], oldest first
    history = jnp.array([
        [0.4, 0.6, 0.5, -1.0, 0.994],
        [0.3, 0.5, 0.5, 0.2, 0.993],
        [0.2, 0.6, 0.5, 0.1, 0.992],
    ])
    prob = history[-1]
    stuck = backwork.stuck(history, prob, reinit_below=0.99)
    # 0: falling throughout -> stuck; 1: rose at the last check -> not; 2: flat (never rose) -> stuck;
    # 3: history not full yet -> not; 4: falling but above 0.99 -> not
    assert stuck.tolist() == [True, False, True, False, False]


class StudyProbTracker:
    """jalexvig/cnn_backwork's ProbTracker (cnn_backwork.py), transcribed: the reference for the rule."""

    def __init__(self, timesteps, batch_size):
        self._tracker = np.full((timesteps, batch_size), np.nan)

    def __call__(self, probs):
        for j, prob in enumerate(probs):
            nan_idxs = np.where(np.isnan(self._tracker[:, j]))[0]
            if len(nan_idxs):
                self._tracker[nan_idxs[0], j] = prob
            else:
                self._tracker[:-1, j] = self._tracker[1:, j]
                self._tracker[-1, j] = prob

    def get_mask(self):
        m = ~np.isnan(self._tracker).any(axis=0)
        m &= (np.diff(self._tracker, axis=0) <= 0).all(axis=0)
        return m & (self._tracker[-1] < 0.99)

    def mark_replaced_inputs(self, replacement_mask):
        self._tracker[:, replacement_mask] = np.nan


def resets(sequence, num_mono_dec_saves=3, impl="jaxfool"):
    """The checks (1-based) at which an input whose checked probabilities are ``sequence`` is re-initialised."""
    out = []
    if impl == "study":
        tracker = StudyProbTracker(num_mono_dec_saves, 1)
        for i, p in enumerate(sequence):
            tracker([p])
            if tracker.get_mask()[0]:
                out.append(i + 1)
                tracker.mark_replaced_inputs(np.array([True]))
        return out
    history = jnp.full((num_mono_dec_saves, 1), -1.0)
    for i, p in enumerate(sequence):
        history = backwork.record_check(history, jnp.array([p]))
        if bool(backwork.stuck(history, history[-1], reinit_below=0.99)[0]):
            out.append(i + 1)
            history = jnp.full_like(history, -1.0)
    return out


def test_reinitialisation_at_the_studys_third_check():
    # Falling from the start: the study's tracker (3 values) resets at the third check; jaxfool's former rule
    # (4 values, 3 comparisons) waited for the fourth.
    falling = [0.30, 0.20, 0.20, 0.10, 0.05, 0.04]
    assert resets(falling, impl="study") == [3, 6]
    assert resets(falling) == [3, 6]
    assert resets(falling, num_mono_dec_saves=4) == [4]
    # A rise restarts the count; a confident input (>= 0.99) is never reset.
    assert resets([0.3, 0.2, 0.25, 0.2, 0.1]) == resets([0.3, 0.2, 0.25, 0.2, 0.1], impl="study") == [5]
    assert resets([0.995, 0.994, 0.993]) == resets([0.995, 0.994, 0.993], impl="study") == []


def test_reinitialisation_matches_the_study_on_random_sequences():
    rng = np.random.default_rng(0)
    for _ in range(30):
        # coarse values so that ties (flat stretches, which count as not rising) occur
        seq = np.round(rng.uniform(0.0, 1.0, size=12), 1).astype(np.float32).tolist()
        assert resets(seq) == resets(seq, impl="study"), seq


@pytest.mark.parametrize("reset_adam", [False, True])
def test_check_reinitialises_stuck_inputs(trained_mnist, reset_adam):
    net, params = trained_mnist
    spec, _ = BackworkConfig(images_per_label=2, num_mono_dec_saves=3, reset_adam_on_reinit=reset_adam).build()
    state = backwork.init_state(net, spec, key=jax.random.key(0))
    probs = jax.nn.softmax(forward(net, params, state.x)[0])
    label = int(jnp.argmin(probs[0]))  # a class input 0 is far from (p < 0.1)
    p0, p1 = float(probs[0, label]), float(probs[1, label])
    # Input 0's probability fell over the last checks and the next check continues the fall; input 1's rose.
    history = jnp.array([[p0 + 0.3, p1 - 0.2], [p0 + 0.2, p1 - 0.1], [p0 + 0.1, p1 - 0.05]])
    state = state._replace(history=history,
                           adam=state.adam._replace(mu=jnp.ones_like(state.x), nu=jnp.ones_like(state.x)))
    new = backwork.backwork_check(net, spec, params, jnp.int32(label), state, key=jax.random.key(5))
    assert new.reinitialised.tolist() == [1, 0]
    assert not np.allclose(new.x[0], state.x[0]) and 0.0 <= float(new.x.min()) and float(new.x.max()) <= 1.0
    np.testing.assert_array_equal(new.x[1], state.x[1])
    # The study kept Adam's moments for a re-initialised input; reset_adam_on_reinit zeroes them.
    expected = 0.0 if reset_adam else 1.0
    assert float(jnp.abs(new.adam.mu[0]).max()) == expected and float(jnp.abs(new.adam.nu[0]).max()) == expected
    assert float(new.adam.mu[1].min()) == 1.0
    assert new.history[:, 0].tolist() == [-1.0, -1.0, -1.0]
    np.testing.assert_allclose(new.history[:, 1], [p1 - 0.1, p1 - 0.05, p1], rtol=1e-5)


def test_all_references_padded_by_repeats_keep_nearest_distances(trained_mnist, mnist):
    net, params = trained_mnist
    # unequal counts per label (40, 23, 10), shuffled so that the labels interleave
    keep = np.concatenate([np.flatnonzero(mnist.train_labels == t)[:c] for t, c in ((0, 40), (1, 23), (2, 10))])
    keep = np.random.default_rng(0).permutation(keep)
    labels, images = mnist.train_labels[keep], mnist.train_images[keep]
    targets = (0, 1)
    counts = [int((labels == t).sum()) for t in targets]
    # chunk 7 does not divide the counts: the padded last chunk must not leak into the references
    refs = backwork.reference_activations(net, params, images, labels, targets, 0, chunk=7)
    n = max(counts)
    assert refs.acts["conv0"].shape[:2] == (2, n) and refs.acts["fc"].shape == (2, 1024, n)
    x = jax.random.uniform(jax.random.key(3), (4, 28, 28, 1))
    _, gen = forward(net, params, x, layers=net.layer_names[:-1])
    for j, t in enumerate(targets):
        _, exact = forward(net, params, jnp.asarray(images[labels == t]), layers=net.layer_names[:-1])
        for name in ("inputs", "conv0", "conv1"):
            fast = backwork._spatial_reference_distance(gen[name], refs.acts[name][j], refs.sqnorm[name][j])
            assert float(fast) == pytest.approx(float(backwork.reference_distance(gen[name], exact[name])), rel=1e-4)
        fast = backwork._dense_reference_distance(gen["fc"], refs.acts["fc"][j])
        assert float(fast) == pytest.approx(float(backwork.reference_distance(gen["fc"], exact["fc"])), rel=1e-5)


def test_dense_gap_by_hand():
    # unit 0: sorted 0, 1, 3, 7 -> nearest other value 1, 1, 2, 4; unit 1: 5, 5, 5, 6 -> 0, 0, 0, 1
    acts = np.array([[3.0, 5.0], [0.0, 6.0], [7.0, 5.0], [1.0, 5.0]])
    assert backwork.dense_gap(acts) == pytest.approx((1 + 1 + 4 + 16 + 0 + 0 + 0 + 1) / 8)
    # more references of the same spread: the gaps shrink as 1 / n^2
    spread = np.linspace(0, 1, 11)[:, None]
    assert backwork.dense_gap(spread) / backwork.dense_gap(np.linspace(0, 1, 21)[:, None]) == pytest.approx(4.0)


def test_dense_gap_refs_scale_the_dense_term_only(trained_mnist, mnist):
    net, params = trained_mnist
    labels, images = mnist.train_labels, mnist.train_images
    targets = (0, 1)
    counts = [int((labels == t).sum()) for t in targets]
    few = min(counts) - 5  # the label with fewer examples still has more than this
    plain = backwork.reference_activations(net, params, images, labels, targets, 0)
    refs = backwork.reference_activations(net, params, images, labels, targets, 0, gap_refs=few)
    np.testing.assert_array_equal(refs.acts["fc"], plain.acts["fc"])
    for j, t in enumerate(targets):
        _, fc = forward(net, params, jnp.asarray(images[labels == t]), layers=("fc",))
        fc = np.asarray(fc["fc"])
        expected = backwork.dense_gap(fc[:few]) / backwork.dense_gap(fc)  # the label's own, not the padding
        assert float(refs.scale["fc"][j]) == pytest.approx(expected, rel=1e-4)
        assert expected > 1  # fewer references, larger gaps
    assert all(np.all(np.asarray(refs.scale[k]) == 1) for k in ("inputs", "conv0", "conv1"))
    assert np.all(np.asarray(plain.scale["fc"]) == 1)
    # at or above a label's count the scale is exactly 1 (the embedded data's 400 per label are unchanged)
    same = backwork.reference_activations(net, params, images, labels, targets, 0, gap_refs=max(counts))
    assert np.all(np.asarray(same.scale["fc"]) == 1)

    cfg = BackworkConfig(images_per_label=3)
    hyper = jax.tree.map(lambda a: a[0], cfg.build()[1])
    x = jax.random.uniform(jax.random.key(2), (3, 28, 28, 1))
    one, one_plain = jax.tree.map(lambda a: a[0], refs), jax.tree.map(lambda a: a[0], plain)
    terms = backwork.cost_terms(net, params, x, one, jnp.int32(0), hyper)
    terms_plain = backwork.cost_terms(net, params, x, one_plain, jnp.int32(0), hyper)
    assert float(terms["fc/reference"]) == pytest.approx(float(terms_plain["fc/reference"]) / float(one.scale["fc"]),
                                                         rel=1e-5)
    for name in terms:  # every other term is untouched
        if name != "fc/reference":
            assert float(terms[name]) == float(terms_plain[name])
    cost, _ = backwork.backwork_cost(net, params, x, one, jnp.int32(0), hyper)
    assert float(cost) == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-5)
    grads = backwork.term_gradient_norms(net, params, x, one, jnp.int32(0), hyper)
    assert set(grads) == set(terms) and all(g > 0 for _, g in grads.values())
    assert grads["fc/reference"][0] == pytest.approx(float(terms["fc/reference"]), rel=1e-5)


def test_dense_layer_compared_whole(trained_mnist, mnist):
    net, params = trained_mnist
    refs = backwork.reference_activations(net, params, mnist.train_images, mnist.train_labels, (3,), 30,
                                          dense_whole=True)
    assert refs.acts["fc"].shape == (1, 30, 1024) and refs.sqnorm["fc"].shape == (1, 30)
    x = jax.random.uniform(jax.random.key(4), (3, 28, 28, 1))
    _, gen = forward(net, params, x, layers=("fc",))
    _, exact = forward(net, params, jnp.asarray(mnist.train_images[mnist.train_labels == 3][:30]), layers=("fc",))
    # [batch, units, 1]: reference_distance's whole-example form (the nearest training example, all units at once)
    expected = backwork.reference_distance(gen["fc"][..., None], exact["fc"][..., None])
    cfg = BackworkConfig(images_per_label=3, dense_reference="whole")
    hyper = jax.tree.map(lambda a: a[0], cfg.build()[1])
    terms = backwork.cost_terms(net, params, x, jax.tree.map(lambda a: a[0], refs), jnp.int32(3), hyper)
    f = cfg.layer_factors[3]
    assert float(terms["fc/reference"]) == pytest.approx(f * cfg.prev_coeff / float(expected), rel=1e-4)


# ------------------------------------------------------------------------------ vmapped step, compile once


@pytest.fixture(scope="module")
def small_setup(trained_mnist, mnist):
    net, params = trained_mnist
    cfg = BackworkConfig(images_per_label=3, refs_per_label=20, labels=(1, 7), max_steps=3)
    refs = backwork.reference_activations(net, params, mnist.train_images, mnist.train_labels, cfg.labels, 20)
    return net, params, cfg, refs


def test_label_vmapped_step_equals_per_label_steps(small_setup):
    net, params, cfg, refs = small_setup
    spec, hypers = cfg.build(BackworkSweepConfig(prev_coeff=(0.5, 2.0)))
    assert hypers.prev_coeff.tolist() == [0.5, 2.0] and hypers.layer_factors.shape == (2, 5)
    keys = jax.random.split(jax.random.key(0), (2, 2))
    state = jax.vmap(jax.vmap(lambda k: backwork.init_state(net, spec, key=k)))(keys)
    steps = backwork.make_steps(net, spec)
    assert backwork.make_steps(net, cfg.build()[0]) is steps  # built once per (network, static settings)
    labels = jnp.asarray(cfg.labels)
    check_keys = jax.random.split(jax.random.key(1), 2)
    copy = jax.tree.map(jnp.copy, state)
    out = steps.check(params, labels, steps.update(params, refs, labels, hypers, copy), check_keys)
    # The per-label reference, jitted only so that it does not run op by op.
    update_one = jax.jit(lambda r, lab, h, one: backwork.backwork_update(net, params, r, lab, h, one))
    check_one = jax.jit(lambda lab, one, k: backwork.backwork_check(net, spec, params, lab, one, key=k))
    for s in range(2):
        for i, lab in enumerate(cfg.labels):
            one = jax.tree.map(lambda a: a[s, i], state)
            h = jax.tree.map(lambda a: a[s], hypers)
            r = jax.tree.map(lambda a: a[i], refs)
            one = update_one(r, jnp.int32(lab), h, one)
            one = check_one(jnp.int32(lab), one, check_keys[i])
            np.testing.assert_allclose(out.x[s, i], one.x, atol=1e-6)
            np.testing.assert_allclose(out.prob[s, i], one.prob, atol=1e-6)


def test_step_compiles_once_across_iterations(small_setup, mnist):
    net, params, cfg, _ = small_setup
    traces = {"update": 0, "check": 0}
    real_update, real_check = backwork.backwork_update, backwork.backwork_check

    def counting_update(*a, **k):
        traces["update"] += 1
        return real_update(*a, **k)

    def counting_check(*a, **k):
        traces["check"] += 1
        return real_check(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backwork, "backwork_update", counting_update)
        mp.setattr(backwork, "backwork_check", counting_check)
        cfg5 = dataclasses.replace(cfg, max_steps=5, prob_cap_min=1.0, updates_per_check=2)
        result = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, cfg5, key=KEY)
    assert result.steps.tolist() == [[10, 10]]  # 5 checks x 2 updates, nothing stopped early
    assert traces == {"update": 1, "check": 1}


def test_run_is_deterministic_and_in_bounds(small_setup, mnist):
    net, params, cfg, _ = small_setup
    a = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, cfg, key=KEY)
    b = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, cfg, key=KEY)
    np.testing.assert_array_equal(a.images, b.images)
    c = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, cfg, key=jax.random.key(1))
    assert not np.allclose(a.images, c.images)  # the key, and only the key, seeds the search
    assert a.images.min() >= 0.0 and a.images.max() <= 1.0
    assert a.images.shape == (1, 2, 3, 28, 28, 1) and a.probs.shape == (1, 2, 3)
    # one recorded probability per check; without re-initialisation the last one is the final probability
    assert a.trajectory.shape == (3, 1, 2, 3)
    if not a.reinitialised.any():
        np.testing.assert_allclose(a.trajectory[-1], a.probs, atol=1e-6)
    summary = a.summary(0)
    assert [p["label"] for p in summary["per_label"]] == [1, 7]
    assert sum(p["n_at_least_cap"] for p in summary["per_label"]) == summary["n_at_least_cap"]
    assert [row[-1] for row in summary["min_prob_per_check"]] == pytest.approx(a.trajectory[-1, 0].min(-1), abs=1e-6)


def test_sweep_is_one_program_matching_separate_runs(small_setup, mnist):
    net, params, cfg, _ = small_setup
    swept = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, cfg,
                                  BackworkSweepConfig(sim_coeff=(0.5, 3.0)), key=KEY)
    single = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels,
                                   dataclasses.replace(cfg, sim_coeff=3.0), key=KEY)
    assert [s["sim_coeff"] for s in swept.settings] == [0.5, 3.0]
    np.testing.assert_allclose(swept.images[1], single.images[0], atol=1e-5)


def test_stopping_freezes_a_finished_label(small_setup, mnist):
    net, params, cfg, _ = small_setup
    easy = dataclasses.replace(cfg, prob_cap_min=1e-9, max_steps=4)  # done after the first check
    result = backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, easy, key=KEY)
    assert result.steps.tolist() == [[1, 1]]


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": (12,)}, "class index 12 out of range"),
        ({"images_per_label": 1}, "images_per_label must be >= 2"),
        ({"layer_factors": (1.0, 2.0)}, "one factor per layer"),
        ({"max_steps": 0}, "must be >= 1"),
        ({"dense_gap_refs": 1}, "dense_gap_refs must be 0"),
        ({"dense_reference": "sum"}, "dense_reference='sum' is not one of per_unit, whole"),
    ],
)
def test_bad_config_is_a_clear_error(small_setup, mnist, change, message):
    net, params, cfg, _ = small_setup
    with pytest.raises(ValueError, match=message):
        backwork.run_backwork(net, params, mnist.train_images, mnist.train_labels, dataclasses.replace(cfg, **change),
                              key=KEY)


def test_nearest_distances_by_hand():
    q = np.array([[0.0, 0.0], [3.0, 4.0]])
    pool = np.array([[0.0, 1.0], [3.0, 0.0], [6.0, 8.0]])
    np.testing.assert_allclose(backwork.nearest_distances(q, pool), [1.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(backwork.nearest_distances(pool, pool, exclude_self=True),
                               [np.sqrt(10), np.sqrt(10), np.sqrt(73)], rtol=1e-5)


def test_nearest_distances_in_chunks_equal_brute_force():
    rng = np.random.default_rng(0)
    q, pool = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    brute = np.sqrt(((q[:, None] - pool[None]) ** 2).sum(-1)).min(1)
    # chunks that divide neither count: the padded rows must not become anyone's neighbour
    np.testing.assert_allclose(backwork.nearest_distances(q, pool, chunk=3, pool_chunk=4), brute, rtol=1e-4)
    self_sq = ((pool[:, None] - pool[None]) ** 2).sum(-1) + np.diag(np.full(11, np.inf))
    np.testing.assert_allclose(backwork.nearest_distances(pool, pool, exclude_self=True, chunk=3, pool_chunk=4),
                               np.sqrt(self_sq.min(1)), rtol=1e-4)


def test_reference_activations_compile_once(trained_mnist, mnist, monkeypatch):
    net, params = trained_mnist
    traces = []
    real_forward = backwork.forward
    monkeypatch.setattr(backwork, "forward", lambda *a, **k: (traces.append(1), real_forward(*a, **k))[1])
    # 13 references per label: a shape no other test uses, so the first call must trace.
    a = backwork.reference_activations(net, params, mnist.train_images, mnist.train_labels, (3, 4), 13)
    assert len(traces) == 1  # one program for both labels
    b = backwork.reference_activations(net, params, mnist.train_images, mnist.train_labels, (5, 6), 13)
    assert len(traces) == 1  # and for the next call
    assert a.acts["fc"].shape == (2, 1024, 13) and not np.allclose(a.acts["inputs"], b.acts["inputs"])


def test_nearest_neighbour_report_counts(trained_mnist, mnist):
    net, params = trained_mnist
    labels = (0, 1)
    first = [np.flatnonzero(mnist.train_labels == c)[:2] for c in labels]
    training = np.stack([mnist.train_images[i] for i in first])  # [labels, 2, 28, 28, 1]: training digits
    far = np.ones_like(training)  # all-white images: far from every digit in pixel space
    near = backwork.nearest_neighbour_report(net, params, training, labels, mnist.train_images,
                                             mnist.train_labels, max_train=200)
    assert near["train_examples"] == 200
    np.testing.assert_allclose(near["layers"]["inputs"][0]["generated_nn"], [0.0, 0.0], atol=1e-2)
    assert near["pixel_space_all_exceed"] == [False, False]
    away = backwork.nearest_neighbour_report(net, params, far, labels, mnist.train_images, mnist.train_labels,
                                             max_train=200)
    assert away["pixel_space_all_exceed"] == [True, True]
