"""Command line of the experiments: ``--config configs/NAME.py [--config.field=value ...] [--help]``.

The flag syntax is that of ``ml_collections.config_flags`` (flax examples, big_vision): a config file whose
``get_config()`` returns the config, and dotted overrides. The overrides are applied here, typed by the config
dataclasses' annotations, because neither well-kept parser keeps this interface with one-line errors:
``config_flags`` cannot read postponed annotations (``issubclass`` on the string ``'int'``) and reports an
unknown field or a syntax error in the config file as a traceback; tyro reads the dataclasses well but wants
tuples as space-separated words (``--config.backwork.labels 1 2``, so ``=(1, 2)`` and ``=0.1,0.5`` fail) and
prints its errors in multi-line boxes. Field help comes from the dataclasses' ``Attributes:`` docstring sections
(parsed with ``docstring_parser``), ranges from :mod:`jaxfool.ranges`.

Every problem with the command line or the config file is one line on stderr and exit status 2, before
anything is written.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import importlib.util
import logging
import os
import pathlib
import signal
import sys
import textwrap
import threading
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import docstring_parser

from jaxfool import ranges, runs

log = logging.getLogger(__name__)

# Libraries whose INFO lines (orbax's ~20 per checkpoint restore, absl's, TFDS's) drown an experiment's own.
QUIET_LOGGERS = ("absl", "orbax", "jax", "tensorflow", "tensorflow_datasets", "h5py", "PIL", "matplotlib")


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and the fix."""


def load_config_file(path: str) -> Any:
    """Executes a config file and returns its ``get_config()``, a dataclass instance.

    Raises:
        ConfigError: the file is missing, does not import (syntax error, failing import, any exception), has no
            ``get_config``, or ``get_config()`` fails or returns something other than a dataclass instance.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist; pass a file from the configs/ folder")
    if not str(path).endswith(".py"):
        raise ConfigError(f"config file {path!r} is not a .py file; pass a file such as configs/backwork_mnist.py")
    name = "_jaxfool_config_" + "".join(c if c.isalnum() else "_" for c in str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load config file {path!r}; pass a Python file such as configs/backwork_mnist.py")
    module = importlib.util.module_from_spec(spec)
    # Registered because dataclasses and typing.get_type_hints look the module up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise ConfigError(f"config file {path!r} has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 -- anything the file raises is reported as one line
        del sys.modules[name]
        raise ConfigError(f"config file {path!r} failed to import: {_one_line(e)}{_where(e, path)}") from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {path!r} has no get_config() function; define one returning the config")
    try:
        config = get_config()
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"get_config() of {path!r} failed: {_one_line(e)}{_where(e, path)}") from None
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(
            f"get_config() of {path!r} returned {type(config).__name__}, not a dataclass instance; "
            "return an instance of the experiment's Config dataclass"
        )
    return config


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _where(e: BaseException, path: str) -> str:
    """`` (line N)`` of the deepest traceback frame inside the config file, if any."""
    tb, line = e.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def check_override_names(config: Any, paths: Sequence[str]) -> None:
    """Raises :class:`ConfigError` for an override path that names no field of ``config``."""
    for path in paths:
        node, parts = config, path.split(".")
        for depth, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
            if part not in names:
                where = ".".join(parts[:depth]) or "the config"
                if not names:
                    raise ConfigError(f"unknown config field {path!r}: {where} is a value, not a group of fields")
                close = difflib.get_close_matches(part, names, n=1)
                hint = f" (did you mean {'.'.join(parts[:depth] + close)!r}?)" if close else ""
                raise ConfigError(f"unknown config field {path!r}{hint}; valid fields of {where}: {', '.join(names)}")
            node = getattr(node, part)


def validate(config: Any, prefix: str = "") -> None:
    """Checks ``config`` recursively: every field's type, every numeric field's range (:mod:`jaxfool.ranges`),
    ``workdir``/``run_name`` (:func:`jaxfool.runs.check_run_location`), then each dataclass's ``validate()``.

    Raises:
        ConfigError: one line naming the field, its value and what is expected.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, path = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
            continue
        if not _matches(value, hints.get(f.name, Any)):
            raise ConfigError(
                f"config field {path}={value!r} has type {type(value).__name__}, expected {_type_name(hints[f.name])}"
            )
        constraints = ranges.field_constraints(type(config), f.name)
        if constraints is not None and (bad := ranges.violation(value, constraints)) is not None:
            what = f"{path}={value!r}" if bad == value else f"{path}={value!r} holds {bad!r}; each value"
            raise ConfigError(f"config field {what} must be {ranges.describe(constraints)}")
    if not prefix and hasattr(config, "workdir"):
        try:
            runs.check_run_location(config.workdir, getattr(config, "run_name", ""))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if hasattr(config, "validate"):
        try:
            config.validate()
        except ValueError as e:
            raise ConfigError(str(e).strip().splitlines()[0]) from None


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
    if origin in (tuple, list):
        if not isinstance(value, origin):
            return False
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return all(_matches(v, args[0]) for v in value) if args else True
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is None and hasattr(tp, "__name__"):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _config_path(argv: Sequence[str]) -> str | None:
    paths = []
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 == len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError("--config has no file; write --config configs/NAME.py")
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    if len(paths) > 1:
        raise ConfigError(f"--config is given {len(paths)} times ({', '.join(paths)}); give one config file")
    return paths[0] if paths else None


