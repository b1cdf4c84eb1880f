"""Training and evaluating classifiers with optax: one jitted epoch (a ``lax.scan`` over minibatches).

Targets are probability vectors, so hard labels, uniform soft labels for generated images, and
distillation targets all go through the same step.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import pathlib
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfool import checkpoints, xla
from jaxfool.models.network import Network, Params, forward, predict_proba
from jaxfool.progress import bar as progress_bar

if TYPE_CHECKING:  # imported where used: orbax's import adds a root logging handler (see jaxfool.checkpoints)
    import orbax.checkpoint as ocp

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
    checkpoint_dir: str | os.PathLike | None = None,
    desc: str = "train",
    progress: bool = False,
) -> tuple[Params, list[float]]:
    """Trains ``net`` on ``images`` with cross-entropy against ``targets``.

    With ``checkpoint_dir``, the training state is saved there after every epoch (orbax ``CheckpointManager``,
    the last complete epoch kept) and a later call with the same folder and the same inputs resumes from it; the
    result is bitwise the same as an uninterrupted run's, since an epoch's data order and PRNG keys depend only
    on ``(config.seed, epoch)``. A folder written by a different training (other config, data, start parameters
    or network) is cleared and training starts over. Saving failures (a read-only disk) are warned about once
    and training goes on without checkpoints. The caller removes the folder once it has the result.

    Args:
        net: the network.
        images: ``[n, H, W, C]`` in the network's input units.
        targets: ``[n, num_classes]`` probability vectors (see :func:`one_hot`).
        config: optimisation settings.
        params: parameters to start from; random (``config.seed``) if ``None``.
        batch_fn: optional transformation of each minibatch before the step (adversarial training); it is not
            part of the resume check, so give each ``batch_fn`` its own ``checkpoint_dir``.
        checkpoint_dir: work folder for per-epoch checkpoints; ``None`` keeps none.
        desc: progress-bar label.
        progress: show a progress bar (see :mod:`jaxfool.progress`).

    Returns:
        ``(params, mean training loss per epoch)``.
    """
    config.validate()
    net.check_input(images)
    if targets.shape != (len(images), net.num_classes):
        raise ValueError(f"targets have shape {targets.shape}, expected {(len(images), net.num_classes)}")
    n_batches = len(images) // config.batch_size
    if n_batches == 0:
        raise ValueError(f"{len(images)} training images is fewer than one batch of {config.batch_size}")
    if 2 * config.max_shift >= min(net.input_shape[:2]):
        raise ValueError(f"train.max_shift={config.max_shift} would shift {net.input_shape[:2]} images out of frame")
    init_key, key = jax.random.split(jax.random.key(config.seed))
    tx = optax.adam(config.learning_rate)
    if params is None:
        params = net.init(key=init_key)
    state = TrainState(params, tx.init(params))
    losses: list[float] = []
    saver = None
    if checkpoint_dir is not None:
        fingerprint = _fingerprint(net, images, targets, config, params)
        saver = _EpochCheckpoints(pathlib.Path(checkpoint_dir), fingerprint, jax.eval_shape(lambda: state))
        state, losses = saver.resume(state, losses)
    step = _make_step(net, tx, batch_fn, config.max_shift)
    images_d, targets_d = jnp.asarray(images), jnp.asarray(targets)
    # The key an uninterrupted run would hold at this epoch: one split per epoch and one per batch.
    key = _advance(key, len(losses) * (n_batches + 1))
    try:
        for epoch in (bar := progress_bar(range(len(losses), config.epochs), progress=progress, desc=desc,
                                          initial=len(losses), total=config.epochs)):
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
            if saver is not None:
                saver.save(epoch + 1, state, losses)
    finally:
        if saver is not None:
            saver.close()
    return state.params, losses


@functools.partial(jax.jit, static_argnums=1)
def _advance(key: Array, splits: int) -> Array:
    """``key`` after ``splits`` times ``key, _ = split(key)``."""
    return jax.lax.fori_loop(0, splits, lambda _, k: jax.random.split(k)[0], key)


def _fingerprint(net: Network, images: np.ndarray, targets: np.ndarray, config: TrainConfig, params: Params) -> str:
    """What a resumed training must share with the one that wrote the checkpoints."""
    h = hashlib.sha256(json.dumps({"net": net.name, "config": dataclasses.asdict(config)}, sort_keys=True).encode())
    for a in (images, targets):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(checkpoints.tree_digest(params).encode())
    return h.hexdigest()


class _EpochCheckpoints:
    """The per-epoch training checkpoints in a work folder (orbax ``CheckpointManager``, one step per epoch)."""

    def __init__(self, folder: pathlib.Path, fingerprint: str, abstract_state: TrainState):
        self.folder, self.fingerprint, self.abstract = folder.absolute(), fingerprint, abstract_state
        self.manager = None
        try:
            self.manager = self._open()
        except OSError as e:
            log.warning("cannot keep training checkpoints in %s (%s); training without them", self.folder, e)

    def _open(self) -> ocp.CheckpointManager:
        import orbax.checkpoint as ocp

        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False,
                                               cleanup_tmp_directories=True)
        return ocp.CheckpointManager(self.folder, options=options, item_names=("state", "progress"))

    def resume(self, state: TrainState, losses: list[float]) -> tuple[TrainState, list[float]]:
        """The state and losses after the last saved epoch, or the given ones if there is none to trust."""
        if self.manager is None or (step := self.manager.latest_step()) is None:
            return state, losses
        import orbax.checkpoint as ocp

        try:
            saved = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(self.abstract), progress=ocp.args.JsonRestore()))
            good = (saved.progress.get("fingerprint") == self.fingerprint
                    and saved.progress.get("sha256") == checkpoints.tree_digest(saved.state))
            reason = "from a different training"
        except Exception as e:  # noqa: BLE001 -- a damaged work folder only costs the epochs it held
            good, reason = False, f"unreadable ({type(e).__name__})"
        if good:
            log.info("resuming training from epoch %d of %s", step, self.folder)
            return saved.state, list(saved.progress["losses"])
        log.warning("training checkpoints in %s are %s; starting over", self.folder, reason)
        self.manager.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.manager = self._open()
        return state, losses

    def save(self, epoch: int, state: TrainState, losses: list[float]) -> None:
        if self.manager is None:
            return
        import orbax.checkpoint as ocp

        state = jax.device_get(state)
        progress = {"fingerprint": self.fingerprint, "sha256": checkpoints.tree_digest(state), "losses": losses}
        try:
            self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                             progress=ocp.args.JsonSave(progress)))
        except OSError as e:
            log.warning("cannot save a training checkpoint in %s (%s); training without them", self.folder, e)
            self.close()

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None


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
