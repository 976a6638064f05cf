"""``vbow demo``: index and search a generated catalog."""

from __future__ import annotations

import argparse
import json
import sys

from vbow.config import PRESETS

ORDER = 90


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``demo`` subcommand."""
    presets = sorted(PRESETS)
    p = sub.add_parser("demo", help="index and search a generated catalog (no data needed)")
    p.add_argument("--products", type=int, default=100)
    p.add_argument("--preset", choices=presets, default="sift")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="vbow-demo", help="folder for match pictures and the index")
    p.add_argument("--no-output", action="store_true", help="write no files")
    p.add_argument("--json", action="store_true", help="end with a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.demo import run_demo

    summary = run_demo(n_products=args.products, preset=args.preset, seed=args.seed,
                       out=None if args.no_output else args.out)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["recall_at_1"] > 0.5 else 1
