"""``python -m jaxfool.weights fetch vgg16|resnet50|resnet101`` and ``python -m jaxfool.weights convert FILE``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from jaxfool.weights.architectures import ARCHITECTURES
from jaxfool.weights.common import WeightsError, default_cache_dir
from jaxfool.weights.downloads import fetch
from jaxfool.weights.store import convert


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (errors are one line on stderr, status 1)."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxfool.weights",
        description="Official Keras and torchvision ImageNet weights, converted once into orbax checkpoints.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download the official Keras weights (MD5-checked) and convert them")
    get.add_argument("model", choices=sorted(ARCHITECTURES))
    get.add_argument("--no-top", action="store_true", help="the file without the classifier")
    get.add_argument("--dest", type=Path, default=None, help=f"folder (default {default_cache_dir()})")
    get.add_argument("--overwrite", action="store_true", help="convert again even if the checkpoint exists")
    conv = sub.add_parser("convert", help="convert a Keras .h5 or torchvision .pth/.safetensors file")
    conv.add_argument("src", type=Path)
    conv.add_argument("--model", choices=sorted(ARCHITECTURES), default=None, help="default: from the file")
    conv.add_argument("--dest", type=Path, default=None, help="checkpoint folder (default: in the cache)")
    conv.add_argument("--no-hash-check", action="store_true", help="accept a .h5 that is not an official file")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "fetch":
            out = fetch(args.model, include_top=not args.no_top, dest=args.dest, overwrite=args.overwrite,
                        progress=True)
        else:
            out = convert(args.src, args.dest, check_hash=not args.no_hash_check, overwrite=args.overwrite,
                          model=args.model)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0
