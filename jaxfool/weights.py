"""Pretrained VGG16 weights: import the official Keras file or a torchvision state dict, convert it once into an
orbax checkpoint, and restore that checkpoint quickly in experiments.

Sources:

* the official Keras file ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (or ``..._notop.h5``), legacy HDF5
  layout: root attribute ``layer_names``; one group per layer whose attribute ``weight_names`` lists its
  datasets, kernel then bias. Conv kernels are HWIO, dense kernels ``(in, out)``, and ``fc1`` reads the NHWC
  flatten of ``block5_pool``: exactly :class:`~jaxfool.models.vgg16.VGG16`'s parameters. Its MD5 is checked
  against the published one, as Keras does;
* torchvision's ``vgg16`` state dict (``features.N.weight`` OIHW, ``classifier.{0,3,6}``), read without
  executing pickled code (``torch.load(..., weights_only=True)``) or from safetensors. torchvision flattens
  NCHW, so ``fc1``'s rows are permuted to NHWC order. These weights expect torchvision's preprocessing:
  :func:`load_vgg16` builds the network with ``preprocess="torch"`` for them.

Command line::

    python -m jaxfool.weights fetch vgg16 [--no-top] [--dest DIR]   # download (hash-checked) and convert
    python -m jaxfool.weights convert FILE [--dest DIR] [--no-hash-check] [--overwrite]

A checkpoint is a :mod:`jaxfool.checkpoints` folder: ``params/`` (orbax) and ``meta/`` (JSON: source, MD5,
``include_top``, preprocessing). Files are validated completely before anything is written, and the folder
is written under a temporary name and renamed into place, so a failed import or an interrupted write leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxfool import checkpoints
from jaxfool.models.network import Network, Params
from jaxfool.models.vgg16 import BLOCKS, CONV_LAYERS, IMAGE_SIZE, NUM_CLASSES, vgg16

log = logging.getLogger(__name__)

KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
# include_top -> (file name, MD5), as keras.applications.vgg16 lists them.
KERAS_FILES = {
    True: ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
    False: ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
}
METADATA_FILE = "meta.json"  # written by jaxfool.checkpoints before its format 2 (recognised to refuse it)
_FORMAT = 1
# torchvision's vgg16: the Conv2d positions in `features` (ReLUs and max-pools in between) and the Linear
# positions in `classifier` (ReLU and Dropout in between).
_TORCH_FEATURES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_TORCH_CLASSIFIER = (0, 3, 6)
_TOP = ("fc1", "fc2", "predictions")


class WeightsError(ValueError):
    """A weights file or checkpoint that cannot be used; the message names the problem and the fix."""


def param_shapes(include_top: bool = True) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{layer: {'kernel': shape, 'bias': shape}}`` of VGG16's parameters (conv HWIO, dense ``(in, out)``)."""
    shapes = {}
    channels = 3
    for name, features in zip(CONV_LAYERS, [f for n, f in BLOCKS for _ in range(n)], strict=True):
        shapes[name] = {"kernel": (3, 3, channels, features), "bias": (features,)}
        channels = features
    if include_top:
        size = IMAGE_SIZE // 2 ** len(BLOCKS)
        for name, (n_in, n_out) in zip(
            _TOP, ((size * size * channels, 4096), (4096, 4096), (4096, NUM_CLASSES)), strict=True
        ):
            shapes[name] = {"kernel": (n_in, n_out), "bias": (n_out,)}
    return shapes


