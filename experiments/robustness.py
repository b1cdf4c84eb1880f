"""AutoAttack, PGD-40 and minimum-norm attacks on the plain and defended MNIST CNNs, with soundness checks.

``python -m experiments.robustness --config configs/robustness.py``. Restores (or trains) attack_sweep's models,
then per model: AutoAttack at ``eval.eps`` (robust accuracy after each attack and the worst case), PGD-40 over
an L-inf grid and PGD-L2 over an L2 grid, DeepFool (L-inf, L2) and C&W-L2 minimal distances (the whole robust
accuracy curve from one run), and the checks for gradient masking. Writes ``robustness.md`` (the tables),
``curves.png`` (minimum-norm curves beside PGD's), ``metrics.json`` and ``config.json`` into
``<workdir>/robustness/<run>/``.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np

from jaxfool import attacks, cli, defended, plots, runs
from jaxfool.attacks import autoattack, soundness
from jaxfool.attacks.minimum_norm import minimum_norm, robust_curve
from jaxfool.data import load_mnist, stratified_indices
from jaxfool.progress import bar as progress_bar
from jaxfool.train import accuracy

log = logging.getLogger("robustness")


def evaluate(model, x, y, e: Any, *, key, bounds) -> dict[str, Any]:
    """Every attack of the evaluation on one model; returns its metrics."""
    aa = autoattack.auto_attack(model, x, y, eps=e.eps, version=e.version, key=key, bounds=bounds,
                                batch_size=e.batch_size,
                                attacks=autoattack.components(e.version, "linf", steps=e.steps, n_queries=e.n_queries))
    kw = dict(key=jax.random.fold_in(key, 1), bounds=bounds, batch_size=e.batch_size)
    curves = {name: attacks.robust_accuracy(attacks.get_attack(name, steps=e.pgd_steps), model, x, y, grid, **kw)
              for name, grid in (("pgd", e.linf_epsilons), ("pgd_l2", e.l2_epsilons))}
    distances = {
        "deepfool_linf": minimum_norm(model, x, y, method="deepfool", norm="linf", bounds=bounds,
                                                   steps=e.deepfool_steps, batch_size=e.batch_size).distance,
        "deepfool_l2": minimum_norm(model, x, y, method="deepfool", norm="l2", bounds=bounds,
                                                 steps=e.deepfool_steps, batch_size=e.batch_size).distance,
        "cw_l2": minimum_norm(model, x, y, method="cw", bounds=bounds, steps=e.cw_steps,
                                           search_steps=e.cw_search_steps, initial_const=e.cw_initial_const,
                                           batch_size=e.batch_size).distance,
    }
    for name, d in distances.items():
        grid = e.linf_epsilons if name.endswith("linf") else e.l2_epsilons
        curves[name] = list(robust_curve(d, np.asarray(grid)))
    found = aa.checks + (soundness.check_eps_monotone(e.linf_epsilons, curves["pgd"]),)
    correct = aa.clean_correct
    return {
        "autoattack": aa.robust_accuracy, "autoattack_seconds": aa.seconds,
        "worst_case": float(aa.robust.mean()),
        f"pgd{e.pgd_steps}@{e.eps:g}": curves["pgd"][list(e.linf_epsilons).index(e.eps)] if e.eps in e.linf_epsilons else None,
        "curves": curves,
        "median_distance": {n: float(np.median(d[correct])) if correct.any() else None for n, d in distances.items()},
        "checks": {c.name: c.to_json() for c in found},
        "flagged": [c.name for c in found if c.flagged],
    }


def plot(results: dict[str, Any], e: Any, path: pathlib.Path) -> None:
    """Rows: models; columns: L-inf (PGD-40, DeepFool, AutoAttack's point) and L2 (PGD-L2, DeepFool, C&W)."""
    fig = plots.figure((8, 2.8 * len(results)))
    axes = fig.subplots(len(results), 2, squeeze=False)
    for row, (name, r) in zip(axes, results.items(), strict=True):
        c = r["curves"]
        row[0].plot(e.linf_epsilons, c["pgd"], "o-", ms=3, label=f"PGD-{e.pgd_steps}")
        row[0].plot(e.linf_epsilons, c["deepfool_linf"], "s--", ms=3, label="DeepFool-Linf (min. norm)")
        row[0].plot([e.eps], [r["worst_case"]], "r*", ms=10, label=f"AutoAttack {e.version}")
        row[1].plot(e.l2_epsilons, c["pgd_l2"], "o-", ms=3, label=f"PGD-L2-{e.pgd_steps}")
        row[1].plot(e.l2_epsilons, c["deepfool_l2"], "s--", ms=3, label="DeepFool-L2 (min. norm)")
        row[1].plot(e.l2_epsilons, c["cw_l2"], "^--", ms=3, label="C&W-L2 (min. norm)")
        for ax, unit in zip(row, ("L-inf", "L2"), strict=True):
            ax.set(title=f"{name}", xlabel=f"eps ({unit}, pixels in [0, 1])", ylabel="robust accuracy", ylim=(-0.02, 1.02))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results: dict[str, Any], e: Any) -> str:
    """A markdown table: robust accuracy after each AutoAttack attack, the worst case, PGD, the flags."""
    names = list(next(iter(results.values()))["autoattack"])
    head = ["model", *names, "AutoAttack (worst case)", f"PGD-{e.pgd_steps}", "median L2 C&W / DeepFool", "checks flagged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, r in results.items():
        med = r["median_distance"]
        fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)
        cells = [f"{r['autoattack'][n]:.1%}" for n in names] + [f"**{r['worst_case']:.1%}**",
                 fmt(r[f"pgd{e.pgd_steps}@{e.eps:g}"], "{:.1%}"), f"{fmt(med['cw_l2'])} / {fmt(med['deepfool_l2'])}",
                 ", ".join(r["flagged"]) or "none"]
        lines.append("| " + " | ".join([model, *cells]) + " |")
    return "\n".join(lines) + "\n"