def parse(argv: Sequence[str]) -> Any:
    """Returns the validated config for ``argv`` (``[program, --config FILE, --config.a.b=value, ...]``).

    Raises:
        ConfigError: a missing or broken config file, unknown field, ill-typed or invalid value, as one line.
    """
    args = list(argv[1:])
    path = _config_path(args)
    if path is None:
        raise ConfigError("missing --config; e.g. --config configs/backwork_mnist.py (add --help for its fields)")
    config = load_config_file(path)
    for i, arg in enumerate(args):  # a field given twice takes its last value, as absl flags do
        if arg.startswith("--config."):
            if "=" not in arg:
                raise ConfigError(f"{arg} has no value; write it as {arg}=VALUE")
            field, text = arg[len("--config.") :].split("=", 1)
            set_field(config, field, text)
        elif not (arg == "--config" or arg.startswith("--config=") or (i and args[i - 1] == "--config")):
            raise ConfigError(f"unexpected argument {arg!r}; use --config FILE, --config.FIELD=VALUE and --help")
    validate(config)
    return config


def set_field(config: Any, path: str, text: str) -> None:
    """Sets the dotted field ``path`` of ``config`` from its command-line text, typed by its annotation.

    Strings may be given bare (``--config.data.source=embedded``); tuples and lists as comma-separated values or
    Python literals (``--config.backwork.labels=1,2`` or ``'(1, 2)'``; ``'()'`` is empty); ``None`` as ``none``.
    """
    check_override_names(config, [path])
    *parents, name = path.split(".")
    holder = config
    for part in parents:
        holder = getattr(holder, part)
    tp = typing.get_type_hints(type(holder))[name]
    if dataclasses.is_dataclass(getattr(holder, name)):
        fields = ", ".join(f"{path}.{f.name}" for f in dataclasses.fields(getattr(holder, name)))
        raise ConfigError(f"--config.{path} is a group of fields; set one of them: {fields}")
    value = _parse_value(text, tp)
    if not _matches(value, tp):
        example = " (e.g. 1,2 or '(1, 2)')" if typing.get_origin(tp) in (tuple, list) else ""
        raise ConfigError(f"--config.{path}={text!r} is not a valid {_type_name(tp)}{example}")
    setattr(holder, name, value)


def _parse_value(text: str, tp: Any) -> Any:
    if text in ("none", "None") and _matches(None, tp):
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str or (origin in (typing.Union, types.UnionType) and str in args):
        return text
    if tp is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
    sequence = origin in (tuple, list)
    if sequence and args and args[0] is str and not text.strip().startswith(("(", "[")):
        return origin(s.strip() for s in text.split(",") if s.strip())  # bare words: a,b,c
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # reported by the type check as ill-typed
    if sequence and isinstance(value, (tuple, list, int, float)) and not isinstance(value, bool):
        value = origin(value) if isinstance(value, (tuple, list)) else origin((value,))
    return value


def help_text(config: Any, path: str, program: str) -> str:
    """The ``--help`` page: usage, the config file's docstring, then every field with type, default and help."""
    module = sys.modules.get(type(config).__module__)
    file_doc = _config_file_doc(path) or (module.__doc__ if module else "") or ""
    lines = [f"usage: {program} --config {path} [--config.FIELD=VALUE ...]", ""]
    if file_doc.strip():
        lines += [file_doc.strip(), ""]
    lines += ["Fields (set with --config.FIELD=VALUE; tuples as 1,2 or '(1, 2)'; None as none):"]
    lines += _field_help(config, "")
    return "\n".join(lines) + "\n"


