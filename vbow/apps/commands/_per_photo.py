"""What the per-photo commands (``decide``, ``detect``, ``classify``) share: their arguments and
the loop that answers each photo, reports an unreadable one and goes on."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Mapping, Sequence

__all__ = ["add_photo_arguments", "answer_each_photo"]


def add_photo_arguments(p: argparse.ArgumentParser, *, index_help: str = "index bundle directory",
                        images_help: str = "photo files", model: bool = False) -> None:
    """The positional ``index`` and ``images`` and, with ``model``, ``--model``."""
    p.add_argument("index", help=index_help)
    p.add_argument("images", nargs="+", help=images_help)
    if model:
        p.add_argument("--model", default=None,
                       help="decision model JSON (from vbow.apps.decision.calibrate; default: "
                            "the built-in model)")


def answer_each_photo(images: Sequence[str], as_json: bool, answer: Callable[[str], Any],
                      show: Callable[[str, Any], None], to_json: Callable[[str, Any], Mapping],
                      error_fields: Callable[[str], Mapping[str, Any]]) -> int:
    """Answer every photo in turn and print each answer as it comes.

    ``answer(image)`` computes it; ``show(image, answer)`` prints it for a person and
    ``to_json(image, answer)`` is its JSON line with ``--json``. A photo that cannot be read
    (:class:`vbow.errors.ImageError`) is named on standard error and, with ``--json``, gets the
    line ``{**error_fields(image), "error": ..., "error_type": ...}``; the rest go on.

    Returns
    -------
    int
        The exit status: 1 when any photo could not be read, else 0.
    """
    from vbow.apps.cli import print_json
    from vbow.errors import ImageError

    status = 0
    for image in images:
        try:
            result = answer(image)
        except ImageError as exc:
            status = 1
            print(f"vbow: {exc}", file=sys.stderr)
            if as_json:
                print_json({**error_fields(image), "error": str(exc),
                            "error_type": type(exc).__name__})
            continue
        if as_json:
            print_json(to_json(image, result))
        else:
            show(image, result)
    return status
