"""``vbow detect``: every catalog product (or logo) in each photo, with its outline."""

from __future__ import annotations

import argparse
import sys

ORDER = 26


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``detect`` subcommand."""
    p = sub.add_parser("detect", help="find every catalog product (or logo) in each photo")
    p.add_argument("index", help="index bundle directory (of products, or of logos)")
    p.add_argument("images", nargs="+", help="photo files (e.g. shelf photos)")
    p.add_argument("--max", type=int, default=10, help="at most this many products per photo")
    p.add_argument("--model", default=None, help="decision model JSON (default: built-in)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per photo: detections with key, outline, confidence")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json
    from vbow.apps.decision import DecisionModel
    from vbow.apps.detect import detect
    from vbow.errors import ImageError
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    model = DecisionModel.load(args.model) if args.model else None
    status = 0
    for image in args.images:
        try:
            found = detect(index, image, max_objects=args.max, model=model)
        except ImageError as exc:
            status = 1
            print(f"vbow: {exc}", file=sys.stderr)
            if args.json:
                print_json({"image": str(image), "error": str(exc),
                            "error_type": type(exc).__name__, "detections": []})
            continue
        if args.json:
            print_json({"image": str(image), "detections": [d.to_dict() for d in found]})
        else:
            print(f"{image}: {len(found)} products")
            for d in found:
                print(f"  {d.key}  confidence {d.confidence:.3f}  ({d.inliers} inliers)")
    return status
