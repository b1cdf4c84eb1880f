"""AutoAttack's parts (APGD, FAB, Square), the minimum-norm attacks and the soundness checks, on tiny models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfool import attacks
from jaxfool.attacks import apgd, autoattack, soundness
from jaxfool.attacks.fab import fab, project_l2, project_linf
from jaxfool.attacks.minimum_norm import cw_l2_fixed, minimum_norm, robust_curve
from jaxfool.attacks.apgd import APGD
from jaxfool.attacks.fab import FAB
from jaxfool.attacks.square import Square, p_schedule
from tests.explain_twins import tiny_setup

BOUNDS = (0.0, 1.0)


@pytest.fixture(scope="module")
def tiny():
    """``(model, x [16, 12, 12, 3], labels)``: the tiny 5-class CNN, labelled with its own predictions."""
    net, params, _ = tiny_setup()
    model = attacks.network_model(net, params)
    x = np.random.default_rng(0).uniform(size=(16, *net.input_shape)).astype(np.float32)
    return model, x, np.asarray(model(x).argmax(-1))


def linear(kernel: np.ndarray):
    """``logits = flatten(x) @ kernel``: boundaries and distances computable by hand."""
    w = jnp.asarray(kernel, jnp.float32)
    return lambda v: v.reshape(v.shape[0], -1) @ w


def test_dlr_losses_by_hand():
    z = jnp.array([3.0, 1.0, 2.0, 0.0])
    assert float(apgd.dlr(z, 0)) == pytest.approx(-(3 - 2) / (3 - 1))  # correct: margin to the runner-up
    assert float(apgd.dlr(z, 1)) == pytest.approx(-(1 - 3) / (3 - 1))  # wrong: positive
    assert float(apgd.dlr_targeted(z, 0, 2)) == pytest.approx(-(3 - 2) / (3 - 0.5 * (1 + 0)))
    assert float(apgd.dlr(2.0 * z + 5.0, 1)) == pytest.approx(float(apgd.dlr(z, 1)))  # shift and scale invariant


def test_apgd_checkpoints_and_step_size_halving_match_a_hand_computed_schedule():
    assert apgd.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # p = 0.22, 0.41, 0.57, ... of the paper
    # A constant model never improves its loss, so both conditions hold and every checkpoint halves the step.
    flat = lambda v: jnp.zeros((v.shape[0], 4)) + 0.0 * v.sum()
    x = jnp.full((3, 3, 1), 0.5)
    trace = apgd.apgd_run(flat, x, jnp.int32(0), 0.1, key=jax.random.key(0), bounds=BOUNDS, steps=20)
    # steps=20: first interval int(4.4)=4, each next 1 shorter, at least 1: checks after 4, 7, 9, 10, 11, ... 20.
    hand = [0.2] * 4 + [0.1] * 3 + [0.05] * 2 + [0.2 / 2**k for k in range(3, 14)]
    np.testing.assert_allclose(np.asarray(trace.step_sizes), hand, rtol=1e-6)
    assert apgd.checkpoints(20) == [4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]


@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 0.3)])
def test_auto_attack_respects_ball_and_bounds_and_counts_only_fooled_points(tiny, norm, eps):
    model, x, y = tiny
    comps = (APGD(norm, "ce", 10), APGD(norm, "dlr-targeted", 10, n_targets=2), FAB(norm, True, 10, n_targets=2),
             Square(norm, 100))
    r = autoattack.auto_attack(model, x, y, eps=eps, norm=norm, key=jax.random.key(0), bounds=BOUNDS, attacks=comps)
    delta = (r.x_adv - x).reshape(len(x), -1)
    dist = np.abs(delta).max(1) if norm == "linf" else np.sqrt((delta**2).sum(1))
    assert dist.max() <= eps * (1 + 1e-5) + 1e-6
    assert r.x_adv.min() >= 0.0 and r.x_adv.max() <= 1.0
    preds = np.asarray(model(r.x_adv).argmax(-1))
    fooled = r.fooled_by >= 0
    assert 0 < fooled.sum() < len(x)  # a real mix: some points fall, some survive
    assert (preds[fooled] != y[fooled]).all()
    np.testing.assert_array_equal(r.robust, r.clean_correct & ~fooled)
    np.testing.assert_array_equal(r.x_adv[r.robust], x[r.robust])  # untouched where every attack failed
    accs = list(r.robust_accuracy.values())
    assert accs == sorted(accs, reverse=True) and accs[-1] == pytest.approx(r.robust.mean())


def test_bucket_sizes_are_few_and_waste_under_a_third_of_a_call():
    sizes = [autoattack._bucket(n, 500) for n in range(1, 501)]
    assert sorted(set(sizes)) == [32, 48, 64, 96, 128, 192, 256, 384, 500]
    assert all(n <= s and (s == 32 or n > s * 2 / 3 or s == 500) for n, s in zip(range(1, 501), sizes))
    assert autoattack._bucket(83, 500) == 96 and autoattack._bucket(83, 50) == 50


def test_more_apgd_restarts_never_fool_fewer(tiny):
    model, x, y = tiny
    runs = [autoattack.auto_attack(model, x, y, eps=0.015, key=jax.random.key(3), bounds=BOUNDS, run_checks=False,
                                   attacks=(APGD("linf", "ce", 5, restarts=k),)) for k in (1, 3)]
    assert (runs[0].robust >= runs[1].robust).all()  # restart 0 is the same run; later ones only add successes


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_stopped_at_the_first_misclassified_iterate_fools_the_same_points(tiny, loss):
    model, x, y = tiny
    run = lambda stop: jax.jit(jax.vmap(lambda xi, yi, k: apgd.apgd_run(
        model, xi, yi, 0.03, key=k, bounds=BOUNDS, steps=30, loss=loss, stop_when_fooled=stop)))(
        x, y, jax.random.split(jax.random.key(4), len(x)))
    full, stopped = run(False), run(True)
    np.testing.assert_array_equal(stopped.fooled, full.fooled)
    assert 0 < int(full.fooled.sum()) < len(x)
    fooled = np.asarray(stopped.fooled)
    assert (np.asarray(model(stopped.x_adv).argmax(-1))[fooled] != y[fooled]).all()
    assert np.abs(np.asarray(stopped.x_adv) - x).max() <= 0.03 + 1e-6
    # A stopped example ran fewer steps: its step-size record ends in zeros (never written), a full run's does not.
    ran = (np.asarray(stopped.step_sizes) > 0).sum(1)
    assert (ran[fooled] < 30).all() and (ran[~fooled] == 30).all()
    assert ((np.asarray(full.step_sizes) > 0).sum(1) == 30).all()


def test_targeted_attacks_reach_their_targets():
    # Class k's logit sums pixel group k, so raising the target and lowering the true class makes the target top.
    kernel = np.kron(np.eye(4, dtype=np.float32), np.ones((3, 1), np.float32))
    model = linear(kernel)
    y = jnp.arange(8) % 4
    targets = (y + 1 + jnp.arange(8) % 3) % 4
    # True class's pixels at 0.6, the target's at 0.4, the rest dark: the target is reachable, the others far.
    groups = np.repeat(np.arange(4), 3)
    x = 0.6 * (groups[None] == np.asarray(y)[:, None]) + 0.4 * (groups[None] == np.asarray(targets)[:, None])
    x = jnp.asarray(x.reshape(8, 2, 2, 3), jnp.float32)
    run = jax.jit(jax.vmap(lambda xi, yi, ti, k: apgd.apgd_run(model, xi, yi, 0.3, key=k, bounds=BOUNDS, steps=20,
                                                               loss="dlr-targeted", target=ti).x_best))
    adv = run(x, y, targets, jax.random.split(jax.random.key(0), 8))
    np.testing.assert_array_equal(np.asarray(model(adv).argmax(-1)), np.asarray(targets))
    fab_t = jax.jit(jax.vmap(lambda xi, yi, ti: fab(model, xi, yi, key=jax.random.key(0), bounds=BOUNDS,
                                                        steps=10, target=ti)))
    adv, dist = fab_t(x, y, targets)
    np.testing.assert_array_equal(np.asarray(model(adv).argmax(-1)), np.asarray(targets))
    assert np.isfinite(np.asarray(dist)).all()


def test_fab_projections_match_the_reference():
    torch = pytest.importorskip("torch")
    ref = pytest.importorskip("torchattacks.attacks.fab")
    rng = np.random.default_rng(0)
    t = rng.uniform(size=(6, 40)).astype(np.float32)
    t[::2, :15] = 0.0  # points on the box's faces, as MNIST digits are
    w, b = rng.normal(size=(6, 40)).astype(np.float32), 3 * rng.normal(size=6).astype(np.float32)
    for theirs, mine in ((ref.projection_linf, project_linf), (ref.projection_l2, project_l2)):
        expected = theirs(torch.tensor(t), torch.tensor(w), torch.tensor(b)).numpy()
        np.testing.assert_allclose(np.asarray(jax.vmap(mine)(t, w, b)), expected, atol=1e-6)
    # jaxfool's projections bisect instead of sorting: MNIST-sized points with most pixels tied at 0 or 1, zero
    # weights, and hyperplanes from barely off the point to out of the box's reach (all three cases).
    t = rng.uniform(size=(120, 784)).astype(np.float32)
    t[:, :500], t[::3, 500:600] = 0.0, 1.0
    w = rng.normal(size=(120, 784)).astype(np.float32)
    w[::4, :100] = 0.0
    gap = rng.choice([-1.0, 1.0], 120) * np.abs(w).sum(1) * np.geomspace(1e-4, 2, 120)
    b = ((t * w).sum(1) - gap).astype(np.float32)
    for theirs, mine in ((ref.projection_linf, project_linf), (ref.projection_l2, project_l2)):
        expected = theirs(torch.tensor(t), torch.tensor(w), torch.tensor(b)).numpy()
        reached = np.abs(((t + expected) * w).sum(1) - b) < 1e-3 * np.abs(w).sum(1)
        assert 0 < reached.sum() < 120  # some hyperplanes reached, some out of the box's reach
        # rtol: on the one far-off L2 hyperplane (|d| = 17) the reference's float32 cumsum lands 9.7e-5 off the
        # hyperplane, jaxfool 2.3e-5 off; the two differ by 7.8e-6 relative there.
        np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(mine))(t, w, b)), expected, atol=1e-6, rtol=2e-5)


def test_square_schedule_halves_p_at_the_reference_queries():
    q = jnp.array([0, 10, 11, 50, 51, 200, 201, 8000, 8001, 9999])
    expected = 0.8 / 2.0 ** np.array([0, 0, 1, 1, 2, 2, 3, 8, 9, 9])
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda i: p_schedule(i, 10000))(q)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(p_schedule(jnp.int32(6), 5000)), 0.4)  # rescaled: query 6 of 5,000 is 12


def test_deepfool_on_a_linear_model_steps_exactly_onto_the_boundary_with_overshoot():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(12, 2)).astype(np.float32)
    kernel[:, 1] -= kernel.sum(0)[1] / 12 - kernel.sum(0)[0] / 12  # zero margin at x = 0.5: the boundary is near
    model = linear(kernel)
    x = jnp.full((4, 2, 2, 3), 0.5) + 0.01 * jnp.asarray(rng.normal(size=(4, 2, 2, 3)), jnp.float32)
    y = np.asarray(model(x).argmax(-1))
    w = kernel[:, 1] - kernel[:, 0]
    margin = np.abs(np.asarray(x).reshape(4, -1) @ w)
    for norm, dual in (("l2", np.linalg.norm(w)), ("linf", np.abs(w).sum())):
        r = minimum_norm(model, x, y, method="deepfool", norm=norm, bounds=BOUNDS)
        np.testing.assert_allclose(r.distance, 1.02 * margin / dual, rtol=1e-4)  # one step of (1 + overshoot)
        assert (np.asarray(model(r.x_adv).argmax(-1)) != y).all()


def test_deepfool_steps_on_the_free_pixels_when_some_sit_at_a_bound():
    # Half the pixels at 0 with a negative gradient: clipping removes that half of torchattacks' step, so it only
    # approaches the boundary (f x (1 - 1.02 * 0.5) per step), while the box-aware step, computed on the free
    # half, crosses in one step at 1.02 |f| / ||w_free||.
    w = np.tile(np.float32([-1.0, 1.0]), 6)  # pixel 2i at 0 (w < 0: blocked), pixel 2i + 1 at 0.5 (free)
    kernel = jnp.asarray(np.stack([np.zeros(12, np.float32), w], 1))
    model = lambda v: v.reshape(v.shape[0], -1) @ kernel + jnp.array([0.0, -3.3])  # z_1 - z_0 = -0.3 at x
    x = jnp.asarray(np.tile(np.float32([0.0, 0.5]), 6).reshape(1, 2, 2, 3))
    f = float(model(x)[0, 1] - model(x)[0, 0])
    assert f == pytest.approx(-0.3, abs=1e-5)
    free = np.linalg.norm(w[1::2])
    r = minimum_norm(model, x, np.array([0]), method="deepfool", bounds=BOUNDS, steps=1)
    np.testing.assert_allclose(r.distance, [1.02 * 0.3 / free], rtol=1e-4)
    assert np.asarray(r.x_adv)[0].reshape(-1)[0::2].max() == 0.0
    stuck = minimum_norm(model, x, np.array([0]), method="deepfool", bounds=BOUNDS, steps=5, box_aware=False)
    assert np.isinf(stuck.distance).all()  # 5 clipped steps leave f = -0.3 * 0.49**5 < 0


def test_vectorised_cw_search_equals_a_per_example_binary_search(tiny):
    model, x, y = tiny
    x, y = x[:4], y[:4]
    kw = dict(steps=10, learning_rate=0.05)
    batched = minimum_norm(model, x, y, method="cw", bounds=BOUNDS, search_steps=4, initial_const=0.1, **kw)
    fixed = jax.jit(lambda xi, yi, c: cw_l2_fixed(model, xi, yi, c, bounds=BOUNDS, **kw))
    for i in range(len(x)):
        lower, upper, const = np.float32(0), np.float32(1e10), np.float32(0.1)
        best, best_const = np.inf, 0.0
        for _ in range(4):
            _, l2, success = fixed(x[i], y[i], const)
            if float(l2) < best:
                best, best_const = float(l2), float(const)
            if bool(success):
                upper = min(upper, const)
            else:
                lower = max(lower, const)
            const = np.float32((lower + upper) / 2) if upper < 1e9 else (const if success else np.float32(const * 10))
        assert batched.distance[i] == pytest.approx(np.sqrt(best), rel=1e-5)
        assert batched.const[i] == pytest.approx(best_const, rel=1e-6)
    found = np.isfinite(batched.distance)
    assert found.any() and (np.asarray(model(batched.x_adv).argmax(-1))[found] != y[found]).all()


def test_robust_curve_counts_points_farther_than_eps():
    np.testing.assert_allclose(robust_curve(np.array([0.0, 0.2, 0.5, np.inf]), np.array([0, 0.2, 1])),
                               [0.75, 0.5, 0.25])


def test_perlin_perturbation_spends_the_whole_budget_with_the_noise_sign():
    params = attacks.PerlinParams(8.0, 4.0)
    x = jnp.full((16, 16, 1), 0.5)
    adv = attacks.perlin_perturbation(x, params, key=jax.random.key(0), eps=0.1, bounds=BOUNDS)
    noise = attacks.perlin_noise(16, 16, params, key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(adv - x)[..., 0], 0.1 * np.sign(np.asarray(noise)), atol=1e-6)


def test_each_check_fires_on_a_model_built_to_trigger_it_and_stays_silent_on_the_plain_cnn(trained_mnist, mnist):
    net, params = trained_mnist
    plain = attacks.network_model(net, params)
    x, y = mnist.test_images[:32], mnist.test_labels[:32]
    silent = soundness.run_checks(plain, x, y, {"clean": 0.97, "apgd-ce": 0.0, "square": 0.0}, key=jax.random.key(0),
                                  bounds=BOUNDS, curve=([0.0, 0.1, 0.3], [0.97, 0.2, 0.0]))
    assert [c.name for c in silent if c.flagged] == []
    rng = np.random.default_rng(0)
    noisy = lambda v: plain(v) + jnp.asarray(rng.normal(size=(v.shape[0], 10)), jnp.float32)  # fresh noise per call
    assert soundness.check_randomness(noisy, jnp.asarray(x[:4])).flagged
    assert soundness.check_probabilities(np.asarray(jax.nn.softmax(plain(x[:8])))).flagged
    saturated = lambda v: 1e4 * plain(v)  # a distillation-like temperature: softmax exactly one-hot in float32
    assert soundness.check_zero_gradients(saturated, x[:8], y[:8]).flagged
    assert soundness.check_square({"clean": 0.9, "apgd-ce": 0.8, "square": 0.5}).flagged
    assert soundness.check_eps_monotone([0.0, 0.1, 0.3], [0.9, 0.3, 0.6]).flagged


def test_auto_attack_flags_masked_gradients_that_square_gets_through():
    rng = np.random.default_rng(4)
    kernel = rng.normal(size=(12, 4)).astype(np.float32)
    # Quantised inputs: zero gradient almost everywhere, so APGD cannot move; the black-box Square can.
    masked = lambda v: jnp.round(v * 4.0).reshape(v.shape[0], -1) / 4.0 @ jnp.asarray(kernel)
    x = rng.uniform(0.2, 0.8, size=(32, 2, 2, 3)).astype(np.float32)
    y = np.asarray(masked(x).argmax(-1))
    r = autoattack.auto_attack(masked, x, y, eps=0.3, key=jax.random.key(0), bounds=BOUNDS,
                               attacks=(APGD("linf", "ce", 5), Square("linf", 200)))
    flagged = {c.name for c in r.checks if c.flagged}
    assert r.robust_accuracy["square"] < r.robust_accuracy["apgd-ce"]
    assert {"square_beats_white_box", "zero_gradients"} <= flagged


def test_bad_arguments_are_one_line_errors(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="unknown AutoAttack version"):
        autoattack.auto_attack(model, x, y, eps=0.1, version="fast", key=jax.random.key(0), bounds=BOUNDS)
    with pytest.raises(ValueError, match="eps must be"):
        autoattack.auto_attack(model, x, y, eps=-1.0, key=jax.random.key(0), bounds=BOUNDS)
    with pytest.raises(ValueError, match="labels must be integers"):
        autoattack.auto_attack(model, x, y[:3], eps=0.1, key=jax.random.key(0), bounds=BOUNDS)
    with pytest.raises(ValueError, match="9 targets"):
        autoattack.auto_attack(model, x, y, eps=0.1, key=jax.random.key(0), bounds=BOUNDS)  # 5 classes, 9 targets
