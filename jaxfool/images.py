"""Image files in, pixel arrays out, as Keras' ``load_img`` / ``img_to_array`` make them.

Keras' ``load_img(path, target_size=(h, w))`` converts to RGB with pillow and, when the size differs, resizes
with ``PIL.Image.NEAREST`` (its default ``interpolation="nearest"``), without keeping the aspect ratio.
:func:`load_thumbnail_crop` is the other recipe of the sources: shrink keeping the aspect ratio, crop the top-left.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxfool.explain.agreement import load_mask

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class Images(NamedTuple):
    """Images loaded from a folder.

    Attributes:
        pixels: ``[n, height, width, 3]`` float32 RGB in ``[0, 255]``.
        paths: the ``n`` files loaded, in the order of ``pixels``.
        skipped: files with an image suffix that could not be read.
    """

    pixels: np.ndarray
    paths: tuple[Path, ...]
    skipped: tuple[Path, ...]


def unique_names(paths: tuple[Path, ...] | list[Path]) -> tuple[str, ...]:
    """Output names for ``paths``, one per path and all different: the stem (``cat``) where no other path has
    it, else the file name with its dot replaced (``cat_png``, ``cat_jpg``), numbered if that still clashes.

    Outputs named after their input file never overwrite each other when a folder holds ``cat.png`` and
    ``cat.jpg`` (or two folders' ``cat.png``).
    """
    stems = [Path(p).stem for p in paths]
    names: list[str] = []
    for p, stem in zip(paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 else Path(p).name.replace(".", "_")
        base, i = name, 1
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return tuple(names)


def load_masks(
    folder: str | os.PathLike, names: tuple[str, ...] | list[str], shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The human masks ``folder/<name>.png`` that exist for ``names``, as boolean ``[H, W]`` arrays of ``shape``.

    Call it before writing anything: a mask that cannot be read is an error. A mask whose size differs from
    ``shape`` is resized (nearest neighbour), as its image was, and the resize is logged as a warning.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: a mask file cannot be read as an image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"mask folder {folder} is not a folder; pass a folder of <image name>.png masks")
    masks = {}
    for name in names:
        path = folder / f"{name}.png"
        if not path.is_file():
            continue
        try:
            mask = load_mask(path)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise ValueError(f"mask {path} cannot be read ({type(e).__name__}); replace it with a PNG") from None
        if mask.shape != tuple(shape):
            log.warning("mask %s is %dx%d (height x width), resized to %dx%d like its image", path, *mask.shape, *shape)
            mask = load_mask(path, tuple(shape))
        masks[name] = mask
    return masks


def load_image(
    path: str | os.PathLike, target_size: tuple[int, int] | None = (224, 224), *, interpolation: str = "nearest"
) -> np.ndarray:
    """One image as ``[height, width, 3]`` float32 RGB in ``[0, 255]``, like ``img_to_array(load_img(...))``.

    Args:
        path: an image file pillow can read.
        target_size: ``(height, width)`` to resize to, or ``None`` to keep the file's size.
        interpolation: ``"nearest"`` (Keras' default), ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``.

    Raises:
        OSError: the file is missing or is not a readable image (``PIL.UnidentifiedImageError`` is one).
    """
    if interpolation not in _RESAMPLE:
        raise ValueError(f"unknown interpolation {interpolation!r}; use one of {', '.join(_RESAMPLE)}")
    with Image.open(path) as img:
        img = img.convert("RGB") if img.mode != "RGB" else img
        if target_size is not None:
            size = (int(target_size[1]), int(target_size[0]))  # pillow sizes are (width, height)
            if img.size != size:
                img = img.resize(size, _RESAMPLE[interpolation])
        return np.asarray(img, dtype=np.float32)


def load_image_folder(
    folder: str | os.PathLike, target_size: tuple[int, int] = (224, 224), *, interpolation: str = "nearest"
) -> Images:
    """All images in ``folder`` (not recursive, sorted by name), resized to ``target_size``.

    Files with an image suffix (``.jpg .jpeg .png .bmp .gif``, any case) that cannot be read are logged as
    warnings and skipped; other files are ignored.

    Returns:
        :class:`Images` with ``pixels [n, height, width, 3]`` float32 in ``[0, 255]``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; pass a folder of .jpg/.png files")
    pixels, paths, skipped = [], [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            pixels.append(load_image(path, target_size, interpolation=interpolation))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            log.warning("skipping unreadable image %s: %s", path, e)
            skipped.append(path)
            continue
        paths.append(path)
    stacked = np.stack(pixels) if pixels else np.zeros((0, *target_size, 3), np.float32)
    return Images(stacked, tuple(paths), tuple(skipped))


def load_thumbnail_crop(
    path: str | os.PathLike, size: tuple[int, int] = (224, 224), *, max_height: int = 500
) -> np.ndarray:
    """One photo as "How CNNs see the world" prepares its Mona Lisa: ``[height, width, 3]`` float32 RGB in
    ``[0, 255]``.

    Pillow's ``thumbnail((width, max_height), LANCZOS)`` (shrinks to fit, keeps the aspect ratio, never
    enlarges), then ``crop((0, 0, width, height))`` from the top-left corner.

    Raises:
        ValueError: the thumbnail is smaller than the crop (pillow would pad it with black).
        OSError: the file is missing or is not a readable image.
    """
    height, width = int(size[0]), int(size[1])
    with Image.open(path) as img:
        img = img.convert("RGB") if img.mode != "RGB" else img.copy()
    img.thumbnail((width, max_height), Image.Resampling.LANCZOS)
    if img.size[0] < width or img.size[1] < height:
        raise ValueError(
            f"{path}: its thumbnail is {img.size[0]}x{img.size[1]} (width x height), smaller than the "
            f"{width}x{height} crop; use a photo at least {width} wide and {height} tall after shrinking"
        )
    return np.asarray(img.crop((0, 0, width, height)), dtype=np.float32)


def sample_photo(name: str) -> Path:
    """The file of scikit-image's sample photo ``name`` (``"astronaut"`` or ``"astronaut.png"``, ``"chelsea"``,
    ``"coffee"``, ``"rocket"``...)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sample photos come from scikit-image: pip install scikit-image, "
                                "or pass your own image file or folder")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and name in (p.name, p.stem)]
    if not found:
        known = sorted({p.stem for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg")})
        raise FileNotFoundError(f"{name!r} is neither an image file nor a scikit-image sample photo "
                                f"({', '.join(known)})")
    return found[0]


#: The photos :func:`sample_photos` loads: a cat, a coffee cup, an astronaut, a rocket.
SAMPLE_PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")


def sample_photos(names: tuple[str, ...] = SAMPLE_PHOTOS, target_size: tuple[int, int] = (224, 224)) -> Images:
    """scikit-image's sample photos ``names`` as :class:`Images` at ``target_size`` (:func:`load_image`)."""
    paths = tuple(sample_photo(name) for name in names)
    return Images(np.stack([load_image(p, target_size) for p in paths]), paths, ())


def load_photos(image_dir: str | os.PathLike = "", target_size: tuple[int, int] = (224, 224)) -> Images:
    """The photos of ``image_dir`` (:func:`load_image_folder`), or scikit-image's sample photos when it is empty.

    Returns:
        :class:`Images`, ``pixels [n >= 1, height, width, 3]`` float32 in ``[0, 255]``.

    Raises:
        FileNotFoundError: ``image_dir`` is not a folder or holds no readable image (one line).
    """
    photos = load_image_folder(image_dir, target_size) if image_dir else sample_photos(target_size=target_size)
    if not len(photos.paths):
        raise FileNotFoundError(f"no readable .jpg/.png images in {image_dir}; pass a folder of photos")
    return photos
