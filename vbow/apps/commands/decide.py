"""``vbow decide``: which catalog product each photo shows, or none (the decision)."""

from __future__ import annotations

import argparse

from vbow.apps.commands._per_photo import add_photo_arguments, answer_each_photo

ORDER = 25


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``decide`` subcommand."""
    p = sub.add_parser("decide", help="name the catalog product each photo shows, or none")
    add_photo_arguments(p, model=True)
    p.add_argument("--top", type=int, default=10, help="candidates looked at per photo")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per photo: the search result with its decision")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.decision import DecisionModel, search_decided
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    model = DecisionModel.load(args.model) if args.model else None

    def show(image: str, result) -> None:
        d = result.decision
        if d.accepted:
            print(f"{result.query}: {d.key} (confidence {d.confidence:.3f})")
        else:
            print(f"{result.query}: none ({d.reason}, confidence {d.confidence:.3f})")

    return answer_each_photo(args.images, args.json,
                             lambda image: search_decided(index, image, args.top, model=model),
                             show, lambda image, result: result.to_dict(),
                             lambda image: {"query": str(image)})