def _config_file_doc(path: str) -> str | None:
    try:
        return ast.get_docstring(ast.parse(pathlib.Path(path).read_text()))
    except (OSError, SyntaxError, ValueError):
        return None


def _field_help(config: Any, prefix: str) -> list[str]:
    cls = type(config)
    docs = {p.arg_name: p.description or "" for p in docstring_parser.parse(cls.__doc__ or "").params}
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(config):
        value, path = getattr(config, f.name), f"{prefix}{f.name}"
        doc = " ".join(docs.get(f.name, "").split())
        if dataclasses.is_dataclass(value):
            lines += ["", f"  {path}: {doc}" if doc else f"  {path}:"]
            lines += _field_help(value, f"{path}.")
            continue
        constraints = ranges.field_constraints(cls, f.name)
        bound = f" ({ranges.describe(constraints)})" if constraints else ""
        lines.append(f"    --config.{path}: {_type_name(hints[f.name])} = {value!r}{bound}")
        if doc:
            lines += textwrap.wrap(doc, 110, initial_indent=" " * 8, subsequent_indent=" " * 8)
    return lines


def _program(argv0: str) -> str:
    p = pathlib.Path(argv0)
    if p.suffix == ".py" and p.parent.name == "experiments":
        return f"python -m experiments.{p.stem}"
    return f"python {argv0}" if p.suffix == ".py" else argv0


def quiet_library_logs() -> None:
    """Shows jaxfool's and the experiment's INFO lines and only warnings from noisy libraries (orbax, absl...).

    Called by :func:`main`, not at import: a program that imports jaxfool keeps its own logging settings.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging  # orbax logs through absl

        absl_logging.set_verbosity(absl_logging.WARNING)


def main(run: Callable[[Any], Any], argv: Sequence[str] | None = None) -> None:
    """Parses ``--config FILE --config.a.b=value ...`` (or ``--help``) and calls ``run(config)``.

    Errors in the command line or config (missing or broken file, unknown field, wrong type, value out of range)
    end the program with one line on stderr and exit status 2, before anything is written. Errors of the run
    that are the user's to fix (``ValueError``, ``OSError``) are one line and exit status 1 (2 for a
    :class:`ConfigError` the experiment raises); Ctrl-C or SIGTERM is one line and exit status 130. A run folder whose run fails or is interrupted keeps an ``INCOMPLETE`` file saying why
    (or is removed if it holds nothing but its config). ``JAXFOOL_TRACEBACK=1`` shows tracebacks.
    """
    argv = list(sys.argv if argv is None else argv)
    try:
        if "--help" in argv[1:] or "-h" in argv[1:]:
            path = _config_path(argv[1:])
            if path is None:
                print(f"usage: {_program(argv[0])} --config configs/NAME.py [--config.FIELD=VALUE ...]\n"
                      "add --config FILE to --help to list that config's fields")
            else:
                print(help_text(load_config_file(path), path, _program(argv[0])), end="")
            sys.exit(0)
        config = parse(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    quiet_library_logs()
    created: list[pathlib.Path] = []
    # `kill` and job schedulers send SIGTERM: treated as Ctrl-C (signal handlers exist in the main thread only).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        with runs.tracked(created):
            run(config)
    except ConfigError as e:  # found by the experiment itself (a layer name, a model name...)
        if os.environ.get("JAXFOOL_TRACEBACK"):
            raise
        print(f"error: {e}{_marked(created)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(f"interrupted ({str(e) or 'Ctrl-C'}){_marked(created)}", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError) as e:
        # Bad inputs (a missing weights file, an unreadable folder, an unknown layer...) are the user's to fix.
        if os.environ.get("JAXFOOL_TRACEBACK"):
            raise
        print(f"error: {_one_line(e)}{_marked(created)}", file=sys.stderr)
        sys.exit(1)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _marked(created: Sequence[pathlib.Path]) -> str:
    kept = [str(p) for p in created if p.is_dir()]
    return f"; {', '.join(kept)} marked INCOMPLETE" if kept else ""
