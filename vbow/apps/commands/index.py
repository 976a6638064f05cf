"""``vbow index``: build an index bundle from a folder or a groundtruth.csv."""

from __future__ import annotations

import argparse
import sys

from vbow.config import PRESETS

ORDER = 10


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``index`` subcommand."""
    presets = sorted(PRESETS)
    p = sub.add_parser("index", help="build an index from a folder or a groundtruth.csv")
    p.add_argument("source", help="folder of images, or a groundtruth.csv (roles db, both, distractor)")
    p.add_argument("--out", required=True, help="index bundle directory to write")
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (-1: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.eval.datasets import load_source
    from vbow.index import ImageIndex

    dataset = load_source(args.source)
    catalog = dataset.catalog
    if not catalog:
        print(f"vbow: no catalog images found in {args.source}", file=sys.stderr)
        return 2
    index = ImageIndex(args.preset, n_jobs=args.jobs)
    report = index.build([str(im.path) for im in catalog], keys=[im.relative for im in catalog],
                         metadata=[{"group": im.group} if im.group else {} for im in catalog])
    for failure in report.failed:
        print(f"vbow: skipped {failure.error}", file=sys.stderr)
    path = index.save(args.out)
    print(f"indexed {len(report.added)} images ({len(report.failed)} skipped) with "
          f"{index.vocabulary.n_words_} visual words in {report.seconds:.1f}s; saved to {path}")
    return 1 if not report.added else 0
