"""``vbow classify``: a metadata label (e.g. category) for each photo, or an abstention."""

from __future__ import annotations

import argparse
import sys

ORDER = 27


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``classify`` subcommand."""
    p = sub.add_parser("classify", help="label each photo by its verified neighbours' metadata")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("images", nargs="+", help="photo files")
    p.add_argument("--field", default="category", help="metadata field to vote on")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="abstain below this confidence")
    p.add_argument("--json", action="store_true", help="one JSON line per photo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.classify import classify
    from vbow.apps.cli import print_json
    from vbow.errors import ImageError
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    status = 0
    for image in args.images:
        try:
            c = classify(index, image, field=args.field, min_confidence=args.min_confidence)
        except ImageError as exc:
            status = 1
            print(f"vbow: {exc}", file=sys.stderr)
            if args.json:
                print_json({"image": str(image), "error": str(exc),
                            "error_type": type(exc).__name__})
            continue
        if args.json:
            print_json({"image": str(image), **c.to_dict()})
        else:
            label = "abstain" if c.label is None else c.label
            print(f"{image}: {label} (confidence {c.confidence:.3f}, {c.reason})")
    return status
