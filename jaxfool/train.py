"""Training and evaluating classifiers with optax: one jitted epoch (a ``lax.scan`` over minibatches).

Targets are probability vectors, so hard labels, uniform soft labels for generated images, and
distillation targets all go through the same step.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfool import xla
from jaxfool.models.network import Network, Params, forward, predict_proba
from jaxfool.progress import bar as progress_bar

log = logging.getLogger(__name__)
Array = jax.Array


@dataclasses.dataclass
class TrainConfig:
    """How to train a classifier.

    Attributes:
        epochs: passes over the training set.
        batch_size: minibatch size.
        learning_rate: Adam's step size.
        seed: seeds initialisation and shuffling.
        max_shift: augmentation: each training image is translated by up to this many pixels in each direction
            (uniform, filled with the lower pixel bound: black on MNIST); 0 trains on the images as they are.
    """

    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    max_shift: int = 0

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0 or self.max_shift < 0:
            raise ValueError("train.epochs and train.batch_size must be >= 1, train.learning_rate > 0 and "
                             "train.max_shift >= 0")


class TrainState(NamedTuple):
    """Parameters and optimiser state."""

    params: Params
    opt_state: optax.OptState


# Maps (params, images [B, ...], targets [B, C], key) to the images and targets one step trains on;
# the identity for plain training, an attack for adversarial training.
BatchFn = Callable[[Params, Array, Array, Array], tuple[Array, Array]]


def one_hot(labels: Any, num_classes: int) -> np.ndarray:
    """``[n]`` int labels -> ``[n, num_classes]`` float32 targets."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def train(
    net: Network,
    images: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    params: Params | None = None,
    batch_fn: BatchFn | None = None,
    desc: str = "train",
    progress: bool = False,
) -> tuple[Params, list[float]]:
    """Trains ``net`` on ``images`` with cross-entropy against ``targets``.

    Args:
        net: the network.
        images: ``[n, H, W, C]`` in the network's input units.
        targets: ``[n, num_classes]`` probability vectors (see :func:`one_hot`).
        config: optimisation settings.
        params: parameters to start from; random (``config.seed``) if ``None``.
        batch_fn: optional transformation of each minibatch before the step (adversarial training).
        desc: progress-bar label.
        progress: show a progress bar (see :mod:`jaxfool.progress`).

    Returns:
        ``(params, mean training loss per epoch)``.
    """
    config.validate()
    net.check_input(images)
    if targets.shape != (len(images), net.num_classes):
        raise ValueError(f"targets have shape {targets.shape}, expected {(len(images), net.num_classes)}")
    key = jax.random.key(config.seed)
    init_key, key = jax.random.split(key)
    tx = optax.adam(config.learning_rate)
    if params is None:
        params = net.init(key=init_key)
    state = TrainState(params, tx.init(params))
    n_batches = len(images) // config.batch_size
    if n_batches == 0:
        raise ValueError(f"{len(images)} training images is fewer than one batch of {config.batch_size}")
    if 2 * config.max_shift >= min(net.input_shape[:2]):
        raise ValueError(f"train.max_shift={config.max_shift} would shift {net.input_shape[:2]} images out of frame")
    step = _make_step(net, tx, batch_fn, config.max_shift)
    images_d, targets_d = jnp.asarray(images), jnp.asarray(targets)
    losses = []
    for _ in (bar := progress_bar(range(config.epochs), progress=progress, desc=desc)):
        key, perm_key = jax.random.split(key)
        perm = np.asarray(jax.random.permutation(perm_key, len(images)))
        epoch_loss = 0.0
        # A Python loop over one jitted step: XLA:CPU runs convolutions inside a lax.scan body several
        # times slower than at the top level of a computation, and the dispatch overhead is negligible.
        for idx in perm[: n_batches * config.batch_size].reshape(n_batches, config.batch_size):
            key, step_key = jax.random.split(key)
            state, loss = step(state, images_d[idx], targets_d[idx], step_key)
            epoch_loss += loss
        losses.append(float(epoch_loss) / n_batches)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return state.params, losses


def random_shift(x: Array, max_shift: int, *, key: Array, fill: float = 0.0) -> Array:
    """``x [H, W, C]`` translated by a uniform integer offset in ``[-max_shift, max_shift]`` along each axis;
    the pixels moved in are ``fill``."""
    padded = jnp.pad(x, ((max_shift, max_shift), (max_shift, max_shift), (0, 0)), constant_values=fill)
    dy, dx = jax.random.randint(key, (2,), 0, 2 * max_shift + 1)
    return jax.lax.dynamic_slice(padded, (dy, dx, 0), x.shape)


def _make_step(net: Network, tx: optax.GradientTransformation, batch_fn: BatchFn | None, max_shift: int = 0):
    def loss_fn(params, x, t):
        return optax.softmax_cross_entropy(forward(net, params, x)[0], t).mean()

    @xla.jit
    def step(state, x, t, key):
        if max_shift:
            key, shift_key = jax.random.split(key)
            shift = lambda xi, ki: random_shift(xi, max_shift, key=ki, fill=net.bounds[0])
            x = jax.vmap(shift)(x, jax.random.split(shift_key, len(x)))
        if batch_fn is not None:
            x, t = batch_fn(state.params, x, t, key)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, t)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), loss

    return step


def accuracy(net: Network, params: Params, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 1000) -> float:
    """Fraction of ``images [n, H, W, C]`` whose top-1 class equals ``labels [n]``."""
    probs = predict_proba(net, params, jnp.asarray(images), batch_size=batch_size)
    return float(np.mean(np.asarray(probs.argmax(-1)) == np.asarray(labels)))
