"""optax drives the attacks: MI-FGSM as an optax chain equals the MI-FGSM jaxfool shipped before (bitwise, CPU),
Adam-PGD equals a hand-written Adam loop, any optax optimiser plugs in, and an optax-driven sweep traces once."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import Partial

from jaxfool import attacks, xla
from jaxfool.attacks import transforms
from tests.test_attacks import CLASSES, _images, _tiny_apply, _tiny_model, _tiny_params


# --- the MI-FGSM of jaxfool before optax (commit 0a8f37a), kept verbatim as the reference ----------------------------


def _reference_mifgsm(model, x, label, eps, rel_step, decay, *, steps, bounds):
    """Yesterday's ``iterate`` with ``chain(momentum(), steepest(LINF))`` and CE loss, untargeted, no random start."""
    eps = jnp.asarray(eps, x.dtype)
    step = eps * jnp.asarray(rel_step, x.dtype)
    delta = jnp.clip(x + jnp.zeros_like(x), *bounds) - x

    def body(i, carry):
        delta, m = carry
        g = jax.grad(lambda d: -jax.nn.log_softmax(model((x + d)[None])[0])[label])(delta)
        m = decay * m + g / jnp.maximum(jnp.mean(jnp.abs(g)), 1e-12)
        delta = jnp.clip(delta + step * jnp.sign(m), -eps, eps)
        return jnp.clip(x + delta, *bounds) - x, m

    delta, _ = jax.lax.fori_loop(0, steps, body, (delta, jnp.zeros_like(x)))
    return jnp.clip(x + delta, *bounds)


@functools.partial(xla.jit, static_argnames=("steps", "bounds"))
def _reference_batch(model, x, labels, eps, rel_step, decay, *, steps, bounds):
    one = lambda xi, yi: _reference_mifgsm(model, xi, yi, eps, rel_step, decay, steps=steps, bounds=bounds)
    return jax.vmap(one)(x, labels)


def test_mifgsm_as_an_optax_chain_equals_the_previous_mifgsm_bitwise():
    # Also checked once, not kept for time, on the MNIST CNN through network_model: bitwise equal too.
    model, x = _tiny_model(3), _images(4, 3)
    labels = jnp.arange(len(x)) % CLASSES
    mifgsm = attacks.get_attack("mifgsm", steps=5)
    for eps, decay in [(0.1, 1.0), (0.3, 0.5)]:
        params = mifgsm.params(eps, decay=decay)
        got = attacks.perturb(mifgsm, model, x, labels, params, key=jax.random.key(0), bounds=(0.0, 1.0))
        want = _reference_batch(model, x, labels, params.eps, params.rel_step, params.decay, steps=5, bounds=(0.0, 1.0))
        assert not np.array_equal(got, x)
        np.testing.assert_array_equal(got, want)


def test_mifgsm_step_is_the_chain_l1_normalise_trace_sign_sgd():
    mifgsm = attacks.get_attack("mifgsm", steps=4)
    model, x, label = _tiny_model(1), _images(1, 1)[0], 2
    params = mifgsm.params(0.2, decay=0.7)
    objective = functools.partial(attacks.objective, loss="ce", targeted=False)
    chain = optax.chain(
        transforms.l1_normalize(), optax.trace(decay=params.decay, nesterov=False), optax.scale_by_sign(),
        optax.sgd(params.eps * params.rel_step),
    )
    run = lambda tx: attacks.iterate(
        model, x, label, params, key=jax.random.key(0), steps=4, objective=objective, grad_transform=tx,
        input_transform=transforms.identity_input, norm=attacks.LINF, bounds=(0.0, 1.0), random_start=False,
    )
    by_chain, by_spec, by_attack = jax.jit(lambda: (
        run(chain), run(mifgsm.step_transform(params)),
        mifgsm(model, x, label, params, key=jax.random.key(0), bounds=(0.0, 1.0)),
    ))()
    assert not np.array_equal(by_chain, x)
    np.testing.assert_array_equal(by_chain, by_spec)
    np.testing.assert_array_equal(by_chain, by_attack)


# --- Adam-PGD ----------------------------------------------------------------------------------------------------


def _hand_written_adam_pgd(model, x, label, eps, step, steps, b1=0.9, b2=0.999, adam_eps=1e-8):
    """Foolbox 3's LinfAdamPGD loop without a random start, with Adam's formulas written out."""
    m, v, delta = jnp.zeros_like(x), jnp.zeros_like(x), jnp.zeros_like(x)
    for t in range(1, steps + 1):
        g = jnp.sign(jax.grad(lambda d: -jax.nn.log_softmax(model((x + d)[None])[0])[label])(delta))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        delta = jnp.clip(delta + step * m_hat / (jnp.sqrt(v_hat) + adam_eps), -eps, eps)  # ascent on the CE loss
        delta = jnp.clip(x + delta, 0.0, 1.0) - x
    return x + delta


