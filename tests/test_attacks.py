"""Gradient attacks: hand-computed steps on a linear model, invariants over random small models and settings,
determinism, sweeps, sharding, input validation, and success on the trained MNIST CNN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.tree_util import Partial

from jaxfool import attacks
from jaxfool.attacks import transforms

SHAPE = (6, 6, 2)
CLASSES = 4


def _tiny_apply(params, x):
    """A small conv net on [batch, 6, 6, 2]: conv 3x3 -> tanh -> dense."""
    h = jax.lax.conv_general_dilated(x, params["conv"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.tanh(h).reshape(x.shape[0], -1) @ params["dense"]


def _tiny_params(seed: int):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"conv": jax.random.normal(k1, (3, 3, 2, 3)), "dense": jax.random.normal(k2, (6 * 6 * 3, CLASSES)) * 0.3}


def _tiny_model(seed: int = 0):
    return Partial(_tiny_apply, _tiny_params(seed))


def _linear_model(seed: int = 0):
    w = jax.random.normal(jax.random.key(seed), (int(np.prod(SHAPE)), CLASSES))
    return Partial(lambda w, x: x.reshape(x.shape[0], -1) @ w, w), np.asarray(w)


def _images(n: int, seed: int = 1, bounds=(0.0, 1.0)):
    lo, hi = bounds
    return jax.random.uniform(jax.random.key(seed), (n, *SHAPE), minval=lo, maxval=hi)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# --- hand-computed steps --------------------------------------------------------------------------------------------


def test_fgsm_on_a_linear_model_matches_the_closed_form():
    model, w = _linear_model()
    x, y = _images(3), jnp.array([0, 1, 2])
    fgsm = attacks.get_attack("fgsm")
    got = attacks.perturb(fgsm, model, x, y, fgsm.params(eps=0.1), key=jax.random.key(0), bounds=(0.0, 1.0))
    for i in range(3):
        xi = np.asarray(x[i]).ravel()
        grad = w @ (_softmax(xi @ w) - np.eye(CLASSES)[int(y[i])])  # d CE / dx for logits = x @ w
        want = np.clip(xi + 0.1 * np.sign(grad), 0.0, 1.0).reshape(SHAPE)
        np.testing.assert_allclose(got[i], want, atol=1e-6)


def test_targeted_l2_margin_step_matches_the_closed_form():
    model, w = _linear_model()
    x, target = _images(1), 3
    attack = attacks.get_attack("fgm_l2", loss="margin", targeted=True)
    got = attack(model, x[0], target, attack.params(eps=0.5), key=jax.random.key(0), bounds=(-10.0, 10.0))
    z = np.asarray(x[0]).ravel() @ w
    runner_up = max((j for j in range(CLASSES) if j != target), key=lambda j: z[j])
    grad = w[:, target] - w[:, runner_up]  # ascent direction of z_t - max_{j != t} z_j
    want = np.asarray(x[0]).ravel() + 0.5 * grad / np.linalg.norm(grad)
    np.testing.assert_allclose(np.asarray(got).ravel(), want, atol=1e-5)


def test_momentum_accumulates_l1_normalised_gradients():
    transform = optax.chain(transforms.momentum(0.5), transforms.steepest(attacks.LINF))
    g1, g2 = jnp.array([1.0, -3.0]), jnp.array([-4.0, 0.5])
    state = transform.init(g1)
    d1, state = transform.update(g1, state)
    d2, state = transform.update(g2, state)
    m2 = 0.5 * (g1 / 2.0) + g2 / 2.25
    np.testing.assert_array_equal(d1, np.sign(g1))
    np.testing.assert_array_equal(d2, np.sign(m2))
    np.testing.assert_allclose(state[0][1].trace, m2, rtol=1e-6)


def test_l2_steepest_direction_has_unit_norm():
    g = jnp.array([[3.0, 0.0], [0.0, -4.0]])
    d, _ = transforms.steepest(attacks.L2).update(g, ())
    np.testing.assert_allclose(d, g / 5.0, rtol=1e-6)
    zero, _ = transforms.steepest(attacks.L2).update(jnp.zeros(3), ())
    np.testing.assert_array_equal(zero, np.zeros(3))  # a zero gradient stays zero, not NaN


def test_input_diversity_resizes_into_a_zero_padded_canvas():
    x = jnp.arange(8 * 8, dtype=jnp.float32).reshape(8, 8, 1) + 1.0
    diverse = transforms.input_diversity(resize_rate=0.5)
    always = attacks.AttackParams(1.0, 1.0, diversity_prob=1.0)
    outs = [diverse.apply(x, always, u) for u in jax.random.uniform(jax.random.key(0), (8, diverse.num_uniforms))]
    assert any(not np.array_equal(o, x) for o in outs)
    for o in outs:
        rows = np.flatnonzero(np.asarray(o[..., 0]).any(1))
        cols = np.flatnonzero(np.asarray(o[..., 0]).any(0))
        assert 4 <= len(rows) == len(cols) <= 8  # a square of side in [0.5 * 8, 8] ...
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)  # ... in one contiguous block
        assert set(np.unique(o)) <= set(np.unique(x)) | {0.0}  # nearest neighbour: only source pixels or padding
    kept = diverse.apply(x, attacks.AttackParams(1.0, 1.0, diversity_prob=0.0), jnp.full(4, 0.5))
    np.testing.assert_array_equal(kept, x)


# --- invariants over random small models and settings ---------------------------------------------------------------


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(attacks.attack_names()),
    eps=st.floats(0.0, 2.0),
    bounds=st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)]),
    loss=st.sampled_from(["ce", "margin"]),
    targeted=st.booleans(),
    restarts=st.integers(1, 2),
    seed=st.integers(0, 1000),
)
def test_result_is_inside_the_ball_and_the_bounds(name, eps, bounds, loss, targeted, restarts, seed):
    attack = attacks.get_attack(name, steps=min(attacks.get_attack(name).steps, 3), loss=loss, targeted=targeted,
                                restarts=restarts)
    scale = bounds[1] - bounds[0]
    x = _images(3, seed, bounds)
    labels = jnp.arange(3) % CLASSES
    params = attack.params(eps=eps * scale, rel_step=0.7)
    x_adv = attacks.perturb(attack, _tiny_model(seed), x, labels, params, key=jax.random.key(seed), bounds=bounds)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= bounds[0] and float(x_adv.max()) <= bounds[1]
    norm = attacks.get_norm(attack.norm)
    sizes = jax.vmap(norm.measure)(x_adv - x)
    # float32 rounding of (x + delta) - x: a few ulps of the pixel scale.
    assert float(sizes.max()) <= eps * scale * (1 + 1e-5) + 1e-5 * scale


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd_l2", "mdi2fgsm"])  # every piece: start, norms, momentum, DI
def test_zero_eps_returns_the_input(name):
    attack = attacks.get_attack(name, steps=2, restarts=2)
    x = _images(4)
    got = attacks.perturb(attack, _tiny_model(), x, jnp.arange(4), attack.params(0.0), key=jax.random.key(3),
                          bounds=(0.0, 1.0))
    np.testing.assert_array_equal(got, x)


def test_same_key_same_result_and_another_key_another_start():
    pgd = attacks.get_attack("pgd", steps=3)
    x, y, model = _images(4), jnp.arange(4), _tiny_model()
    run = lambda k: attacks.perturb(pgd, model, x, y, pgd.params(0.2), key=jax.random.key(k), bounds=(0.0, 1.0))
    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_restarts_keep_the_strongest_run():
    model = _tiny_model(5)
    x, y = _images(6, 5), jnp.arange(6) % CLASSES
    one = attacks.get_attack("pgd", steps=2, loss="margin")
    many = attacks.get_attack("pgd", steps=2, loss="margin", restarts=4)
    key = jax.random.key(0)
    best = attacks.perturb(many, model, x, y, many.params(0.1), key=key, bounds=(0.0, 1.0))
    margins = lambda xa: jax.vmap(attacks.margin)(model(xa), y)
    # Each restart r of example i runs the single-start attack with key split(key_i, 4)[r].
    keys = jax.random.split(key, 6)
    runs = [
        jax.vmap(lambda xi, yi, ki: one(model, xi, yi, one.params(0.1), key=jax.random.split(ki, 4)[r],
                                        bounds=(0.0, 1.0)))(x, y, keys)
        for r in range(4)
    ]
    np.testing.assert_allclose(margins(best), np.max([margins(r) for r in runs], axis=0), rtol=1e-5, atol=1e-5)


# --- sweeps, tracing, sharding ---------------------------------------------------------------------------------------

_CALLS: list[int] = []


def _counting_apply(params, x):
    _CALLS.append(1)  # runs only while JAX traces
    return _tiny_apply(params, x)


def test_sweep_equals_separate_calls_and_traces_once():
    attack = attacks.get_attack("mdi2fgsm", steps=3)
    model = Partial(_counting_apply, _tiny_params(0))
    x, y, key = _images(5), jnp.arange(5) % CLASSES, jax.random.key(1)
    settings_ = [attack.params(e, decay=d, diversity_prob=p) for e, d, p in [(0.05, 1.0, 0.5), (0.1, 0.5, 1.0),
                                                                             (0.2, 0.0, 0.0)]]
    _CALLS.clear()
    swept = attacks.sweep(attack, model, x, y, attacks.stack_params(settings_), key=key, bounds=(0.0, 1.0))
    traced = len(_CALLS)
    assert swept.shape == (3, *x.shape) and traced > 0
    attacks.sweep(attack, model, x, y, attacks.stack_params(settings_[::-1]), key=key, bounds=(0.0, 1.0))
    assert len(_CALLS) == traced, "new values recompiled the sweep"
    counts = []
    for k, p in enumerate(settings_):
        single = attacks.perturb(attack, model, x, y, p, key=key, bounds=(0.0, 1.0))
        np.testing.assert_allclose(swept[k], single, atol=1e-6)
        counts.append(len(_CALLS))
    assert counts[0] > traced and counts[0] == counts[1] == counts[2], "perturb traced once for all three settings"


def test_sharded_batch_and_sweep_equal_the_single_device_run():
    # The 4 virtual CPU devices exist beside any GPU: comparing on one backend keeps TF32 out of the tolerance.
    devices = jax.devices("cpu")
    assert len(devices) == 4, "conftest sets --xla_force_host_platform_device_count=4"
    pgd = attacks.get_attack("pgd", steps=3)
    with jax.default_device(devices[0]):
        model, x, y, key = _tiny_model(2), _images(8, 2), jnp.arange(8) % CLASSES, jax.random.key(4)
        eps = pgd.params(jnp.array([0.05, 0.1, 0.15, 0.3]))
        single_batch = attacks.perturb(pgd, model, x, y, pgd.params(0.1), key=key, bounds=(0.0, 1.0))
        single_sweep = attacks.sweep(pgd, model, x, y, eps, key=key, bounds=(0.0, 1.0))

    mesh = jax.make_mesh((4,), ("batch",), devices=devices)
    xs, ys = attacks.shard_leading((x, y), mesh, "batch")
    sharded = attacks.perturb(pgd, attacks.replicate(model, mesh), xs, ys, pgd.params(0.1), key=key,
                              bounds=(0.0, 1.0))
    assert len(sharded.sharding.device_set) == 4
    np.testing.assert_allclose(sharded, single_batch, atol=1e-6)

    grid = jax.make_mesh((2, 2), ("sweep", "batch"), devices=devices)
    xs, ys = attacks.shard_leading((x, y), grid, "batch")
    swept = attacks.sweep(pgd, model, xs, ys, attacks.shard_leading(eps, grid, "sweep"), key=key, bounds=(0.0, 1.0))
    assert len(swept.sharding.device_set) == 4
    np.testing.assert_allclose(swept, single_sweep, atol=1e-6)


def test_shard_leading_explains_an_indivisible_batch():
    mesh = jax.make_mesh((4,), ("batch",), devices=jax.devices("cpu"))
    with pytest.raises(ValueError, match="does not divide over the 4 devices"):
        attacks.shard_leading(jnp.zeros((6, 2)), mesh, "batch")


# --- validation ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(x=np.zeros(SHAPE, np.float32)), r"has shape \(6, 6, 2\), expected \[batch, any, any, any\]"),
        (dict(x=np.full((2, *SHAPE), np.nan, np.float32)), "NaN"),
        (dict(x=np.full((2, *SHAPE), 2.0, np.float32)), "outside the model's bounds"),
        (dict(labels=np.array([0, 9])), r"class indices in 0\.\.3"),
        (dict(labels=np.array([0.0, 1.0])), "labels must be integers"),
        (dict(params=attacks.AttackParams(eps=-0.1, rel_step=0.1)), "eps >= 0"),
        (dict(params=attacks.AttackParams(eps=jnp.ones(2), rel_step=0.1)), "use sweep"),
        (dict(bounds=(1.0, 0.0)), "low < high"),
        (dict(x=np.zeros((2, 5, 5, 2), np.float32)), r"cannot run on inputs of shape \(5, 5, 2\)"),
    ],
)
def test_bad_inputs_give_one_line_errors(change, message):
    args = dict(x=np.asarray(_images(2)), labels=np.array([0, 1]), params=attacks.AttackParams(0.1, 0.1),
                bounds=(0.0, 1.0))
    args.update(change)
    with pytest.raises(ValueError, match=message) as info:
        attacks.perturb(attacks.get_attack("fgsm"), _tiny_model(), args["x"], args["labels"], args["params"],
                        key=jax.random.key(0), bounds=args["bounds"])
    assert "\n" not in str(info.value)


def test_unknown_names_give_one_line_errors():
    with pytest.raises(ValueError, match="unknown attack 'cw'; valid attacks: fgsm, "):
        attacks.get_attack("cw")
    with pytest.raises(ValueError, match="unknown Attack field"):
        attacks.get_attack("pgd", stepz=3)
    with pytest.raises(ValueError, match="unknown norm 'l1'"):
        attacks.get_attack("pgd", norm="l1")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        attacks.get_attack("pgd", loss="hinge")
    with pytest.raises(ValueError, match="unknown attack parameter"):
        attacks.get_attack("pgd").params(0.3, momentum=0.9)
    assert attacks.get_attack("bim") == attacks.get_attack("ifgsm")


# --- the trained MNIST CNN -------------------------------------------------------------------------------------------


def test_targeted_attacks_hit_their_targets_on_the_trained_cnn(trained_mnist, mnist):
    net, params = trained_mnist
    model = attacks.network_model(net, params)
    x, y = mnist.test_images[:16], mnist.test_labels[:16]
    targets = (y + 1 + np.arange(16) % 9) % 10
    for loss in ("ce", "margin"):
        pgd = attacks.get_attack("pgd", steps=40, loss=loss, targeted=True)
        x_adv = attacks.perturb(pgd, model, x, targets, pgd.params(0.3), key=jax.random.key(0), bounds=net.bounds)
        hit = np.mean(np.asarray(model(x_adv).argmax(-1)) == targets)
        assert hit >= 0.9, f"{loss}: {hit:.0%} of targets reached"
