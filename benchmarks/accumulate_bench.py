"""Accumulating a query's postings at a million images: in cache-sized blocks against whole-query
passes.

A query over the 1M-image catalog of ``scale_bench.py`` reads about 8M postings. Scoring them
(``vbow.search.accumulate.accumulate_ranges``) reads the postings, turns their term counts into
weights, decodes the document ids and adds ``weight x word weight`` into one score per image.
The forms compared, on the same queries, alternating query by query:

- **blocked** (the library's default): the query's ranges cut into blocks of
  ``BLOCK_POSTINGS`` postings; each block's arrays stay in cache between the steps and are added
  into the scores in place by scipy's compiled sparse kernel;
- **one block**: the same code with one block for the whole query (``BLOCK_POSTINGS`` set past
  any query), so every step is a pass through main memory;
- **blocked, np.add.at**: the blocks added by numpy's public ``np.add.at``, the fallback for a
  scipy without the kernel (``SCIPY_KERNEL = False``);
- **earlier form**: the code before blocking, kept below: whole-query arrays, a new
  ``scipy.sparse.csc_matrix`` product per query (with its format checks) or ``np.bincount``.

For each form: the ``score`` step as the library runs it (``QueryPlan.score``: words under the
postings budget, accumulation, cosine normalisation) with ``query_threads`` 1 and 2, and the
whole search without re-ranking (``search_features``, default threads). The scores of every
form must equal the default's to float32 rounding, and their top-10 lists must be the same.
Each query first runs once untimed (the reference scores; it also brings the query's postings
into memory), then every form in an order that rotates from query to query.

Run (after ``scale_bench.py --keep`` has left its 1M bundles in ``$VBOW_SCALE_WORK``)::

    python3 benchmarks/accumulate_bench.py

Writes ``results/accumulate.md`` and ``.json``; bundles that are absent are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one BLAS thread, as in scale_bench's measured processes (quantisation's small GEMMs)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feature_cache import cached_features  # noqa: E402
from scale_bench import WORK  # noqa: E402
from synthetic_catalog import query_paths  # noqa: E402

import vbow  # noqa: E402
import vbow.search.accumulate as acc  # noqa: E402
from vbow.eval.evaluate import machine_description  # noqa: E402
from vbow.search.postings import TF_BITS, burst_weights  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "python3 benchmarks/accumulate_bench.py"
BUNDLES = ("catalog-sift-1000000.vbow", "catalog-sift-he-1000000.vbow")


def earlier_accumulate_ranges(seg, starts, lengths, word_weight, n_docs, burstiness, *,
                              signatures=None, kernel=None, max_distance=-1):
    """``accumulate_ranges`` as it was before blocking (whole-query arrays)."""
    if signatures is not None:
        h = seg.hamming_distances(starts, lengths, signatures)
        post, h, lengths = seg.postings_within(starts, lengths, h, max_distance)
        tf_weight = burst_weights(post, burstiness)
        tf_weight *= kernel[h]
    else:
        post = seg.read(starts, lengths)
        tf_weight = burst_weights(post, burstiness)
    n = int(post.size)
    docs = (post >> np.uint32(TF_BITS)).view(np.int32)
    if (1 << 18) <= n < 1 << 31:
        from scipy.sparse import csc_matrix
        indptr = np.zeros(lengths.size + 1, dtype=np.int32)
        np.cumsum(lengths, out=indptr[1:])
        return np.asarray(csc_matrix((tf_weight, docs, indptr), shape=(n_docs, lengths.size))
                          @ word_weight, dtype=np.float32)
    weight = tf_weight * np.repeat(word_weight.astype(np.float64), lengths)
    return np.bincount(docs, weights=weight, minlength=n_docs).astype(np.float32)


DEFAULTS = {"BLOCK_POSTINGS": acc.BLOCK_POSTINGS, "SCIPY_KERNEL": acc.SCIPY_KERNEL,
            "accumulate_ranges": acc.accumulate_ranges}
FORMS = {
    "blocked": {},
    "one block": {"BLOCK_POSTINGS": 1 << 62},
    "blocked, np.add.at": {"SCIPY_KERNEL": False},
    "earlier form": {"accumulate_ranges": earlier_accumulate_ranges},
}


def use_form(name: str) -> None:
    for key, value in {**DEFAULTS, **FORMS[name]}.items():
        setattr(acc, key, value)


def run_bundle(bundle: Path, n_queries: int, rounds: int) -> dict:
    index = vbow.ImageIndex.load(bundle)
    cfg = index.config
    paths, _ = query_paths()
    rng = np.random.default_rng(0)   # the scale benchmark's sample, its first n_queries
    pick = np.sort(rng.choice(len(paths), min(200, len(paths)), replace=False))[:n_queries]
    feats, _ = cached_features([paths[i] for i in pick], vbow.get_config("sift"),
                               n_jobs=1, progress=False)
    feats = [f for f in feats if f is not None]
    with index.reading() as plan:
        bags = [plan.quantise(f.features) for f in feats]
        read = [plan.postings_read(b) for b in bags]
    for f in feats[:3]:                                         # warm the page cache
        index.search_features(f, 10, rerank=False)
    times = {name: {"score_1": [], "score_2": [], "search": []} for name in FORMS}
    worst_diff = {name: 0.0 for name in FORMS}
    same_top = {name: 0 for name in FORMS}
    names = list(FORMS)
    for r in range(rounds):
        for q, (f, bag) in enumerate(zip(feats, bags)):
            with index.reading() as plan:      # the reference, untimed: it also warms the pages
                reference = plan.score(bag.words, bag.weights, bag.signatures)
            ref_top = [m.key for m in index.search_features(f, 10, rerank=False)]
            shift = (q + r) % len(names)
            for name in names[shift:] + names[:shift]:
                use_form(name)
                try:
                    for threads in (1, 2):
                        index.config = cfg.replace(query_threads=threads)
                        with index.reading() as plan:
                            t = time.perf_counter()
                            scores = plan.score(bag.words, bag.weights, bag.signatures)
                            times[name][f"score_{threads}"].append(time.perf_counter() - t)
                    index.config = cfg
                    t = time.perf_counter()
                    found = index.search_features(f, 10, rerank=False)
                    times[name]["search"].append(time.perf_counter() - t)
                finally:
                    use_form("blocked")
                    index.config = cfg
                scale = max(float(np.abs(reference).max()), 1e-30)
                worst_diff[name] = max(worst_diff[name],
                                       float(np.abs(scores - reference).max()) / scale)
                same_top[name] += int([m.key for m in found] == ref_top)
    ms = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 2)  # noqa: E731
    forms = {}
    for name in FORMS:
        t = times[name]
        forms[name] = {k: {"p50": ms(v, 50), "p95": ms(v, 95)} for k, v in t.items()}
        forms[name]["max_relative_score_difference"] = worst_diff[name]
        forms[name]["same_top10"] = same_top[name]
    return {"bundle": bundle.name, "n_images": len(index),
            "hamming_embedding": bool(cfg.hamming_embedding), "n_queries": len(feats),
            "rounds": rounds, "postings_read_mean": round(float(np.mean(read))),
            "block_postings": DEFAULTS["BLOCK_POSTINGS"], "forms": forms}


def report(result: dict, out: Path) -> None:
    lines = ["# Accumulating postings at a million images: blocks against whole-query passes", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}", "",
             "See the docstring of `benchmarks/accumulate_bench.py` for the forms. The four forms "
             "run on the same queries, alternating query by query. `score` is "
             "`QueryPlan.score` (budget, accumulation, normalisation) on 1 and 2 threads; "
             "`search` is `search_features` without re-ranking (quantisation, scoring, fusion; "
             "default threads). Milliseconds per query, p50 / p95; the ratio is each form's "
             "p50 over the blocked form's.", ""]
    for b in result["bundles"]:
        he = "with Hamming embedding" if b["hamming_embedding"] else "TF-IDF"
        lines += [f"## `{b['bundle']}` ({b['n_images']:,} images, {he})", "",
                  f"{b['n_queries']} real query photos x {b['rounds']} rounds; "
                  f"{b['postings_read_mean']:,} postings read per query on average; blocks of "
                  f"{b['block_postings']:,} postings.", "",
                  "| form | score, 1 thread | score, 2 threads | search, no re-ranking | "
                  "score ratio, 1 thread | search ratio | same top 10 | largest score difference |",
                  "|---|---|---|---|---|---|---|---|"]
        base = b["forms"]["blocked"]
        for name, f in b["forms"].items():
            cell = lambda k: f"{f[k]['p50']} / {f[k]['p95']}"  # noqa: E731
            lines.append(
                f"| {name} | {cell('score_1')} | {cell('score_2')} | {cell('search')} | "
                f"{f['score_1']['p50'] / base['score_1']['p50']:.2f} | "
                f"{f['search']['p50'] / base['search']['p50']:.2f} | "
                f"{f['same_top10']} of {b['n_queries'] * b['rounds']} | "
                f"{f['max_relative_score_difference']:.1e} |")
        lines.append("")
    (out / "accumulate.md").write_text("\n".join(lines))
    (out / "accumulate.json").write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    bundles = [WORK / name for name in BUNDLES if (WORK / name / "manifest.json").exists()]
    if not bundles:
        sys.exit(f"no 1M bundle in {WORK}: run `python3 benchmarks/scale_bench.py --keep` first")
    result = {"command": COMMAND, "machine": machine_description(), "bundles": []}
    for bundle in bundles:
        print(f"{bundle.name} ...", file=sys.stderr, flush=True)
        result["bundles"].append(run_bundle(bundle, args.queries, args.rounds))
    report(result, Path(args.out))


if __name__ == "__main__":
    main()
