"""Defences as options of MNIST training: adversarial training and defensive distillation.

* Adversarial training (Goodfellow et al. 2015 with FGSM; Madry et al. 2018 with PGD): :func:`adversarial_batch_fn`
  is a ``batch_fn`` for :func:`jaxfool.train.train` that replaces (part of) each minibatch by adversarial examples
  crafted against the current parameters inside the jitted step.
* Defensive distillation (Papernot et al. 2016): :func:`defensive_distillation` trains a teacher with its softmax at
  temperature ``T``, labels the training set with the teacher's softened probabilities and trains a student at the
  same ``T`` on them; the student is then used at ``T = 1``, where its logits are ``T`` times larger and the softmax
  saturates -- which defeats cross-entropy gradients but not the margin loss (Carlini & Wagner 2016).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import numpy as np

from jaxfool.attacks.batch import network_model
from jaxfool.attacks.gradient import Attack
from jaxfool.attacks.loop import AttackParams
from jaxfool.models.network import Network, Params, predict_proba
from jaxfool.train import BatchFn, TrainConfig, one_hot, train

Array = jax.Array


def adversarial_batch_fn(net: Network, attack: Attack, params: AttackParams, *, fraction: float = 1.0) -> BatchFn:
    """A ``batch_fn`` that swaps the first ``fraction`` of each minibatch for adversarial examples.

    ``fraction=1`` is Madry et al.'s PGD training (only adversarial examples); ``0.5`` is Goodfellow et al.'s
    even mix of clean and FGSM examples. Labels are the targets' argmax; the attack is untargeted. Gradients do
    not flow through the attack (Danskin's theorem: the loss gradient at the maximiser is what training needs).

    Args:
        net: the network being trained.
        attack: an untargeted attack (e.g. ``get_attack("pgd", steps=7)``).
        params: its scalar hyperparameters (``attack.params(eps=0.3)``).
        fraction: share of each minibatch replaced, in ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"adversarial training fraction={fraction} must be in (0, 1]")
    if attack.targeted:
        raise ValueError(f"adversarial training needs an untargeted attack; {attack.name} is targeted")

    def batch_fn(net_params: Params, x: Array, targets: Array, key: Array) -> tuple[Array, Array]:
        n = max(1, round(fraction * x.shape[0]))
        model = network_model(net, jax.lax.stop_gradient(net_params))
        keys = jax.random.split(key, n)
        adversarial = jax.vmap(lambda xi, yi, ki: attack(model, xi, yi, params, key=ki, bounds=net.bounds))(
            x[:n], targets[:n].argmax(-1), keys
        )
        return x.at[:n].set(jax.lax.stop_gradient(adversarial)), targets

    return batch_fn


class _Tempered(nn.Module):
    """``inner`` with its logits divided by ``temperature``; shares ``inner``'s parameters (same tree)."""

    inner: nn.Module
    temperature: float

    def setup(self):
        nn.share_scope(self, self.inner)

    def __call__(self, x: Array, taps=None) -> dict[str, Array]:
        activations = dict(self.inner(x, taps=taps))
        last = next(reversed(activations))
        activations[last] = activations[last] / self.temperature
        return activations


def at_temperature(net: Network, temperature: float) -> Network:
    """``net`` with logits divided by ``temperature`` (softmax at temperature ``T``), with the same parameters."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    return dataclasses.replace(net, name=f"{net.name}_T{temperature:g}", module=_Tempered(net.module, temperature))


def defensive_distillation(
    net: Network, images: np.ndarray, labels: np.ndarray, config: TrainConfig, *, temperature: float = 20.0
) -> tuple[Params, Params]:
    """Trains a teacher and a distilled student at ``temperature`` (see the module docstring).

    Args:
        net: the architecture (used for both).
        images: ``[n, H, W, C]`` training images.
        labels: ``[n]`` integer labels.
        config: training settings for each of the two runs (the student uses ``seed + 1``).
        temperature: ``T``; Papernot et al. use 20-100 on MNIST.

    Returns:
        ``(teacher_params, student_params)``; evaluate and attack the student with ``net`` itself (``T = 1``).
    """
    hot = at_temperature(net, temperature)
    teacher, _ = train(hot, images, one_hot(labels, net.num_classes), config, desc="distillation teacher")
    soft = np.asarray(predict_proba(hot, teacher, images))
    student_config = dataclasses.replace(config, seed=config.seed + 1)
    student, _ = train(hot, images, soft, student_config, desc="distillation student")
    return teacher, student
