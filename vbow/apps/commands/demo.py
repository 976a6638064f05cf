"""``vbow demo``: index and search a generated catalog."""

from __future__ import annotations

import argparse
import sys

from vbow.config import PRESETS

ORDER = 90


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``demo`` subcommand."""
    p = sub.add_parser("demo", help="index and search a generated catalog (no data needed)")
    p.add_argument("--products", type=int, default=100, help="catalog size")
    p.add_argument("--photos", type=int, default=2, help="shopper photos per product (queries)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="sift", help="engine preset")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--out", default="vbow-demo", help="folder for match pictures and the index")
    p.add_argument("--no-output", action="store_true", help="write no files")
    p.add_argument("--json", action="store_true",
                   help="print only a JSON summary on stdout (the report goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbow.apps.cli import print_json, progress_setting
    from vbow.apps.demo import run_demo

    summary = run_demo(n_products=args.products, photos_per_product=args.photos,
                       preset=args.preset, seed=args.seed,
                       out=None if args.no_output else args.out,
                       stream=sys.stderr if args.json else sys.stdout,
                       progress=progress_setting(args))
    if args.json:
        print_json(summary)
    return 0 if summary["recall_at_1"] > 0.5 else 1
