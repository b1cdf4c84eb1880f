"""Command line of the experiments: ``--config configs/NAME.py [--config.field=value ...]``.

Config files define ``get_config()`` returning a dataclass; ``ml_collections.config_flags`` loads it and
applies the overrides, as in the flax examples and big_vision. This module adds what a user needs on top:
a one-line error for a misspelt or ill-typed field that lists the valid fields, and validation of the final
config (each dataclass's ``validate()``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from absl import app
from ml_collections import config_flags

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


def load_config_file(path: str) -> Any:
    """Executes a config file and returns its ``get_config()``."""
    spec = importlib.util.spec_from_file_location("_jaxfool_config", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load config file {path!r}; pass a Python file such as configs/backwork_mnist.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist; see the configs/ folder") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config() function")
    return module.get_config()


def field_names(config: Any) -> list[str]:
    """All dotted field paths of a (nested) dataclass config."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(f"{f.name}.{sub}" for sub in field_names(value))
        else:
            out.append(f.name)
    return out


def check_override_names(config: Any, paths: Sequence[str]) -> None:
    """Raises :class:`ConfigError` for an override path that names no field of ``config``."""
    for path in paths:
        node, parts = config, path.split(".")
        for depth, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
            if part not in names:
                where = ".".join(parts[:depth]) or "the config"
                close = difflib.get_close_matches(part, names, n=1)
                hint = f" (did you mean {'.'.join(parts[:depth] + close)!r}?)" if close else ""
                raise ConfigError(
                    f"unknown config field {path!r}{hint}; valid fields of {where}: {', '.join(names) or 'none'}"
                )
            node = getattr(node, part)


def validate(config: Any, prefix: str = "") -> None:
    """Checks every field's value against its type annotation and runs each dataclass's ``validate()``."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, path = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
        elif not _matches(value, hints.get(f.name, Any)):
            raise ConfigError(
                f"config field {path}={value!r} has type {type(value).__name__}, expected {_type_name(hints[f.name])}"
            )
    if hasattr(config, "validate"):
        try:
            config.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _override_paths(argv: Sequence[str]) -> list[str]:
    paths = []
    for arg in argv:
        if arg.startswith("--config."):
            paths.append(arg[len("--config.") :].split("=", 1)[0])
    return paths


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def main(run: Callable[[Any], Any], argv: Sequence[str] | None = None) -> None:
    """Parses ``--config FILE --config.a.b=value ...`` and calls ``run(config)``.

    Errors in the config (missing file, unknown field, wrong type, invalid value) end the program with one
    line on stderr and exit status 2, before anything is written.
    """
    argv = list(sys.argv if argv is None else argv)
    try:
        path = _config_path(argv[1:])
        if path is None:
            raise ConfigError("missing --config; e.g. --config configs/backwork_mnist.py")
        check_override_names(load_config_file(path), _override_paths(argv[1:]))
    except ConfigError as e:
        sys.exit(f"error: {e}")

    flag = config_flags.DEFINE_config_file("config", default=None, help_string="Config file (get_config()).")

    def _main(_):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
        config = flag.value
        try:
            validate(config)
        except ConfigError as e:
            sys.exit(f"error: {e}")
        run(config)

    app.run(_main, argv=argv)
