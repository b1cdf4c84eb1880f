"""Command line of the experiments: ``--config configs/NAME.py [--config.field=value ...]``.

The flag syntax is that of ``ml_collections.config_flags`` (flax examples, big_vision): a config file whose
``get_config()`` returns the config, and dotted overrides. jaxfool's configs are typed dataclasses with
modern annotations (``str | None``, ``tuple[int, ...]``), which ``config_flags`` cannot parse (it calls
``issubclass`` on postponed string annotations), so the overrides are applied here, typed by the
dataclass annotations. A misspelt or ill-typed field is a one-line error listing the valid fields; the final
config is validated (types, then each dataclass's ``validate()``) before anything runs.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any


log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


def load_config_file(path: str) -> Any:
    """Executes a config file and returns its ``get_config()``."""
    name = "_jaxfool_config_" + "".join(c if c.isalnum() else "_" for c in str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load config file {path!r}; pass a Python file such as configs/backwork_mnist.py")
    module = importlib.util.module_from_spec(spec)
    # Registered because dataclasses and typing.get_type_hints look the module up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        del sys.modules[name]
        raise ConfigError(f"config file {path!r} does not exist; see the configs/ folder") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config() function")
    return module.get_config()


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


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def parse(argv: Sequence[str]) -> Any:
    """Returns the validated config for ``argv`` (``[program, --config FILE, --config.a.b=value, ...]``).

    Raises:
        ConfigError: a missing file, unknown field, ill-typed or invalid value, as one line.
    """
    args = list(argv[1:])
    path = _config_path(args)
    if path is None:
        raise ConfigError("missing --config; e.g. --config configs/backwork_mnist.py")
    config = load_config_file(path)
    for arg in args:
        if arg.startswith("--config."):
            if "=" not in arg:
                raise ConfigError(f"{arg} has no value; write it as {arg}=VALUE")
            field, text = arg[len("--config.") :].split("=", 1)
            set_field(config, field, text)
        elif arg not in ("--config", path) and not arg.startswith("--config="):
            raise ConfigError(f"unexpected argument {arg!r}; use --config FILE and --config.FIELD=VALUE")
    validate(config)
    return config


def set_field(config: Any, path: str, text: str) -> None:
    """Sets the dotted field ``path`` of ``config`` from its command-line text, typed by its annotation.

    Strings may be given bare (``--config.data.source=embedded``); tuples as Python literals
    (``--config.backwork.labels='(0, 1)'``); ``None`` as ``none`` or ``None``.
    """
    check_override_names(config, [path])
    *parents, name = path.split(".")
    holder = config
    for part in parents:
        holder = getattr(holder, part)
    tp = typing.get_type_hints(type(holder))[name]
    value = _parse_value(text, tp)
    if not _matches(value, tp):
        raise ConfigError(f"--config.{path}={text!r} is not a valid {_type_name(tp)}")
    setattr(holder, name, value)


def _parse_value(text: str, tp: Any) -> Any:
    if text in ("none", "None") and _matches(None, tp):
        return None
    if tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp)):
        return text
    if tp is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # reported by the type check as ill-typed
    if typing.get_origin(tp) is tuple and isinstance(value, (list, int, float)):
        value = tuple(value) if isinstance(value, list) else (value,)
    return value


def main(run: Callable[[Any], Any], argv: Sequence[str] | None = None) -> None:
    """Parses ``--config FILE --config.a.b=value ...`` and calls ``run(config)``.

    Errors in the config (missing file, unknown field, wrong type, invalid value) end the program with one
    line on stderr and exit status 2, before anything is written.
    """
    try:
        config = parse(list(sys.argv if argv is None else argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    try:
        run(config)
    except (ValueError, OSError) as e:
        # Bad inputs (a missing weights file, an unreadable folder, an unknown layer...) are the user's to fix:
        # one line; JAXFOOL_TRACEBACK=1 shows the traceback.
        if os.environ.get("JAXFOOL_TRACEBACK"):
            raise
        print(f"error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
              file=sys.stderr)
        sys.exit(1)
