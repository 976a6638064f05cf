"""The ``vbow`` command. Each subcommand lives in its own module in :mod:`vbow.apps.commands`.

Every subcommand gets the common options (``-v``, ``--progress``/``--no-progress``) after its
name as well as before it, and its ``--help`` shows the defaults. Logs and progress bars go to
standard error; with ``--json`` a command writes only JSON to standard output, errors included
(``{"error": ..., "error_type": ...}``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import pkgutil
import sys
from typing import Any, Sequence

from vbow import __version__
from vbow.errors import VbowError
from vbow.progress import progress_scope

__all__ = ["main", "build_parser", "print_json", "progress_setting", "verbosity"]

logger = logging.getLogger(__name__)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows ``(default: X)`` for options that have a meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def _add_common(parser: argparse.ArgumentParser, verbose_dest: str, verbose_default: Any) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument("-v", "--verbose", action="count", dest=verbose_dest,
                       default=verbose_default,
                       help="more log output on stderr (-v: info, -vv: debug)")
    bars = group.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_const", const=True,
                      default=argparse.SUPPRESS,
                      help="draw progress bars on stderr even when it is not a terminal")
    bars.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                      default=argparse.SUPPRESS, help="never draw progress bars")


class _Subcommands:
    """``sub`` as the command modules see it: every parser gets the common options and the
    defaults-showing help."""

    def __init__(self, sub: "argparse._SubParsersAction") -> None:
        self._sub = sub

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        if "help" in kwargs:
            kwargs.setdefault("description", kwargs["help"])
        parser = self._sub.add_parser(name, **kwargs)
        _add_common(parser, "verbose_after", argparse.SUPPRESS)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


def _command_modules() -> list:
    from vbow.apps import commands

    modules = [importlib.import_module(f"{commands.__name__}.{info.name}")
               for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    """The ``vbow`` argument parser with every subcommand of :mod:`vbow.apps.commands`."""
    parser = argparse.ArgumentParser(prog="vbow", description="Classical product image search.",
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vbow {__version__}")
    _add_common(parser, "verbose", 0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.add_parser(_Subcommands(sub))
    return parser


def _strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (they are not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Write ``obj`` as one line of JSON to standard output (the only thing ``--json`` prints
    there); NaN and infinities become null."""
    # ASCII-only: any stdout encoding carries it, and names with undecodable bytes too
    sys.stdout.write(json.dumps(_strict_json(obj), ensure_ascii=True, allow_nan=False) + "\n")
    sys.stdout.flush()


def progress_setting(args: argparse.Namespace) -> bool | None:
    """``--progress`` → True, ``--no-progress`` → False, neither → None (terminal decides)."""
    return getattr(args, "progress", None)


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before and after the subcommand's name."""
    return int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "verbose_after", 0) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vbow`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = verbosity(args)
    logging.basicConfig(level=logging.WARNING - 10 * min(level, 2), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with progress_scope(progress_setting(args)):   # also for phases deep in the library
            return int(args.func(args))
    except VbowError as exc:
        print(f"vbow: error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print_json({"error": str(exc), "error_type": type(exc).__name__})
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
