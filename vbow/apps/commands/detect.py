"""``vbow detect``: every catalog product (or logo) in each photo, with its outline."""

from __future__ import annotations

import argparse

from vbow.apps.commands._per_photo import add_photo_arguments, answer_each_photo

ORDER = 26


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``detect`` subcommand."""
    p = sub.add_parser("detect", help="find every catalog product (or logo) in each photo")
    add_photo_arguments(p, index_help="index bundle directory (of products, or of logos)",
                        images_help="photo files (e.g. shelf photos)", model=True)
    p.add_argument("--max", type=int, default=10, help="at most this many products per photo")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per photo: detections with key, outline, confidence")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.decision import DecisionModel
    from vbow.apps.detect import detect
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    model = DecisionModel.load(args.model) if args.model else None

    def show(image: str, found) -> None:
        print(f"{image}: {len(found)} products")
        for d in found:
            print(f"  {d.key}  confidence {d.confidence:.3f}  ({d.inliers} inliers)")

    return answer_each_photo(
        args.images, args.json,
        lambda image: detect(index, image, max_objects=args.max, model=model), show,
        lambda image, found: {"image": str(image), "detections": [d.to_dict() for d in found]},
        lambda image: {"image": str(image), "detections": []})