def test_adam_pgd_equals_a_hand_written_adam_loop():
    adam_pgd = attacks.get_attack("adam_pgd", steps=6, random_start=False)
    model, x = _tiny_model(4), _images(3, 4)
    labels = jnp.array([0, 1, 3])
    params = adam_pgd.params(0.2, rel_step=0.1)
    got = attacks.perturb(adam_pgd, model, x, labels, params, key=jax.random.key(0), bounds=(0.0, 1.0))
    want = jnp.stack([_hand_written_adam_pgd(model, x[i], int(labels[i]), 0.2, 0.02, 6) for i in range(3)])
    np.testing.assert_allclose(got, want, atol=1e-6)
    # Adam's per-coordinate scaling takes a different path from the sign steps of PGD with the same step size.
    pgd = attacks.get_attack("pgd", steps=6, random_start=False)
    assert not np.allclose(got, attacks.perturb(pgd, model, x, labels, params, key=jax.random.key(0),
                                                bounds=(0.0, 1.0)), atol=1e-4)


def _lion(learning_rate):
    return optax.lion(learning_rate, b1=0.5)


def test_any_optax_optimiser_drives_an_attack():
    model, x, labels = _tiny_model(6), _images(4, 6), jnp.arange(4)
    for optimizer in ("lion", _lion, "rmsprop"):
        attack = attacks.get_attack("pgd", steps=4, optimizer=optimizer)
        x_adv = attacks.perturb(attack, model, x, labels, attack.params(0.1), key=jax.random.key(1), bounds=(0.0, 1.0))
        assert float(jnp.abs(x_adv - x).max()) <= 0.1 + 1e-6 and not np.array_equal(x_adv, x)
        ce = lambda xs: float(jax.vmap(attacks.cross_entropy)(model(xs), labels).mean())
        assert ce(x_adv) > ce(x), f"{optimizer}: the attack did not raise the loss"
    with pytest.raises(ValueError, match=r"optimizer='adamm' is not an optax optimiser") as info:
        attacks.get_attack("pgd", optimizer="adamm")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="not an optax optimiser"):
        attacks.get_attack("pgd", optimizer="tree")  # a name in optax that is not an optimiser


# --- sweeps of optax-driven attacks --------------------------------------------------------------------------------

_CALLS: list[int] = []


def _counting_apply(params, x):
    _CALLS.append(1)  # runs only while JAX traces
    return _tiny_apply(params, x)


@pytest.mark.parametrize("name", ["adam_pgd", "mifgsm"])
def test_an_optax_driven_sweep_traces_once_for_all_settings(name):
    attack = attacks.get_attack(name, steps=3)
    model = Partial(_counting_apply, _tiny_params(0))
    x, y, key = _images(4), jnp.arange(4) % CLASSES, jax.random.key(2)
    settings = [attack.params(e, rel_step=r, decay=d) for e, r, d in [(0.05, 0.5, 1.0), (0.1, 0.2, 0.5),
                                                                      (0.2, 0.9, 0.0)]]
    _CALLS.clear()
    one = attacks.sweep(attack, model, x, y, attacks.stack_params(settings[:1]), key=key, bounds=(0.0, 1.0))
    traced_k1 = len(_CALLS)
    swept = attacks.sweep(attack, model, x, y, attacks.stack_params(settings), key=key, bounds=(0.0, 1.0))
    traced_k3 = len(_CALLS) - traced_k1
    # K=1 also traced the model for the input check (jax.eval_shape, cached after); the compiled K=3 sweep traces
    # the model's step exactly once, not once per setting.
    assert traced_k1 == 2 and traced_k3 == 1, (traced_k1, traced_k3)
    attacks.sweep(attack, model, x, y, attacks.stack_params(settings[::-1]), key=key, bounds=(0.0, 1.0))
    assert len(_CALLS) == traced_k1 + traced_k3, "new values of eps, step or decay recompiled the sweep"
    np.testing.assert_allclose(swept[0], one[0], atol=1e-6)
    for k, p in enumerate(settings):
        np.testing.assert_allclose(swept[k], attacks.perturb(attack, model, x, y, p, key=key, bounds=(0.0, 1.0)),
                                   atol=1e-6)
