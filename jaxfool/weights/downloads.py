"""Downloads of the official Keras files with pooch: MD5-checked, written to a temporary file and moved into
place only when complete, with a progress bar when asked; offline, one line saying where to put the file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jaxfool.weights import architectures
from jaxfool.weights.common import WeightsError, default_cache_dir, keras_cache_dir
from jaxfool.weights.keras_h5 import import_keras_h5
from jaxfool.weights.store import read_metadata, save_checkpoint

log = logging.getLogger(__name__)


def _downloader(progress: bool):
    """pooch's HTTP downloader (tests swap in a local one)."""
    import pooch

    return pooch.HTTPDownloader(progressbar=progress, timeout=30)


def download(
    url: str, target: Path, md5: str, *, progress: bool = False, then: str = "run the same command again"
) -> Path:
    """Downloads ``url`` to ``target`` with pooch (MD5-checked, atomic); returns ``target``.

    Raises:
        WeightsError: no network (saying where to put the file by hand) or a download with the wrong MD5.
    """
    import pooch
    import requests

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    pooch_log = pooch.get_logger()
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)  # its own INFO line repeats ours, and would precede an offline error
    try:
        pooch.retrieve(url, known_hash=f"md5:{md5}", fname=target.name, path=target.parent,
                       downloader=_downloader(progress), progressbar=progress)
    except requests.exceptions.RequestException as e:  # no network, timeouts, HTTP errors; not a full disk
        raise WeightsError(
            f"cannot download {url} ({type(e).__name__}: no network?); on a machine with network download it and "
            f"put it at {target} (MD5 {md5}), then {then}"
        ) from None
    except ValueError:  # pooch: hash mismatch; it has already deleted the temporary file
        raise WeightsError(f"downloaded {url} has the wrong MD5 (expected {md5}); try again") from None
    finally:
        pooch_log.setLevel(level)
    return target


def keras_files(model: str, dest: Path, include_top: bool) -> list[Path]:
    """Where the official Keras file of ``model`` may already be: ``dest``, then Keras' cache."""
    fname = architectures.get(model).keras_files[include_top][0]
    return [dest / fname, keras_cache_dir() / fname]


def fetch(
    model: str = "vgg16",
    *,
    include_top: bool = True,
    dest: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Makes sure the converted ImageNet checkpoint of ``model`` exists in ``dest`` (default: the cache).

    Uses, in order: an existing checkpoint; the official ``.h5`` already in ``dest`` or Keras' cache
    (``~/.keras/models``); a download from Keras' URL, checked against the published MD5. Offline, fails at
    once with a message saying where to put the file by hand.

    Returns:
        The checkpoint folder, ``<dest>/<model>`` (or ``<model>_notop``).
    """
    arch = architectures.get(model)
    dest = Path(dest) if dest is not None else default_cache_dir()
    checkpoint = dest / (model if include_top else f"{model}_notop")
    if checkpoint.exists() and not overwrite:
        read_metadata(checkpoint)
        return checkpoint
    fname, md5 = arch.keras_files[include_top]
    local = next((p for p in keras_files(model, dest, include_top) if p.is_file()), None)
    if local is None:
        command = f"python -m jaxfool.weights fetch {model}{'' if include_top else ' --no-top'}"
        local = download(arch.keras_url + fname, dest / fname, md5, progress=progress, then=f"run `{command}` again")
    log.info("converting %s into %s", local, checkpoint)
    params, info = import_keras_h5(local, model=model)
    return save_checkpoint(params, checkpoint, metadata=info, overwrite=overwrite)


def fetch_vgg16(*, include_top: bool = True, dest: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """:func:`fetch` of ``'vgg16'``."""
    return fetch("vgg16", include_top=include_top, dest=dest, overwrite=overwrite)
