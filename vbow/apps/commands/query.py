"""``vbow query``: search an index bundle with query images."""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 20


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``query`` subcommand."""
    p = sub.add_parser("query", help="search an index with query images")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("images", nargs="+", help="query image files")
    p.add_argument("--top", type=int, default=5, help="results per query")
    p.add_argument("--json", action="store_true", help="one JSON line per query")
    p.add_argument("--no-rerank", action="store_true", help="skip geometric re-ranking")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