def default_cache_dir() -> Path:
    """Where converted checkpoints live: ``$JAXFOOL_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/jaxfool/weights``."""
    if os.environ.get("JAXFOOL_WEIGHTS_DIR"):
        return Path(os.environ["JAXFOOL_WEIGHTS_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "jaxfool" / "weights"


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest (MD5 by default) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_params(params: Mapping[str, Mapping[str, Any]], include_top: bool, where: str) -> None:
    expected = param_shapes(include_top)
    missing = [name for name in expected if name not in params]
    extra = [name for name in params if name not in expected]
    if missing or extra:
        raise WeightsError(
            f"{where}: layers do not match VGG16 (include_top={include_top}): "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for name, want in expected.items():
        for kind in ("kernel", "bias"):
            got = tuple(np.shape(params[name].get(kind)))
            if got != want[kind]:
                raise WeightsError(f"{where}: {name}/{kind} has shape {got}, VGG16 needs {want[kind]}")


# ---------------------------------------------------------------------------------------------------------
# Keras HDF5


def _decode(names: Any) -> list[str]:
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in np.atleast_1d(names)]


def _h5_names(group: Any, attr: str) -> list[str]:
    # Keras splits long name lists over attributes attr0, attr1, ... (save_attributes_to_hdf5_group).
    if attr in group.attrs:
        return _decode(group.attrs[attr])
    names, chunk = [], 0
    while f"{attr}{chunk}" in group.attrs:
        names += _decode(group.attrs[f"{attr}{chunk}"])
        chunk += 1
    return names


def import_keras_h5(path: str | os.PathLike, *, check_hash: bool = True) -> tuple[Params, dict[str, Any]]:
    """Reads VGG16 parameters from a Keras legacy HDF5 weights file.

    Args:
        path: the official ``vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5``, or any file in its layout
            (Keras' legacy ``save_weights_to_hdf5_group``, or a full model saved to ``.h5``).
        check_hash: require the MD5 of the official file; pass ``False`` for a file you wrote yourself.

    Returns:
        ``(params, info)``: float32 numpy params keyed as :class:`~jaxfool.models.vgg16.VGG16`'s, and
        ``{'source', 'file', 'md5', 'include_top', 'preprocessing'}``.

    Raises:
        WeightsError: missing, truncated or corrupt file, wrong MD5, wrong layout or wrong shapes.
    """
    import h5py  # runtime dependency, imported here so the rest of jaxfool does not need it

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}; fetch it with `python -m jaxfool.weights fetch vgg16`")
    md5 = file_digest(path)
    official = {digest: top for top, (_, digest) in KERAS_FILES.items()}
    if check_hash and md5 not in official:
        raise WeightsError(
            f"{path}: MD5 {md5} is not the official Keras VGG16 file's ({KERAS_FILES[True][1]} with top, "
            f"{KERAS_FILES[False][1]} without): the file is truncated or corrupt, delete it and fetch it again "
            "(or pass check_hash=False / --no-hash-check for a file you wrote yourself)"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path} is not a readable HDF5 file ({e}); it is truncated or corrupt: fetch it again")
    with f:
        root = f
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]  # a whole model saved with model.save('x.h5')
        if "layer_names" not in root.attrs and "layer_names0" not in root.attrs:
            raise WeightsError(
                f"{path} is not a Keras legacy HDF5 weights file (no root attribute 'layer_names'); Keras 3 "
                "'.weights.h5' files use another layout: save with the legacy format or use the official file"
            )
        params = {}
        try:
            for name in _h5_names(root, "layer_names"):
                if name not in root:
                    raise WeightsError(f"{path}: layer {name!r} is listed in 'layer_names' but has no group")
                group = root[name]
                weight_names = _h5_names(group, "weight_names")
                if not weight_names:
                    continue  # input, pooling, flatten
                if len(weight_names) != 2:
                    raise WeightsError(
                        f"{path}: layer {name!r} has {len(weight_names)} weights {weight_names}, "
                        "VGG16 layers have 2 (kernel, bias)"
                    )
                params[name] = {
                    kind: np.asarray(group[weight], np.float32)
                    for kind, weight in zip(("kernel", "bias"), weight_names, strict=True)
                }
        except KeyError as e:
            raise WeightsError(f"{path}: a listed weight is missing ({e}); the file is corrupt: fetch it again")
    include_top = "fc1" in params
    _check_params(params, include_top, str(path))
    if check_hash and official[md5] != include_top:
        raise WeightsError(f"{path}: its MD5 is the official {'top' if official[md5] else 'notop'} file's but its "
                           "layers are not; the file is corrupt: fetch it again")
    info = {"source": "keras_h5", "file": path.name, "md5": md5, "include_top": include_top,
            "preprocessing": "caffe"}
    return params, info


# ---------------------------------------------------------------------------------------------------------
# torchvision


