"""Pictures of results: captioned image grids and curves, saved as PNG.

Figures are bare ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, not pyplot figures: no display is
needed, and neither importing this module nor drawing changes the program's matplotlib backend or pyplot state.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    captions: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    title: str = "",
    bounds: tuple[float, float] = (0.0, 1.0),
    cell_inches: float = 1.1,
) -> None:
    """Saves ``images: [rows, cols, H, W, C]`` as a grid, each cell captioned.

    Args:
        images: the pictures; ``C`` is 1 (grayscale) or 3 (RGB), values within ``bounds``.
        path: the PNG to write.
        captions: ``[rows][cols]`` text under each picture.
        row_labels: text left of each row.
        title: figure title.
        bounds: the value range mapped to black..white.
        cell_inches: size of one cell.
    """
    rows, cols = images.shape[:2]
    fig = figure((cols * cell_inches, rows * (cell_inches + 0.25)))
    axes = fig.subplots(rows, cols, squeeze=False)
    lo, hi = bounds
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            img = (np.asarray(images[r, c], np.float32) - lo) / (hi - lo)
            img = np.clip(img, 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if captions is not None:
                ax.set_xlabel(captions[r][c], fontsize=7, labelpad=2)
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9, rotation=0, labelpad=14, va="center")
    if title:
        fig.suptitle(_wrap(title, cols * cell_inches), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def curves(
    series: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    x: Sequence[float] | None = None,
    logy: bool = False,
) -> None:
    """Saves one line per entry of ``series`` (all of equal length, or each against its own index)."""
    fig = figure((5.5, 3.6))
    ax = fig.subplots()
    for name, ys in series.items():
        xs = x if x is not None and len(x) == len(ys) else np.arange(1, len(ys) + 1)
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(_wrap(title, 4.5), fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def figure(size: tuple[float, float]) -> Figure:
    """A bare Agg figure of ``size`` inches (no pyplot state, no display): draw on it and ``savefig``."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)  # attaches itself to fig: savefig draws with Agg whatever pyplot's backend is
    return fig


def curve_panels(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    *,
    x: Sequence[float],
    xlabel: str,
    ylabel: str,
) -> None:
    """Saves one panel per entry of ``panels`` side by side, sharing the y axis: in each, one line per series
    ``{name: [len(x)] values}`` against ``x``."""
    fig = figure((3.4 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        for name, ys in series.items():
            ax.plot(x, ys, marker="o", markersize=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _wrap(title: str, inches: float) -> str:
    # About 13 characters per inch at 10 points: long titles wrap instead of running off the figure.
    width = max(16, int(inches * 13))
    return "\n".join(textwrap.fill(line, width) for line in title.splitlines())


def probability_caption(p: float) -> str:
    """``0.99993`` -> ``"p=0.99993"``, with enough digits to tell 0.999 from 0.9999."""
    return f"p={p:.5f}" if p < 0.99999 else f"p={p:.6f}"


# ---------------------------------------------------------------------------------------------------------
# The pictures of jaxfool.visualize's ascents (filters, classes, an image pushed to a class).


def filter_grid(shown: np.ndarray, values: np.ndarray, path: str | os.PathLike, *, title: str, cols: int = 8) -> None:
    """``path``: the filter images ``shown [n, H, W, C]`` (in [0, 1]) strongest first, 8 to a row, captioned with
    their final mean activation; ``<path stem>_curves.png``: the 8 strongest filters' ``values [n, steps + 1]``."""
    path = os.fspath(path)
    final = values[:, -1]
    order = np.argsort(-final, kind="stable")
    rows = -(-len(order) // cols)
    cells = np.ones((rows * cols, *shown.shape[1:]), np.float32)
    cells[: len(order)] = shown[order]
    caps = [f"#{i} {final[i]:.2f}" for i in order] + [""] * (rows * cols - len(order))
    image_grid(cells.reshape(rows, cols, *shown.shape[1:]), path, captions=[caps[i * cols:(i + 1) * cols]
                                                                              for i in range(rows)],
               title=f"{title}: filters by final mean activation")
    curves({f"#{i}": values[i] for i in order[:8]}, path.removesuffix(".png") + "_curves.png", xlabel="step",
           ylabel="mean activation", title=f"{title}: the 8 strongest filters", x=np.arange(values.shape[1]))


def class_grid(images: np.ndarray, labels: Sequence[int], curves_: np.ndarray, image_path: str | os.PathLike,
               curve_path: str | os.PathLike, *, title: str) -> None:
    """One row of class images ``images [n, H, W, C]`` captioned ``label: p``, and ``1 - p`` per step (log scale)
    from ``curves_ [n, steps + 1]``."""
    caps = [[f"{lab}: {probability_caption(c[-1])}" for lab, c in zip(labels, curves_, strict=True)]]
    image_grid(np.asarray(images)[None], image_path, captions=caps, title=title)
    curves({str(lab): np.maximum(1.0 - np.asarray(c), 1e-8) for lab, c in zip(labels, curves_, strict=True)},
           curve_path, xlabel="step", ylabel="1 - p(class)", title=title, logy=True, x=np.arange(curves_.shape[1]))


def snapshot_sequence(shown: np.ndarray, steps: Sequence[int], probs: Sequence[float], curve: Sequence[float],
                      path: str | os.PathLike, *, label: str, title: str, cell_inches: float = 1.1) -> None:
    """``path``: snapshots ``shown [k, H, W, C]`` (in [0, 1]) captioned ``step: p(label)``; ``<path stem>_curve.png``:
    ``curve`` (p at every step)."""
    path = os.fspath(path)
    # Four significant digits below 0.99: a start of 0.00016 must not read as 0.00000.
    caps = [[f"{s}: {probability_caption(p) if p >= 0.99 else f'p={p:.4g}'}" for s, p in zip(steps, probs,
                                                                                             strict=True)]]
    image_grid(shown[None], path, captions=caps, cell_inches=cell_inches, title=f"{title}; step: p({label})")
    curves({f"p({label})": curve}, path.removesuffix(".png") + "_curve.png", xlabel="step", ylabel="probability",
           title=title, x=np.arange(len(curve)))
