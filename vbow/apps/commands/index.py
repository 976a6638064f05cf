"""``vbow index``: build an index bundle from a folder, a groundtruth.csv or a CSV manifest."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vbow.config import PRESETS

ORDER = 10


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``index`` subcommand."""
    p = sub.add_parser("index", help="build an index from a folder, a groundtruth.csv or a "
                                     "manifest csv")
    p.add_argument("source", help="a folder of images; a groundtruth.csv (roles db, both and "
                                  "distractor are indexed); or a manifest csv with columns path, "
                                  "key (optional) and metadata fields")
    p.add_argument("--out", required=True, help="index bundle directory to write")
    p.add_argument("--preset", choices=sorted(PRESETS), default="sift", help="engine preset")
    p.add_argument("--jobs", type=int, default=-1, help="feature extraction processes (-1: all "
                                                        "cores)")
    p.add_argument("--max-training-images", type=int, default=None, metavar="N",
                   help="train the vocabulary on a seeded sample of at most N images (default: "
                        "the preset's, 5000 for sift)")
    p.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    p.add_argument("--scheduler", metavar="ADDRESS", help="build on this Dask scheduler "
                   "(vbow[dask]); segments go to --work, which every worker must reach")
    p.add_argument("--work", metavar="DIR", help="resumable segmented build in DIR (default with "
                   "--scheduler: OUT.segments); rerun the same command to resume")
    p.add_argument("--batch-size", type=int, default=256, help="images per segment (with "
                   "--work or --scheduler)")
    p.set_defaults(func=run)


def catalog_entries(dataset) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Paths, keys and metadata of a source's catalog images.

    A manifest gives keys and metadata; a groundtruth.csv gives the relative path as key and
    ``{"group": ...}``; a plain folder the relative path and no metadata.
    """
    paths, keys, metadata = [], [], []
    for im in dataset.catalog:
        paths.append(str(im.path))
        keys.append(im.catalog_key)
        meta: dict[str, Any] = dict(im.metadata)
        if im.group:
            meta.setdefault("group", im.group)
        metadata.append(meta)
    return paths, keys, metadata


def run(args: argparse.Namespace) -> int:
    if args.scheduler or args.work:
        from vbow.distributed.command import run_segmented
        return run_segmented(args)
    from vbow.apps.cli import print_json, progress_setting
    from vbow.eval.datasets import load_source
    from vbow.index import ImageIndex

    dataset = load_source(args.source)
    for problem in dataset.skipped:
        print(f"vbow: skipped {problem}", file=sys.stderr)
    paths, keys, metadata = catalog_entries(dataset)
    if not paths:
        message = f"no catalog images found in {args.source}"
        print(f"vbow: {message}", file=sys.stderr)
        if args.json:
            print_json({"error": message, "error_type": "DatasetError",
                        "skipped": list(dataset.skipped)})
        return 2
    overrides = {} if args.max_training_images is None else \
        {"max_training_images": args.max_training_images}
    index = ImageIndex(args.preset, n_jobs=args.jobs, **overrides)
    # build trains on a sample, then describes and indexes the catalog batch by batch
    report = index.build(paths, keys=keys, metadata=metadata, progress=progress_setting(args))
    for failure in report.failed:
        print(f"vbow: skipped {failure.error}", file=sys.stderr)
    no_features = list(getattr(report, "no_features", ()))
    if no_features:
        print(f"vbow: {len(no_features)} images have no local features (only their colour can "
              f"match): {', '.join(no_features[:5])}", file=sys.stderr)
    path = index.save(args.out)
    n_words = int(index.vocabulary.n_words_)
    if args.json:
        print_json({"index": str(path), "preset": args.preset, "added": len(report.added),
                    "failed": [{"source": f.source, "error": f.error, "error_type": f.error_type}
                               for f in report.failed],
                    "skipped": list(dataset.skipped), "no_features": no_features,
                    "n_words": n_words, "seconds": round(report.seconds, 3)})
    else:
        print(f"indexed {len(report.added)} images ({len(report.failed)} failed, "
              f"{len(dataset.skipped)} skipped) with {n_words} visual words in "
              f"{report.seconds:.1f}s; saved to {path}")
    return 1 if not report.added else 0