def _read_state_dict(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise WeightsError(f"reading {path.name} needs safetensors: pip install safetensors") from None
        try:
            return dict(load_file(str(path)))
        except Exception as e:  # noqa: BLE001 -- safetensors raises its own error types for bad headers
            raise WeightsError(f"{path} is not a readable safetensors file ({e}); it is truncated or corrupt")
    try:
        import torch
    except ImportError:
        raise WeightsError(f"reading {path.name} needs PyTorch (or convert it to .safetensors)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- truncated zip, unpickler refusing a non-tensor object, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path} is not a loadable PyTorch state dict ({first}); it is truncated or corrupt")
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {k: v.detach().to(torch.float32).numpy() for k, v in state.items() if hasattr(v, "detach")}


def _fc1_rows(kernel: np.ndarray, *, to_torch: bool) -> np.ndarray:
    """Permutes ``fc1``'s input rows between VGG16's NHWC flatten of block5_pool and torchvision's NCHW one."""
    size, channels = IMAGE_SIZE // 2 ** len(BLOCKS), BLOCKS[-1][1]
    if kernel.shape[0] != size * size * channels:
        raise WeightsError(f"fc1 kernel has {kernel.shape[0]} input rows, VGG16 needs {size * size * channels}")
    if to_torch:
        return kernel.reshape(size, size, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
    return kernel.reshape(channels, size, size, -1).transpose(1, 2, 0, 3).reshape(kernel.shape)


def import_torchvision(path: str | os.PathLike) -> tuple[Params, dict[str, Any]]:
    """Reads VGG16 parameters from torchvision's ``vgg16`` state dict (``.pth`` or ``.safetensors``).

    A file named as torch.hub names its downloads (``vgg16-397923af.pth``) must match that SHA-256 prefix.

    Returns:
        ``(params, info)`` as :func:`import_keras_h5`; ``info['preprocessing']`` is ``'torch'``: these weights
        expect RGB in ``[0, 1]`` normalised by torchvision's mean and std, not caffe preprocessing.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    prefix = re.search(r"-([0-9a-f]{8,})\.", path.name)
    sha = None
    if prefix:
        sha = file_digest(path, "sha256")
        if not sha.startswith(prefix.group(1)):
            raise WeightsError(
                f"{path}: SHA-256 {sha[:12]}... does not start with the {prefix.group(1)} in its name; "
                "the file is truncated or corrupt: download it again"
            )
    state = _read_state_dict(path)
    if any("running_mean" in k for k in state):
        raise WeightsError(f"{path} is a batch-norm VGG (vgg16_bn); only plain vgg16 is supported")
    include_top = any(k.startswith("classifier.") for k in state)
    expected = [f"features.{i}.{p}" for i in _TORCH_FEATURES for p in ("weight", "bias")]
    if include_top:
        expected += [f"classifier.{i}.{p}" for i in _TORCH_CLASSIFIER for p in ("weight", "bias")]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise WeightsError(
            f"{path}: not torchvision's vgg16 layout: missing {missing[:4] or 'none'}, unexpected {extra[:4] or 'none'}"
        )
    params: dict[str, dict[str, np.ndarray]] = {}
    for name, i in zip(CONV_LAYERS, _TORCH_FEATURES, strict=True):
        w = state[f"features.{i}.weight"]
        if w.ndim != 4:
            raise WeightsError(f"{path}: features.{i}.weight has shape {w.shape}, expected a 4-D OIHW kernel")
        params[name] = {"kernel": w.transpose(2, 3, 1, 0), "bias": state[f"features.{i}.bias"]}
    if include_top:
        for name, i in zip(_TOP, _TORCH_CLASSIFIER, strict=True):
            w = state[f"classifier.{i}.weight"]
            if w.ndim != 2:
                raise WeightsError(f"{path}: classifier.{i}.weight has shape {w.shape}, expected (out, in)")
            params[name] = {"kernel": w.T, "bias": state[f"classifier.{i}.bias"]}
        params["fc1"]["kernel"] = _fc1_rows(params["fc1"]["kernel"], to_torch=False)
    _check_params(params, include_top, str(path))
    params = {n: {k: np.ascontiguousarray(v, np.float32) for k, v in p.items()} for n, p in params.items()}
    info = {"source": "torchvision", "file": path.name, "sha256": sha, "include_top": include_top,
            "preprocessing": "torch"}
    return params, info


def to_torchvision(params: Params) -> dict[str, np.ndarray]:
    """The inverse of :func:`import_torchvision`: VGG16 params as torchvision's ``vgg16`` state dict (numpy
    arrays; ``torch.from_numpy`` each to load them), so a PyTorch peer can run with the same weights."""
    include_top = "fc1" in params
    _check_params(params, include_top, "params")
    state = {}
    for name, i in zip(CONV_LAYERS, _TORCH_FEATURES, strict=True):
        state[f"features.{i}.weight"] = np.ascontiguousarray(np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1))
        state[f"features.{i}.bias"] = np.asarray(params[name]["bias"])
    if include_top:
        for name, i in zip(_TOP, _TORCH_CLASSIFIER, strict=True):
            kernel = np.asarray(params[name]["kernel"])
            if name == "fc1":
                kernel = _fc1_rows(kernel, to_torch=True)
            state[f"classifier.{i}.weight"] = np.ascontiguousarray(kernel.T)
            state[f"classifier.{i}.bias"] = np.asarray(params[name]["bias"])
    return state


def import_weights(path: str | os.PathLike, *, check_hash: bool = True) -> tuple[Params, dict[str, Any]]:
    """Reads a Keras ``.h5`` or a torchvision ``.pth`` / ``.pt`` / ``.safetensors`` file (see the importers)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".h5", ".hdf5", ".keras_h5"):
        return import_keras_h5(path, check_hash=check_hash)
    if suffix in (".pth", ".pt", ".bin", ".safetensors"):
        return import_torchvision(path)
    raise WeightsError(f"unknown weights file type {suffix!r} ({path}); use a Keras .h5 or a torchvision .pth file")


