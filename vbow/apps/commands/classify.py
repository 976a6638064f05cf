"""``vbow classify``: a metadata label (e.g. category) for each photo, or an abstention."""

from __future__ import annotations

import argparse

from vbow.apps.commands._per_photo import add_photo_arguments, answer_each_photo

ORDER = 27


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``classify`` subcommand."""
    p = sub.add_parser("classify", help="label each photo by its verified neighbours' metadata")
    add_photo_arguments(p)
    p.add_argument("--field", default="category", help="metadata field to vote on")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="abstain below this confidence")
    p.add_argument("--json", action="store_true", help="one JSON line per photo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.classify import classify
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)

    def show(image: str, c) -> None:
        label = "abstain" if c.label is None else c.label
        print(f"{image}: {label} (confidence {c.confidence:.3f}, {c.reason})")

    return answer_each_photo(
        args.images, args.json,
        lambda image: classify(index, image, field=args.field, min_confidence=args.min_confidence),
        show, lambda image, c: {"image": str(image), **c.to_dict()},
        lambda image: {"image": str(image)})
