"""``vbow duplicates``: groups of catalog images showing the same photo or the same product."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 28


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``duplicates`` subcommand."""
    p = sub.add_parser("duplicates",
                       help="find duplicate, edited and counterfeit listings in an index")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("--root", default=".",
                   help="folder the index's keys are paths in (vbow index stores paths relative "
                        "to its SOURCE folder)")
    p.add_argument("--no-mirror", action="store_true", help="do not look for mirrored copies")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: pairs (kind, confidence, counterfeit, unexplained "
                        "region) and groups")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json, progress_setting
    from vbow.apps.duplicates import find_duplicates
    from vbow.errors import InvalidInputError
    from vbow.index import ImageIndex

    index = ImageIndex.load(args.index)
    root = Path(args.root)
    images = {k: str(root / k) for k in index.keys}
    missing = [k for k, p in images.items() if not Path(p).is_file()]
    if missing:
        raise InvalidInputError(f"{len(missing)} of {len(images)} keys are not files under "
                                f"{root}, e.g. {missing[:3]}; pass --root SOURCE")
    report = find_duplicates(index, images, mirror=not args.no_mirror,
                             progress=progress_setting(args))
    if args.json:
        print_json(report.to_dict())
    else:
        for g in report.groups:
            print("group: " + ", ".join(g))
        for p in report.pairs:
            flag = "  COUNTERFEIT?" if p.counterfeit else ""
            print(f"  {p.a} ~ {p.b}: {p.kind} ({p.inliers} inliers){flag}")
    return 0
