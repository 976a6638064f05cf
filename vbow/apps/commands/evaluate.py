"""``vbow evaluate``: benchmark a preset on a dataset with groundtruth.csv."""

from __future__ import annotations

import argparse
import json
import sys

from vbow.config import PRESETS

ORDER = 40


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``evaluate`` subcommand."""
    presets = sorted(PRESETS)
    p = sub.add_parser("evaluate", help="benchmark on a dataset with groundtruth.csv")
    p.add_argument("dataset", help="dataset folder with groundtruth.csv")
    p.add_argument("--distractors", nargs="*", help="folders of images added to the catalog")
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
