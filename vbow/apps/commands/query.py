"""``vbow query``: search an index bundle with query images."""

from __future__ import annotations

import argparse
import sys

from vbow.errors import InvalidInputError

ORDER = 20


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``query`` subcommand."""
    p = sub.add_parser("query", help="search an index with query images")
    p.add_argument("index", help="index bundle directory")
    p.add_argument("images", nargs="+", help="query image files")
    p.add_argument("--top", type=int, default=5, help="results per query")
    p.add_argument("--where", action="append", default=None, metavar="FIELD=VALUE",
                   help="only catalog images whose metadata FIELD equals VALUE (a string); "
                        "repeat a field for any of several values, or give several fields")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per query on stdout: matches with key, rank, score, "
                        "verified, inliers, transform and metadata")
    p.add_argument("--no-rerank", action="store_true", help="skip geometric re-ranking")
    p.set_defaults(func=run)


def parse_where(items: list[str] | None) -> dict[str, list[str]] | None:
    """``["category=tea", "category=coffee", "brand=Acme"]`` → ``{"category": ["tea",
    "coffee"], "brand": ["Acme"]}``."""
    if not items:
        return None
    where: dict[str, list[str]] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise InvalidInputError(f"--where takes FIELD=VALUE; got {item!r}")
        where.setdefault(field, []).append(value)
    return where


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json, progress_setting
    from vbow.index import ImageIndex
    from vbow.results import ImageFailure

    where = parse_where(args.where)
    index = ImageIndex.load(args.index)
    status = 0
    progress = progress_setting(args)
    results = index.search_many(args.images, top_k=args.top, where=where,
                                rerank=not args.no_rerank,
                                progress=False if progress is None else progress)
    for image, result in zip(args.images, results):
        for warning in getattr(result, "warnings", ()):
            print(f"vbow: {image}: {warning}", file=sys.stderr)
        if isinstance(result, ImageFailure):
            status = 1
            print(f"vbow: {result.error}", file=sys.stderr)
            if args.json:
                print_json({"query": str(image), "error": result.error,
                            "error_type": result.error_type, "results": []})
            continue
        if args.json:
            record = result.to_dict()
            for m, entry in zip(result, record["results"]):
                entry.setdefault("verified", m.verified)
                entry.setdefault("rank", m.rank)
            print_json(record)
        else:
            print(f"{result.query}:")
            for m in result:
                tag = f"{m.inliers} inliers" if m.verified else "not verified"
                print(f"  {m.rank + 1:>3}. {m.key}  score {m.score:.4f}  ({tag})")
    return status
