"""The plain MNIST CNN and its defended versions (FGSM and PGD adversarial training, defensive distillation),
trained once and cached as checkpoints, for every experiment that evaluates robustness.

The cache keys and training recipes are those of ``experiments.attack_sweep``, so a model trained by either is
restored by the other. ``config`` needs ``workdir``, ``train`` (the plain CNN's :class:`~jaxfool.train.TrainConfig`)
and ``defences`` (``configs.attack_sweep.DefenceConfig``).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Callable
from typing import Any

import jax

from jaxfool import attacks, defences, runs, zoo
from jaxfool.data import Mnist
from jaxfool.models import Network, mnist_cnn
from jaxfool.models.network import Params
from jaxfool.train import TrainConfig, one_hot, train

log = logging.getLogger(__name__)


def cached(path: pathlib.Path, like: Params, make: Callable[[Any], Params], meta: dict[str, Any]) -> Params:
    """Restores the parameters at ``path`` or makes and saves them (``make(work folder)``; see ``zoo.cached``)."""
    params, _, made_now = zoo.cached(path, like, lambda work: (make(work), meta))
    if not made_now:
        log.info("restored %s", path)
    return params


def mnist_models(config: Any, data: Mnist, names: tuple[str, ...] | None = None, *, progress: bool = False
                 ) -> tuple[Network, dict[str, Params], dict[str, Any]]:
    """The plain CNN and each enabled defence (or only those in ``names``), trained or restored; adversarial
    training checkpoints every epoch of every phase and resumes after an interruption.

    Returns:
        ``(net, {name: params}, {name: details})`` with names ``plain``, ``fgsm_trained``, ``pgd_trained``,
        ``distilled``.
    """
    cache = pathlib.Path(config.workdir) / "models"
    net = mnist_cnn()
    plain, info = zoo.load_or_train(net, data, config.train, cache_dir=cache, progress=progress)
    models, details = {"plain": plain}, {"plain": {"checkpoint": info["checkpoint"]}}
    d = config.defences
    like = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    onehot = one_hot(data.train_labels, net.num_classes)
    wanted = lambda name: names is None or name in names

    def adversarial(name: str, attack: attacks.Attack, fraction: float, ramp: int, config: TrainConfig) -> None:
        tag = f"{name}-eps{d.eps:g}-steps{attack.steps}-ramp{ramp}-from-{pathlib.Path(info['checkpoint']).name}"
        path = cache / zoo.model_key(net, data, config, tag)
        # (radius, epochs) phases, each warm-started from the previous parameters.
        phases = [(d.eps * (i + 1) / (ramp + 1), 1) for i in range(ramp)] + [(d.eps, config.epochs - ramp)]

        def make(work: pathlib.Path | None) -> Params:  # each phase resumes from its own work folder
            params = plain
            for i, (eps, epochs) in enumerate(phases):
                batch_fn = defences.adversarial_batch_fn(net, attack, attack.params(eps), fraction=fraction)
                phase = dataclasses.replace(config, epochs=epochs, seed=config.seed + i)
                params = train(net, data.train_images, onehot, phase, params=params, batch_fn=batch_fn,
                               checkpoint_dir=work and work / f"phase{i}", progress=progress,
                               desc=f"{name} training at eps {eps:.3g}")[0]
            return params

        meta = {"defence": name, "phases": phases, "train": runs.to_jsonable(config)}
        models[name] = cached(path, like, make, meta)
        details[name] = {"checkpoint": str(path), "phases": phases}

    if d.fgsm_training and wanted("fgsm_trained"):
        adversarial("fgsm_trained", attacks.get_attack("fgsm"), 0.5, 0, d.fgsm_train)
    if d.pgd_training and wanted("pgd_trained"):
        adversarial("pgd_trained", attacks.get_attack("pgd", steps=d.pgd_steps), 1.0, d.ramp_epochs, d.pgd_train)
    if d.distillation and wanted("distilled"):
        path = cache / zoo.model_key(net, data, d.distill_train, f"distilled-T{d.temperature:g}")
        make = lambda work: defences.defensive_distillation(
            net, data.train_images, data.train_labels, d.distill_train, temperature=d.temperature)[1]
        models["distilled"] = cached(path, like, make, {"defence": "distillation", "temperature": d.temperature})
        details["distilled"] = {"checkpoint": str(path)}
    if names is not None:
        models = {k: v for k, v in models.items() if k in names}
    return net, models, details
