"""Adversarial examples crafted on one network, evaluated on all of them (Xie et al. 2019, Table 1).

``python -m experiments.transfer_table --config configs/transfer_table.py``: trains (or restores) the backwork CNN,
an MLP and a residual GroupNorm CNN, crafts FGSM, I-FGSM, MI-FGSM, DI2-FGSM and M-DI2-FGSM examples on each and
reports the success rate (misclassification rate) on every model.
``--config configs/transfer_table_imagenet.py``: the same between VGG16, ResNet50 and ResNet101 on a folder of
photos (default: scikit-image's sample photos); without labels a cell is the share of photos whose top-1 the attack
changes. Official weights when on disk, else random weights, labelled MEANINGLESS in every file.

Writes ``transfer_table.md``, ``metrics.json`` and ``config.json`` into ``<workdir>/transfer_table/<run>/``.
Diagonal (white-box) cells are marked ``*``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np

from jaxfool import cli, images, runs, transfer, zoo
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.models import mnist_cnn
from jaxfool.models.mnist_zoo import mnist_mlp, mnist_resnet

log = logging.getLogger("transfer_table")
ARCHITECTURES = {"mnist_cnn": mnist_cnn, "mnist_mlp": mnist_mlp, "mnist_resnet": mnist_resnet}
WEIGHTS, CRAFT = 0, 1  # section ids folded into the root key


def mnist_models(config: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray, dict[str, Any]]:
    """The trained (or restored) MNIST networks, the stratified test digits, their labels and the models' info."""
    t, data = config.transfer, load_mnist(config.data)
    nets, info = {}, {}
    for name in t.models:
        net = ARCHITECTURES[name]()
        params, meta = zoo.load_or_train(net, data, config.train, cache_dir=pathlib.Path(config.workdir) / "models",
                                         progress=True)
        nets[name], info[name] = (net, params), {k: meta[k] for k in ("checkpoint", "test_accuracy")}
    keep = stratified_indices(data.test_labels, t.n_test)
    return nets, data.test_images[keep], data.test_labels[keep], {"data_source": data.source, "models": info}


def imagenet_models(config: Any, key: jax.Array) -> tuple[dict[str, Any], np.ndarray, None, dict[str, Any]]:
    """The ImageNet networks with their weights, the photos (no labels) and where the weights came from."""
    t = config.transfer
    photos = images.load_photos(t.image_dir, (t.image_size, t.image_size))
    nets, sources = {}, {}
    for name in t.models:  # each network's random weights from its own key, whatever else is in the table
        net, params, sources[name] = transfer.load_imagenet(
            name, t.weights, key=jax.random.fold_in(key, transfer.IMAGENET_MODELS.index(name)))
        nets[name] = (net, params)
    meaningless = "random" in sources.values()
    if meaningless:
        log.warning("random weights (%s): every number below is MEANINGLESS; the pipeline is real", sources)
    info = {"data_source": t.image_dir or "scikit-image sample photos", "weights": sources, "meaningless": meaningless,
            "images": [p.name for p in photos.paths[: t.n_test]]}
    return nets, photos.pixels[: t.n_test], None, info


def run(config: Any) -> dict[str, Any]:
    """Loads (or trains) the networks, crafts on each, evaluates on all; returns the metrics."""
    cli.validate(config)
    t, start, key = config.transfer, time.perf_counter(), jax.random.key(config.seed)
    # Every bad input (a missing folder, wrong weights) is an error here, before the run folder is made.
    nets, x, y, info = imagenet_models(config, jax.random.fold_in(key, WEIGHTS)) if t.imagenet else mnist_models(config)
    run_dir = runs.start_run(config, "transfer_table")
    out = transfer.transfer_table(nets, x, attack_names=t.attacks, eps=t.eps, key=jax.random.fold_in(key, CRAFT),
                                  labels=y, steps=t.steps, decay=t.decay, diversity_prob=t.diversity_prob,
                                  batch_size=t.batch_size, progress=True)
    success, clean_error = out["success"], out["clean_error"]
    table = transfer.markdown(success, clean_error)
    what = "top-1 changed from the clean image's" if y is None else "misclassified"
    caption = f"Share of images {what} (%), eps {t.eps:g}, {len(x)} images; * white-box.\n\n"
    note = f"{transfer.MEANINGLESS}\n\n" if info.get("meaningless") else ""
    (run_dir / "transfer_table.md").write_text(note + caption + table)
    transfer_mean = {
        name: float(np.mean([success[s][name][d] for s in t.models for d in t.models if d != s]))
        for name in t.attacks
    } if len(t.models) > 1 else {}
    metrics = {
        **info,
        "n_attacked": len(x),
        "eps": t.eps,
        "clean_error": clean_error,
        "success": success,
        "white_box": {name: {s: success[s][name][s] for s in t.models} for name in t.attacks},
        "mean_black_box_transfer": transfer_mean,
        "seconds": round(time.perf_counter() - start, 1),
    }
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("\n%s%s%s\nmean black-box transfer: %s; run folder %s", note, caption, table, transfer_mean, run_dir)
    return {**metrics, "table": table, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
