"""``vbow decide``: which catalog product each photo shows, or none (the decision)."""

from __future__ import annotations

import argparse
import sys

ORDER = 25


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``decide`` subcommand."""
    p = sub.add_parser("decide", help="name the catalog product each photo shows, or none")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("images", nargs="+", help="photo files")
    p.add_argument("--top", type=int, default=10, help="candidates looked at per photo")
    p.add_argument("--model", default=None,
                   help="decision model JSON (from vbow.apps.decision.calibrate; default: the "
                        "built-in model)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per photo: the search result with its decision")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json
    from vbow.apps.decision import DecisionModel, search_decided
    from vbow.errors import ImageError
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    model = DecisionModel.load(args.model) if args.model else None
    status = 0
    for image in args.images:
        try:
            result = search_decided(index, image, args.top, model=model)
        except ImageError as exc:
            status = 1
            print(f"vbow: {exc}", file=sys.stderr)
            if args.json:
                print_json({"query": str(image), "error": str(exc),
                            "error_type": type(exc).__name__})
            continue
        d = result.decision
        if args.json:
            print_json(result.to_dict())
        elif d.accepted:
            print(f"{result.query}: {d.key} (confidence {d.confidence:.3f})")
        else:
            print(f"{result.query}: none ({d.reason}, confidence {d.confidence:.3f})")
    return status
