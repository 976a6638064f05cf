"""``vbow index SOURCE --out INDEX --scheduler ADDRESS`` (or ``--work DIR``): the segmented
build behind the command line."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["run_segmented"]


def run_segmented(args: argparse.Namespace) -> int:
    """Run :func:`vbow.distributed.build_index` for parsed ``vbow index`` arguments.

    Returns
    -------
    int
        0 on success, 1 when no image could be indexed, 2 for an unusable source or work
        directory, or a missing Dask extra.
    """
    from vbow.distributed.build import build_index
    from vbow.errors import InvalidInputError, VbowError

    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            print('vbow: --scheduler needs the dask extra: pip install "vbow[dask]"', file=sys.stderr)
            return 2
        client = Client(args.scheduler)
    try:
        report = build_index(args.source, args.out, work_dir=args.work, preset=args.preset,
                             batch_size=args.batch_size, client=client, n_jobs=args.jobs)
    except InvalidInputError as exc:
        print(f"vbow: {exc}", file=sys.stderr)
        return 1 if "no catalog image could be read" in str(exc) else 2
    except VbowError as exc:
        print(f"vbow: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    for failure in report.failed:
        print(f"vbow: skipped {failure.error}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"index": str(report.path), "added": len(report.added),
                          "failed": [{"source": f.source, "error": f.error,
                                      "error_type": f.error_type} for f in report.failed],
                          "segments": report.n_batches, "reused": list(report.reused),
                          "built": list(report.built), "seconds": round(report.seconds, 3)}))
    else:
        print(f"indexed {len(report.added)} images ({len(report.failed)} failed) in "
              f"{report.n_batches} segments ({len(report.reused)} reused from an earlier run) in "
              f"{report.seconds:.1f}s; saved to {report.path}")
    return 0