# ---------------------------------------------------------------------------------------------------------
# Orbax checkpoints


def save_checkpoint(
    params: Params, path: str | os.PathLike, *, metadata: Mapping[str, Any], overwrite: bool = False
) -> Path:
    """Writes ``params`` and ``metadata`` as a checkpoint folder at ``path`` (:mod:`jaxfool.checkpoints`).

    The folder is written under a temporary name and renamed into place when complete; on any error nothing
    is left behind and an existing checkpoint being overwritten is kept.
    """
    path = Path(path).absolute()
    include_top = bool(metadata.get("include_top", "fc1" in params))
    _check_params(params, include_top, "checkpoint to save")
    meta = {"format": _FORMAT, "model": "vgg16", **metadata, "include_top": include_top}
    if not path.exists():
        return checkpoints.save(path, params, meta)
    if not overwrite:
        raise WeightsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    staged = checkpoints.save(path.with_name(f".{path.name}.new-{os.getpid()}"), params, meta)
    old = path.rename(path.with_name(f".{path.name}.old-{os.getpid()}"))
    staged.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint folder (source, MD5, ``include_top``, preprocessing)."""
    path = Path(path)
    if not checkpoints.exists(path) and not (path / METADATA_FILE).is_file():
        raise WeightsError(
            f"{path} is not a jaxfool weights checkpoint (no meta/ and params/); "
            "make one with `python -m jaxfool.weights convert FILE`"
        )
    try:
        return checkpoints.read_metadata(path)
    except checkpoints.CheckpointError as e:  # damaged or older format: refused, convert again
        raise WeightsError(f"{e.problem}; convert it again with `python -m jaxfool.weights convert FILE`") from None


def restore_checkpoint(path: str | os.PathLike) -> tuple[Params, dict[str, Any]]:
    """Reads a checkpoint written by :func:`save_checkpoint`: ``(params, metadata)``."""
    path = Path(path).absolute()
    meta = read_metadata(path)
    like = {
        name: {kind: jax.ShapeDtypeStruct(shape, np.float32) for kind, shape in shapes.items()}
        for name, shapes in param_shapes(bool(meta.get("include_top"))).items()
    }
    try:
        params, _ = checkpoints.restore(path, like)
    except ValueError as e:
        raise WeightsError(str(e)) from None
    except Exception as e:  # noqa: BLE001 -- orbax/tensorstore raise many types for damaged checkpoints
        raise WeightsError(f"{path}: the orbax checkpoint cannot be read ({type(e).__name__}); convert it again")
    return params, meta


def convert(
    src: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    *,
    check_hash: bool = True,
    overwrite: bool = False,
) -> Path:
    """Imports a weights file (:func:`import_weights`) and saves it as a checkpoint; returns the folder.

    ``dest`` defaults to ``<cache>/vgg16`` (Keras, with top), ``vgg16_notop`` or ``vgg16_torchvision[_notop]``.
    """
    params, info = import_weights(src, check_hash=check_hash)
    if dest is None:
        dest = default_cache_dir() / _checkpoint_name(info)
    return save_checkpoint(params, dest, metadata=info, overwrite=overwrite)


def _checkpoint_name(info: Mapping[str, Any]) -> str:
    source = "" if info["source"] == "keras_h5" else "_torchvision"
    return f"vgg16{source}{'' if info['include_top'] else '_notop'}"


# ---------------------------------------------------------------------------------------------------------
# Download


def _download(url: str, target: Path, md5: str) -> None:
    """Downloads ``url`` to ``target`` via a ``.partial`` file, checking its MD5 before the final rename."""
    from tqdm.auto import tqdm

    partial = target.with_name(target.name + ".partial")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise WeightsError(f"downloaded {url} has MD5 {digest.hexdigest()}, expected {md5}; try again")
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)


def fetch_vgg16(
    *, include_top: bool = True, dest: str | os.PathLike | None = None, overwrite: bool = False
) -> Path:
    """Makes sure the converted ImageNet checkpoint exists in ``dest`` (default: the cache) and returns it.

    Uses, in order: an existing checkpoint; the official ``.h5`` already in ``dest`` or Keras' cache
    (``~/.keras/models``); a download from Keras' URL, checked against the published MD5. Offline, fails at
    once with a message saying where to put the file by hand.
    """
    dest = Path(dest) if dest is not None else default_cache_dir()
    checkpoint = dest / ("vgg16" if include_top else "vgg16_notop")
    if checkpoint.exists() and not overwrite:
        read_metadata(checkpoint)
        return checkpoint
    fname, md5 = KERAS_FILES[include_top]
    local = next((p for p in _keras_files(dest, include_top) if p.is_file()), None)
    if local is None:
        url = KERAS_URL + fname
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _download(url, dest / fname, md5)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise WeightsError(
                f"cannot download {url} ({reason}); on a machine with network download it and put it at "
                f"{dest / fname} (MD5 {md5}), then run `python -m jaxfool.weights fetch vgg16"
                f"{'' if include_top else ' --no-top'}` again"
            ) from None
        local = dest / fname
    log.info("converting %s into %s", local, checkpoint)
    params, info = import_keras_h5(local)
    return save_checkpoint(params, checkpoint, metadata=info, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------------------
# Loading for experiments


def random_params(include_top: bool, *, key: jax.Array) -> Params:
    """Random VGG16 parameters distributed as ``keras.applications.VGG16(weights=None)``'s: Glorot-uniform
    kernels, zero biases.

    Drawn with numpy from a seed taken from ``key`` (deterministic in ``key``): generating 138M numbers with
    threefry under ``jit`` costs seconds of XLA:CPU compilation for a one-off initialisation.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    params = {}
    for name, shapes in param_shapes(include_top).items():
        kernel = shapes["kernel"]
        receptive = int(np.prod(kernel[:-2]))
        limit = np.float32(np.sqrt(6.0 / (receptive * (kernel[-2] + kernel[-1]))))
        uniform = rng.random(kernel, dtype=np.float32)  # float32 directly: half the time of float64 + cast
        uniform -= np.float32(0.5)
        uniform *= 2 * limit
        params[name] = {
            "kernel": uniform,
            "bias": np.zeros(shapes["bias"], np.float32),
        }
    return params


