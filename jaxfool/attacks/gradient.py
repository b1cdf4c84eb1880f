"""Gradient attacks as static specifications over the shared step loop, and the name -> attack registry.

An :class:`Attack` holds only what fixes the compiled program (number of steps, norm, which pieces, which optax
optimiser, restarts);
the values that may change between calls (``eps``, step, momentum decay, diversity probability) are an
:class:`~jaxfool.attacks.AttackParams` passed at call time. ``Attack`` is hashable, so it is a static argument
of ``jax.jit``, and one compiled attack serves every ``eps``::

    pgd = get_attack("pgd", steps=40)
    x_adv = pgd(model, x, label, pgd.params(eps=0.3), key=key, bounds=(0.0, 1.0))   # x: [H, W, C]
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxfool.attacks import losses, transforms
from jaxfool.attacks.loop import AttackParams, Model, iterate
from jaxfool.attacks.norms import get_norm

Array = jax.Array


def _optimizer_factory(attack: str, optimizer) -> Callable[[ArrayLike], optax.GradientTransformation]:
    """The optax optimiser ``learning_rate -> GradientTransformation`` that ``optimizer`` names, or a one-line error."""
    if callable(optimizer):
        return optimizer
    factory = getattr(optax, optimizer, None) if isinstance(optimizer, str) else None
    try:
        first = next(iter(inspect.signature(factory).parameters)) if callable(factory) else None
    except (TypeError, ValueError, StopIteration):
        first = None
    if first != "learning_rate":
        raise ValueError(
            f"{attack}: optimizer={optimizer!r} is not an optax optimiser taking learning_rate first; use a name "
            f"such as 'sgd', 'adam', 'lion', or a function learning_rate -> optax.GradientTransformation"
        )
    return factory


@dataclasses.dataclass(frozen=True)
class Attack:
    """The static structure of an iterative gradient attack (see the module docstring).

    Attributes:
        name: registry name, used in tables and run folders.
        steps: gradient steps (1 for FGSM).
        norm: ``"linf"`` or ``"l2"``.
        random_start: start each restart from a uniform point of the ball (PGD).
        restarts: independent runs per example; the strongest is kept (a success, then the highest objective).
        momentum: accumulate normalised gradients (MI-FGSM): :func:`~jaxfool.attacks.transforms.momentum`.
        optimizer: the optax optimiser that turns the steepest direction into the step: the name of an optax
            function whose first argument is ``learning_rate`` (``"sgd"``: the sign-gradient family; ``"adam"``:
            Foolbox's Adam-PGD; ``"lion"``, ``"rmsprop"``, ...) or such a function ``learning_rate ->
            optax.GradientTransformation`` (defined once: a fresh function is a new static argument, so it
            compiles again). Its learning rate is ``rel_step * eps`` (traced).
        diversity: random resize-and-pad of the input before each gradient (DI2-FGSM).
        resize_rate: smallest resize of input diversity, as a fraction of the input size.
        loss: ``"ce"`` or ``"margin"`` (C&W).
        targeted: labels are targets to reach rather than true classes to leave.
        rel_step: default step as a fraction of ``eps`` for :meth:`params`; ``None`` picks ``2.5 / steps`` with a
            random start (Madry et al.) and ``1 / steps`` without (FGSM, I-FGSM: the steps add up to ``eps``).
        decay: default momentum decay for :meth:`params`.
        diversity_prob: default diversity probability for :meth:`params`.
        unroll: ``lax.fori_loop`` unrolling (see :mod:`jaxfool.attacks.loop`).
    """

    name: str
    steps: int = 1
    norm: str = "linf"
    random_start: bool = False
    restarts: int = 1
    momentum: bool = False
    optimizer: str | Callable[[ArrayLike], optax.GradientTransformation] = "sgd"
    diversity: bool = False
    resize_rate: float = 0.9
    loss: str = "ce"
    targeted: bool = False
    rel_step: float | None = None
    decay: float = 1.0
    diversity_prob: float = 0.5
    unroll: int | bool = 1

    def __post_init__(self):
        get_norm(self.norm)
        if self.loss not in losses.LOSSES:
            raise ValueError(f"{self.name}: unknown loss {self.loss!r}; valid losses: {', '.join(losses.LOSSES)}")
        if self.steps < 1 or self.restarts < 1:
            raise ValueError(f"{self.name}: steps={self.steps} and restarts={self.restarts} must be >= 1")
        if not 0.0 < self.resize_rate <= 1.0:
            raise ValueError(f"{self.name}: resize_rate={self.resize_rate} must be in (0, 1]")
        _optimizer_factory(self.name, self.optimizer)

    def step_transform(self, params: AttackParams, dtype: jnp.dtype = jnp.float32) -> optax.GradientTransformation:
        """The optax transformation of one step: gradient of the minimised loss -> update added to ``delta``.

        ``[momentum(decay)] -> steepest(norm) -> optimizer(rel_step * eps)``; MI-FGSM's is the chain
        ``l1_normalize -> optax.trace(decay) -> optax.scale_by_sign -> optax.sgd(step)``. Built from ``params``
        at call time, so under ``jit`` its hyperparameters are traced and a sweep over them compiles once.

        Args:
            params: scalar hyperparameters (tracers inside ``jit``/``vmap``).
            dtype: the dtype of the perturbation.
        """
        step = jnp.asarray(params.eps, dtype) * jnp.asarray(params.rel_step, dtype)
        pieces = [transforms.momentum(params.decay)] if self.momentum else []
        pieces += [transforms.steepest(get_norm(self.norm)), _optimizer_factory(self.name, self.optimizer)(step)]
        return optax.chain(*pieces)

    def params(self, eps: ArrayLike, **overrides: ArrayLike) -> AttackParams:
        """This attack's default :class:`AttackParams` at radius ``eps``; ``overrides`` replace fields.

        Fields are float32 arrays broadcast to one shape: pass ``eps`` (or any override) as a ``[K]`` vector to get
        the ``[K]`` settings of a :func:`~jaxfool.attacks.sweep`.
        """
        default_step = self.rel_step
        if default_step is None:
            default_step = (2.5 if self.random_start else 1.0) / self.steps
        base = AttackParams(eps=eps, rel_step=default_step, decay=self.decay, diversity_prob=self.diversity_prob)
        # Checked here rather than left to NamedTuple._replace, whose error type and text vary across Pythons.
        unknown = sorted(set(overrides) - set(AttackParams._fields))
        if unknown:
            valid = ", ".join(AttackParams._fields)
            raise ValueError(f"unknown attack parameter(s) {', '.join(unknown)}; valid: {valid}")
        fields = [jnp.asarray(v, jnp.float32) for v in base._replace(**overrides)]
        shape = jnp.broadcast_shapes(*(f.shape for f in fields))
        return AttackParams(*(jnp.broadcast_to(f, shape) for f in fields))

    def __call__(
        self, model: Model, x: Array, label: ArrayLike, params: AttackParams, *, key: Array, bounds: tuple[float, float]
    ) -> Array:
        """Attacks one example.

        Args:
            model: ``x [batch, H, W, C] -> logits [batch, num_classes]``, inputs in the model's own units (a VGG16
                model function takes raw 0-255 pixels and does its preprocessing inside).
            x: ``[H, W, C]`` inside ``bounds``.
            label: true class, or target class if :attr:`targeted`.
            params: hyperparameters (scalars; ``jax.vmap`` over stacked ones to sweep).
            key: PRNG key (random start, input diversity, restarts).
            bounds: the model's valid ``(low, high)`` input range.

        Returns:
            The adversarial example ``[H, W, C]``: inside ``bounds``, within ``params.eps`` of ``x`` in :attr:`norm`.
        """
        norm = get_norm(self.norm)
        step = self.step_transform(params, x.dtype)
        input_transform = (
            transforms.input_diversity(self.resize_rate) if self.diversity else transforms.identity_input
        )

        def objective(logits: Array, label: Array) -> Array:
            return losses.objective(logits, label, loss=self.loss, targeted=self.targeted)

        def run(run_key: Array) -> Array:
            return iterate(
                model, x, label, params, key=run_key, steps=self.steps, objective=objective,
                grad_transform=step, input_transform=input_transform, norm=norm,
                bounds=bounds, random_start=self.random_start, unroll=self.unroll,
            )

        if self.restarts == 1:
            return run(key)
        candidates = jax.vmap(run)(jax.random.split(key, self.restarts))  # [restarts, H, W, C]
        logits = model(candidates)
        score = jax.vmap(objective, in_axes=(0, None))(logits, label)
        success = losses.is_successful(logits, label, targeted=self.targeted)
        # Any success outranks every failure; among equals the higher objective wins.
        lift = jnp.max(score) - jnp.min(score) + 1.0
        return candidates[jnp.argmax(jnp.where(success, score + lift, score))]


ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        Attack("fgsm"),
        Attack("fgm_l2", norm="l2"),
        Attack("ifgsm", steps=10),
        Attack("pgd", steps=40, random_start=True),
        Attack("pgd_l2", steps=40, norm="l2", random_start=True),
        Attack("mifgsm", steps=10, momentum=True),
        Attack("di2fgsm", steps=10, diversity=True),
        Attack("mdi2fgsm", steps=10, momentum=True, diversity=True),
        Attack("adam_pgd", steps=40, random_start=True, optimizer="adam"),
        Attack("adam_pgd_l2", steps=40, norm="l2", random_start=True, optimizer="adam"),
    )
}
_ALIASES = {"bim": "ifgsm", "difgsm": "di2fgsm", "mdifgsm": "mdi2fgsm", "linf_pgd": "pgd", "l2_pgd": "pgd_l2"}


def attack_names() -> tuple[str, ...]:
    """The registered attack names (aliases excluded)."""
    return tuple(ATTACKS)


def get_attack(name: str, **overrides) -> Attack:
    """The registered attack ``name`` (or alias: bim, difgsm, ...) with ``overrides`` of its fields.

    ``get_attack("pgd", steps=100, restarts=5, loss="margin", targeted=True)``.
    """
    key = _ALIASES.get(name, name)
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid attacks: {', '.join(ATTACKS)} (aliases: {', '.join(_ALIASES)})")
    fields = {f.name for f in dataclasses.fields(Attack)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown Attack field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(ATTACKS[key], **overrides)
