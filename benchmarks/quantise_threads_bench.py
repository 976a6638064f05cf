"""Query quantisation on one thread and on two, side by side.

A query's descriptors are assigned to words by :meth:`vbow.vocab.vocabulary.Vocabulary.quantise_multi`.
Its small-batch path multiplies each probed coarse cell's words with the descriptors that probe
it, about 250 small products a query. With ``threads=2`` (``Config.query_threads``) the
(descriptor, cell) pairs are split between two threads at a cell boundary, so each cell's product
is the same product, and the words and weights must be identical.

This benchmark takes the scale benchmark's 200 real query photos (features from its cache), cuts
each to its first ``n`` descriptors for several ``n``, and times ``quantise_multi`` with one and
two threads, alternating round by round in one process, on the vocabularies of the scale
benchmark's 10,000-image bundles:

- ``sift`` (k-means, 65,536 words, 3 assignments): split from ``parallel_min_pairs`` = 800 pairs;
- ``orb`` (Hamming, 65,536 words), forced to split at any size to show why it never is.

Run: ``python3 benchmarks/quantise_threads_bench.py`` (after ``scale_bench.py`` and
``edge_bench.py`` have built their 10,000-image bundles in ``$VBOW_SCALE_WORK``, default
``/tmp/vbow-scale``). Writes ``results/quantise_threads.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as the scale benchmark's query processes

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from feature_cache import cached_features  # noqa: E402
from scale_bench import WORK  # noqa: E402
from synthetic_catalog import query_paths  # noqa: E402

import vbow  # noqa: E402
from vbow.concurrency import usable_cores  # noqa: E402
from vbow.eval.evaluate import machine_description  # noqa: E402

COMMAND = "python3 benchmarks/quantise_threads_bench.py"
SIZES = (100, 200, 300, 500, 0)  # 0: every descriptor of the photo (up to the 1,000 cap)


def query_descriptors(index: vbow.ImageIndex, n_queries: int) -> list[np.ndarray]:
    """The scale benchmark's seeded query photos' descriptors, as the query path passes them."""
    from vbow.query import descriptors32
    paths, _ = query_paths()
    pick = np.sort(np.random.default_rng(0).choice(len(paths), n_queries, replace=False))
    feats, _ = cached_features([paths[i] for i in pick], index.config, n_jobs=1, progress=False)
    return [descriptors32(f.features) for f in feats if f is not None and len(f.features)]


def time_sizes(index: vbow.ImageIndex, descs: list[np.ndarray], rounds: int,
               force_split: bool) -> list[dict]:
    vocab, cfg = index.vocabulary, index.config
    if force_split:
        vocab.parallel_min_pairs = 1
    rows = []
    for size in SIZES:
        batch = [d[:size] if size else d for d in descs]
        times: dict[int, list[float]] = {1: [], 2: []}
        identical = True
        for r in range(rounds):
            for threads in ((1, 2) if r % 2 == 0 else (2, 1)):
                t = time.perf_counter()
                out = [vocab.quantise_multi(d, cfg.query_assignments, sigma=cfg.assignment_sigma,
                                            threads=threads) for d in batch]
                times[threads].append((time.perf_counter() - t) / len(batch) * 1e3)
                if threads == 2:
                    ref = [vocab.quantise_multi(d, cfg.query_assignments,
                                                sigma=cfg.assignment_sigma, threads=1) for d in batch]
                    identical &= all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                                     for a, b in zip(out, ref))
        one, two = float(np.median(times[1])), float(np.median(times[2]))
        rows.append({"descriptors_mean": round(float(np.mean([len(d) for d in batch])), 1),
                     "cut": size or None, "ms_one_thread": round(one, 3),
                     "ms_two_threads": round(two, 3), "ratio": round(two / one, 3),
                     "identical": bool(identical)})
        print(rows[-1], flush=True)
    return rows


def write_report(data: dict, out: Path) -> None:
    lines = [
        "# Query quantisation on one thread and two", "",
        f"Command: `{data['command']}`  ",
        f"Machine: {data['machine']}; usable cores {data['usable_cores']}; load average at the "
        f"start {data['load_average']}", "",
        f"{data['queries']} real query photos of the scale benchmark (features from its cache), "
        "each cut to its first n descriptors; `quantise_multi` with `threads=1` and `threads=2` "
        f"alternating over {data['rounds']} rounds in one process, median ms per query; "
        "\"identical\" compares every word and weight of the two.", "",
        "| vocabulary | descriptors (mean) | one thread ms | two threads ms | two / one | identical |",
        "|---|---|---|---|---|---|"]
    for name, rows in data["vocabularies"].items():
        for r in rows:
            lines.append(f"| {name} | {r['descriptors_mean']:.0f} | {r['ms_one_thread']:.2f} | "
                         f"{r['ms_two_threads']:.2f} | × {r['ratio']:.2f} | {r['identical']} |")
    lines += ["", "## Notes", "",
              "- `sift` splits from 800 descriptor-cell pairs (`KMeansVocabulary.parallel_min_pairs`),",
              "  400 descriptors at two probes. A dev run with the split from 512 pairs gained nothing",
              "  at 300 descriptors (not kept), so below about 400, handing half the cells to another",
              "  thread costs what it saves. Each thread's products release the GIL in OpenBLAS.",
              "- `orb` was forced to split here at every size. Its cell distances are numpy",
              "  popcounts over blocks, and two threads gain nothing, so the Hamming vocabulary never",
              "  splits (`parallel_min_pairs = None`).",
              "- A process pinned to one CPU (the edge benchmark's `taskset`) never splits: threads",
              "  are capped at the CPUs the process may run on (`vbow.concurrency.usable_cores`)."]
    (out / "quantise_threads.md").write_text("\n".join(lines) + "\n")
    (out / "quantise_threads.json").write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    if usable_cores() < 2:
        raise SystemExit("this benchmark compares one thread with two: it needs 2 usable cores")
    data = {"command": COMMAND, "machine": machine_description(), "usable_cores": usable_cores(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "queries": args.queries, "rounds": args.rounds, "vocabularies": {}}
    for name, force in (("sift", False), ("orb", True)):
        bundle = WORK / f"catalog-{name}-10000.vbow"
        if not (bundle / "manifest.json").exists():
            raise SystemExit(f"{bundle} is missing: run scale_bench.py / edge_bench.py first")
        index = vbow.ImageIndex.load(bundle)
        data["vocabularies"][name] = time_sizes(index, query_descriptors(index, args.queries),
                                                args.rounds, force)
    write_report(data, Path(args.out))


if __name__ == "__main__":
    main()