def run(config: Any) -> dict[str, Any]:
    """Restores or trains the models and runs every attack on each; returns the metrics."""
    cli.validate(config)
    start = time.perf_counter()
    run_dir = runs.start_run(config, "robustness")
    data = load_mnist(config.data)
    e = config.eval
    net, models, details = defended.mnist_models(config, data, e.models, progress=True)
    keep = stratified_indices(data.test_labels, e.n_test)
    x, y = data.test_images[keep], data.test_labels[keep]
    results: dict[str, Any] = {}
    for name in progress_bar([m for m in e.models if m in models], progress=True, desc="models"):
        t = time.perf_counter()
        model = attacks.network_model(net, models[name])
        results[name] = {**details[name], "test_accuracy": accuracy(net, models[name], data.test_images,
                                                                    data.test_labels)}
        results[name].update(evaluate(model, x, y, e, key=jax.random.key(config.seed), bounds=net.bounds))
        results[name]["seconds"] = round(time.perf_counter() - t, 1)
        r = results[name]
        log.info("%s: AutoAttack %s -> %.1f%% (PGD-%d %.1f%%); flagged: %s", name, r["autoattack"],
                 100 * r["worst_case"], e.pgd_steps, 100 * r[f"pgd{e.pgd_steps}@{e.eps:g}"], r["flagged"] or "none")
        for check in (c for c in r["checks"].values() if c["flagged"]):
            log.warning("%s: %s", name, check["message"])
    plot(results, e, run_dir / "curves.png")
    (run_dir / "robustness.md").write_text(table(results, e))
    metrics = {"data_source": data.source, "n_attacked": len(x), "eps": e.eps, "version": e.version,
               "models": results, "seconds": round(time.perf_counter() - start, 1)}
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("\n%srun folder %s", table(results, e), run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
