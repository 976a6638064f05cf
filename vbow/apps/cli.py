"""The ``vbow`` command: index, query, evaluate, demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from vbow import __version__
from vbow.config import PRESETS
from vbow.errors import VbowError

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _cmd_index(args: argparse.Namespace) -> int:
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


def _cmd_query(args: argparse.Namespace) -> int:
    from vbow.index import ImageIndex
    from vbow.results import ImageFailure

    index = ImageIndex.load(args.index)
    status = 0
    results = index.search_many(args.images, top_k=args.top, rerank=not args.no_rerank,
                                progress=False)
    for image, result in zip(args.images, results):
        if isinstance(result, ImageFailure):
            status = 1
            print(f"vbow: {result.error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"query": str(image), "error": result.error, "results": []}))
            continue
        if args.json:
            print(json.dumps({"query": result.query,
                              "results": [{"key": m.key, "score": round(m.score, 6),
                                           "inliers": m.inliers} for m in result]}))
        else:
            print(f"{result.query}:")
            for m in result:
                tag = f"{m.inliers} inliers" if m.verified else "not verified"
                print(f"  {m.rank + 1:>3}. {m.key}  score {m.score:.4f}  ({tag})")
    return status


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vbow.eval.evaluate import evaluate

    report = evaluate(args.dataset, args.distractors or (), preset=args.preset)
    ns = "-" if report.ns is None else f"{report.ns:.3f}"
    print(f"dataset {report.dataset}: {report.n_db} catalog images, {report.n_queries} queries, "
          f"preset {report.preset}")
    print(f"  N-S {ns}   recall@1 {report.recall_at_1:.3f}   mAP {report.map:.3f}")
    print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items()) +
          f"; search p50 {report.details['search_ms_p50']} ms, p95 {report.details['search_ms_p95']} ms")
    if report.failed:
        print(f"  {len(report.failed)} images could not be read: {', '.join(report.failed[:5])}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({"dataset": report.dataset, "n_db": report.n_db,
                          "n_queries": report.n_queries, "ns": report.ns,
                          "recall_at_1": report.recall_at_1, "map": report.map,
                          "seconds": report.seconds, "timings": report.timings,
                          "preset": report.preset, **report.details}))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vbow.apps.demo import run_demo

    summary = run_demo(n_products=args.products, preset=args.preset, seed=args.seed,
                       out=None if args.no_output else args.out)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["recall_at_1"] > 0.5 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vbow", description="Classical product image search.")
    parser.add_argument("--version", action="version", version=f"vbow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)
    presets = sorted(PRESETS)

    p = sub.add_parser("index", help="build an index from a folder or a groundtruth.csv")
    p.add_argument("source", help="folder of images, or a groundtruth.csv (roles db, both, distractor)")
    p.add_argument("--out", required=True, help="index bundle directory to write")
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--jobs", type=int, default=-1, help="worker processes (-1: all cores)")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser("query", help="search an index with query images")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("images", nargs="+", help="query image files")
    p.add_argument("--top", type=int, default=5, help="results per query")
    p.add_argument("--json", action="store_true", help="one JSON line per query")
    p.add_argument("--no-rerank", action="store_true", help="skip geometric re-ranking")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("evaluate", help="benchmark on a dataset with groundtruth.csv")
    p.add_argument("dataset", help="dataset folder with groundtruth.csv")
    p.add_argument("--distractors", nargs="*", help="folders of images added to the catalog")
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("demo", help="index and search a generated catalog (no data needed)")
    p.add_argument("--products", type=int, default=100)
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="vbow-demo", help="folder for match pictures and the index")
    p.add_argument("--no-output", action="store_true", help="write no files")
    p.add_argument("--json", action="store_true", help="end with a JSON summary")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vbow`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except VbowError as exc:
        print(f"vbow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
