"""``vbow evaluate``: benchmark a preset on a dataset with groundtruth.csv."""

from __future__ import annotations

import argparse
import sys

from vbow.config import PRESETS

ORDER = 40


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``evaluate`` subcommand."""
    p = sub.add_parser("evaluate", help="benchmark on a dataset with groundtruth.csv")
    p.add_argument("dataset", help="dataset folder with groundtruth.csv (or the csv itself)")
    p.add_argument("--distractors", nargs="*", default=[],
                   help="folders of images added to the catalog")
    p.add_argument("--preset", choices=sorted(PRESETS), default="sift", help="engine preset")
    p.add_argument("--top", type=int, default=100, help="results per query (the depth of mAP)")
    p.add_argument("--json", action="store_true",
                   help="print only one JSON object on stdout (the report goes nowhere else)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json, progress_setting
    from vbow.eval.evaluate import evaluate

    report = evaluate(args.dataset, args.distractors, preset=args.preset, top_k=args.top,
                      progress=progress_setting(args))
    if report.failed:
        print(f"vbow: {len(report.failed)} images could not be read: "
              f"{', '.join(report.failed[:5])}", file=sys.stderr)
    if args.json:
        print_json({"dataset": report.dataset, "n_db": report.n_db,
                    "n_queries": report.n_queries, "ns": report.ns,
                    "recall_at_1": report.recall_at_1, "map": report.map,
                    "seconds": report.seconds, "timings": report.timings,
                    "preset": report.preset, "failed": report.failed, **report.details})
        return 0
    ns = "-" if report.ns is None else f"{report.ns:.3f}"
    print(f"dataset {report.dataset}: {report.n_db} catalog images, {report.n_queries} queries, "
          f"preset {report.preset}")
    print(f"  N-S {ns}   recall@1 {report.recall_at_1:.3f}   mAP {report.map:.3f}")
    print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items()) +
          f"; search p50 {report.details['search_ms_p50']} ms, "
          f"p95 {report.details['search_ms_p95']} ms")
    return 0