def _imagenet_checkpoints(cache: Path, include_top: bool) -> list[Path]:
    # A checkpoint with the classifier also serves include_top=False (the classifier is dropped on loading).
    return [cache / "vgg16"] if include_top else [cache / "vgg16_notop", cache / "vgg16"]


def _keras_files(dest: Path, include_top: bool) -> list[Path]:
    fname = KERAS_FILES[include_top][0]
    return [dest / fname, Path("~/.keras/models").expanduser() / fname]


def local_imagenet_weights(*, include_top: bool = True, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The official ImageNet weights already on disk, where ``weights='imagenet'`` looks before downloading.

    That is a converted checkpoint in ``cache_dir`` (default :func:`default_cache_dir`), else the official
    ``.h5`` in ``cache_dir`` or in Keras' cache ``~/.keras/models``. ``None`` when there is none.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    candidates = [*_imagenet_checkpoints(cache, include_top), *_keras_files(cache, include_top)]
    return next((p for p in candidates if p.exists()), None)


def resolve_weights(
    weights: str | os.PathLike, *, include_top: bool = True, cache_dir: str | os.PathLike | None = None
) -> str | os.PathLike:
    """``'auto'``: ``'imagenet'`` when :func:`local_imagenet_weights` finds them (never downloads), else
    ``'random'`` with a logged warning. Any other ``weights`` is returned unchanged."""
    if not (isinstance(weights, str) and weights == "auto"):
        return weights
    if local_imagenet_weights(include_top=include_top, cache_dir=cache_dir) is not None:
        return "imagenet"
    log.warning(
        "weights='auto': no official VGG16 ImageNet weights on disk (%s), so RANDOM weights are used and the "
        "pictures are MEANINGLESS; get them with `python -m jaxfool.weights fetch vgg16%s`",
        Path(cache_dir) if cache_dir is not None else default_cache_dir(), "" if include_top else " --no-top",
    )
    return "random"


def _load(
    weights: str | os.PathLike, include_top: bool, key: jax.Array | None, cache_dir: str | os.PathLike | None,
    check_hash: bool,
) -> tuple[Params, dict[str, Any]]:
    weights = resolve_weights(weights, include_top=include_top, cache_dir=cache_dir)
    if isinstance(weights, str) and weights == "random":
        if key is None:
            raise ValueError("weights='random' needs a PRNG key: vgg16_params('random', key=jax.random.key(0))")
        params = random_params(include_top, key=key)
        return params, {"source": "random", "include_top": include_top, "preprocessing": "caffe"}
    if isinstance(weights, str) and weights == "imagenet":
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        found = next((p for p in _imagenet_checkpoints(cache, include_top) if p.exists()), None)
        if found is None:
            found = fetch_vgg16(include_top=include_top, dest=cache)
        params, meta = restore_checkpoint(found)
    else:
        path = Path(weights)
        if path.is_dir():
            params, meta = restore_checkpoint(path)
        elif path.is_file():
            params, meta = import_weights(path, check_hash=check_hash)
        else:
            raise WeightsError(f"weights={str(weights)!r} is neither 'imagenet', 'random', 'auto' nor an existing file/folder")
    if include_top and not meta.get("include_top"):
        raise WeightsError(f"weights {weights} have no classifier (notop); use include_top=False")
    if not include_top:
        params = {name: p for name, p in params.items() if name not in _TOP}
        meta = {**meta, "include_top": False}
    return jax.device_put(params), meta


def vgg16_params(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
) -> Params:
    """VGG16 parameters for :func:`~jaxfool.models.vgg16.vgg16`.

    Args:
        weights: ``'imagenet'`` (the converted Keras checkpoint in ``cache_dir``, converted or fetched on first
            use), ``'random'`` (Keras' initialisation from ``key``), ``'auto'`` (``'imagenet'`` if already on
            disk, else ``'random'``: :func:`resolve_weights`), a checkpoint folder, or a weights file
            (``.h5``, ``.pth``, ``.safetensors``; imported on every call: convert it once instead).
        include_top: with the classifier; ``False`` drops it from weights that have it.
        key: PRNG key, required for ``'random'``.
        cache_dir: where ``'imagenet'`` checkpoints live (default :func:`default_cache_dir`).
        check_hash: check the official MD5 of a ``.h5`` file passed as ``weights``.

    Returns:
        The parameters as device arrays. Torchvision weights need ``vgg16(preprocess='torch')``:
        :func:`load_vgg16` picks the right network for you.
    """
    return _load(weights, include_top, key, cache_dir, check_hash)[0]


def load_vgg16(
    weights: str | os.PathLike = "imagenet",
    *,
    include_top: bool = True,
    key: jax.Array | None = None,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
) -> tuple[Network, Params]:
    """``(network, params)``: :func:`vgg16_params` plus the network with the preprocessing those weights expect
    (caffe for Keras and random weights, torchvision's for torchvision weights); its input is raw RGB in
    ``[0, 255]``."""
    params, meta = _load(weights, include_top, key, cache_dir, check_hash)
    return vgg16(include_top=include_top, preprocess=meta.get("preprocessing", "caffe")), params


# ---------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxfool.weights", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the official Keras weights (MD5-checked) and convert them")
    fetch.add_argument("model", choices=["vgg16"])
    fetch.add_argument("--no-top", action="store_true", help="the file without the classifier")
    fetch.add_argument("--dest", type=Path, default=None, help=f"folder (default {default_cache_dir()})")
    fetch.add_argument("--overwrite", action="store_true", help="convert again even if the checkpoint exists")
    conv = sub.add_parser("convert", help="convert a Keras .h5 or torchvision .pth/.safetensors file")
    conv.add_argument("src", type=Path)
    conv.add_argument("--dest", type=Path, default=None, help="checkpoint folder (default: in the cache)")
    conv.add_argument("--no-hash-check", action="store_true", help="accept a .h5 that is not the official file")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "fetch":
            out = fetch_vgg16(include_top=not args.no_top, dest=args.dest, overwrite=args.overwrite)
        else:
            out = convert(args.src, args.dest, check_hash=not args.no_hash_check, overwrite=args.overwrite)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
