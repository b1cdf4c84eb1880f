"""Pictures of heatmaps: JET overlays on the grayscale image, side-by-side panels, GIFs across layers.

The sources colour the heatmap with the JET colormap and add it to the image loaded in grayscale, so that the
colours of the photograph do not compete with the heatmap's; :func:`overlay` does the same. Everything here
works on NumPy arrays on the host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw


def normalize(heatmap: np.ndarray) -> np.ndarray:
    """Min-max scales a heatmap to ``[0, 1]`` (all zeros if it is constant)."""
    h = np.asarray(heatmap, np.float64)
    lo, hi = h.min(), h.max()
    return ((h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)).astype(np.float32)


def jet(heatmap: np.ndarray) -> np.ndarray:
    """``[H, W]`` heatmap -> ``[H, W, 3]`` uint8 RGB in the JET colormap (after :func:`normalize`)."""
    rgb = matplotlib.colormaps["jet"](normalize(heatmap))[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


def grayscale(image: np.ndarray, bounds: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``[H, W, C]`` or ``[H, W]`` image in ``bounds`` -> ``[H, W]`` luminance in ``[0, 1]`` (ITU-R 601-2)."""
    img = (np.asarray(image, np.float32) - bounds[0]) / (bounds[1] - bounds[0])
    if img.ndim == 3 and img.shape[-1] == 3:
        img = img @ np.array([0.299, 0.587, 0.114], np.float32)
    elif img.ndim == 3:
        img = img.mean(axis=-1)
    return np.clip(img, 0.0, 1.0)


def _resize(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h = np.asarray(heatmap, np.float32)
    if h.shape == shape:
        return h
    return np.asarray(Image.fromarray(h, mode="F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    alpha: float = 0.5,
    scale: int = 1,
) -> np.ndarray:
    """The JET-coloured heatmap blended over the grayscale image.

    Args:
        image: ``[H, W, C]`` (or ``[H, W]``) with pixels in ``bounds``.
        heatmap: ``[h, w]``, bilinearly resized to ``[H, W]`` if needed.
        bounds: the image's pixel range.
        alpha: weight of the heatmap (``0.5`` as in the sources).
        scale: integer nearest-neighbour magnification (MNIST's 28 pixels are small on screen).

    Returns:
        ``[H * scale, W * scale, 3]`` uint8 RGB.
    """
    gray = grayscale(image, bounds)
    colour = jet(_resize(heatmap, gray.shape)).astype(np.float32) / 255
    out = alpha * colour + (1 - alpha) * gray[..., None]
    return _magnify(np.round(out * 255).astype(np.uint8), scale)


def to_rgb(image: np.ndarray, *, bounds: tuple[float, float] = (0.0, 1.0), scale: int = 1) -> np.ndarray:
    """An image ``[H, W, C]`` in ``bounds`` as ``[H * scale, W * scale, 3]`` uint8 RGB (gray if one channel)."""
    img = np.clip((np.asarray(image, np.float32) - bounds[0]) / (bounds[1] - bounds[0]), 0, 1)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] != 3:
        img = np.repeat(img.mean(axis=-1, keepdims=True), 3, axis=-1)
    return _magnify(np.round(img * 255).astype(np.uint8), scale)


def _magnify(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb if scale == 1 else rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def save_panels(
    panels: Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    columns: int | None = None,
    title: str | None = None,
    panel_inches: float = 2.2,
) -> str:
    """Writes images side by side, each under its caption, to a PNG.

    Args:
        panels: ``(caption, image)`` pairs; an image is ``[H, W, 3]`` uint8 RGB (e.g. from :func:`overlay`)
            or a ``[H, W]`` float heatmap (drawn in JET).
        path: output PNG.
        columns: panels per row; default all in one row.
        title: figure title.
        panel_inches: size of one panel.

    Returns:
        ``path`` as a string.
    """
    if not panels:
        raise ValueError("save_panels needs at least one (caption, image) pair")
    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    # A bare Figure (no pyplot) draws off-screen without touching the user's matplotlib backend.
    fig = Figure(figsize=(panel_inches * columns, panel_inches * rows + 0.4 * bool(title)))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (caption, img) in zip(axes.ravel(), panels, strict=False):
        img = np.asarray(img)
        ax.imshow(jet(img) if img.ndim == 2 else img, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return os.fspath(path)


def save_layers_gif(
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    scale: int = 1,
    duration_ms: int = 600,
) -> str:
    """Writes a GIF with one frame per layer: the layer's heatmap over the image, captioned with its name.

    Args:
        image: ``[H, W, C]`` in ``bounds``.
        maps: ``{layer: heatmap [h, w]}`` in frame order, e.g. from :func:`jaxfool.explain.cams`.
        path: output GIF.
        bounds: the image's pixel range.
        scale: integer magnification.
        duration_ms: display time of each frame.

    Returns:
        ``path`` as a string.
    """
    if not maps:
        raise ValueError("save_layers_gif needs at least one layer's heatmap")
    frames = []
    for name, heatmap in maps.items():
        frame = Image.fromarray(overlay(image, np.asarray(heatmap), bounds=bounds, scale=scale))
        draw = ImageDraw.Draw(frame)
        draw.rectangle((0, 0, frame.width, 12), fill=(0, 0, 0))
        draw.text((2, 0), name, fill=(255, 255, 255))
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return os.fspath(path)
