"""Hamming distances of a query's postings: compared where they lie, against concatenated.

With Hamming embedding, scoring a query compares every posting it reads with the signature of
the query word it was read for (`vbow/search/inverted_index.py`, `score_query`). The earlier
form concatenated the postings' signatures (8 bytes each), repeated the query's signature per
posting, XORed the two arrays and counted bits. `PostingSegment.hamming_distances` compares
each word's signatures where they lie in the memory-mapped file, into one reused buffer. The
earlier form also read every posting, then kept those within the kernel's threshold and
counted them per word with ``np.add.reduceat`` over a mask of every posting; now only those are
read, and counted with one ``bincount`` over the kept ones.

On the 1M-image catalog of ``scale_bench.py --hamming-embedding --keep`` (real query photos,
features from the cache), both forms of each step run on the same ranges, alternating per
query; their outputs must be equal. The whole ``score`` step (postings, kernel, accumulation) is timed
too, for the stage's share.

Run: ``python3 benchmarks/he_scoring_bench.py`` (after the scale run above has kept its
bundles). Writes ``results/he_scoring.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feature_cache import cached_features  # noqa: E402
from scale_bench import WORK  # noqa: E402
from synthetic_catalog import query_paths  # noqa: E402

import vbow  # noqa: E402
from vbow.eval.evaluate import machine_description  # noqa: E402
from vbow.search.csr import gather_ranges  # noqa: E402
from vbow.search.embedding import selective_kernel  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "python3 benchmarks/he_scoring_bench.py"


def concatenated_distances(signatures: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                           query_signatures: np.ndarray) -> np.ndarray:
    """The earlier form: ``(sum(lengths),) uint8`` from the concatenated signatures."""
    flat = signatures.view(np.ndarray)
    if starts.size <= 4096:
        sig = np.concatenate([flat[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist())])
    else:
        sig = flat[gather_ranges(starts, lengths)]
    return np.bitwise_count(np.bitwise_xor(sig, np.repeat(query_signatures, lengths)))


def all_postings_then_kept(seg, starts: np.ndarray, lengths: np.ndarray, h: np.ndarray,
                           max_h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The earlier form of ``PostingSegment.postings_within``: every posting read, a mask, its
    count per range by ``reduceat``."""
    post = seg.read(starts, lengths)
    keep = h <= max_h
    counts = np.add.reduceat(keep, np.cumsum(lengths) - lengths).astype(np.int64)
    kept = np.flatnonzero(keep)
    return post[kept], h[kept], counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(WORK / "catalog-sift-he-1000000.vbow"))
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").exists():
        sys.exit(f"{bundle} is missing: run `python3 benchmarks/scale_bench.py --hamming-embedding "
                 f"--keep` first")
    index = vbow.ImageIndex.load(bundle)
    paths, _ = query_paths()
    feats, _ = cached_features(paths[:args.queries], vbow.get_config("sift"), n_jobs=1,
                               progress=False)
    times: dict[str, list[float]] = {"in_place": [], "concatenated": [], "kept_only": [],
                                     "all_then_kept": [], "score": []}
    equal = True
    postings_read = []
    with index.reading() as plan:
        postings = plan.state.postings
        if len(postings.segments) != 1:   # a saved bundle is one segment: one range set per query
            sys.exit(f"{bundle} holds {len(postings.segments)} posting segments; save it first")
        bags = [plan.quantise(f.features) for f in feats if f is not None]
        ranges = []
        for bag in bags:
            chosen = postings.select_words(bag.words, bag.weights, plan.state.idf,
                                           plan.config.max_postings)
            words, sig = np.asarray(bag.words)[chosen], bag.signatures[chosen]
            for seg in postings.segments:
                starts = seg.word_offsets[words]
                lengths = seg.word_offsets[words + 1] - starts
                nz = np.flatnonzero(lengths)
                ranges.append((seg, starts[nz], lengths[nz], sig[nz]))
            postings_read.append(int(ranges[-1][2].sum()))
        plan.score(bags[0].words, bags[0].weights, bags[0].signatures)     # warm the pages
        kernel = selective_kernel(plan.config.he_threshold, plan.config.he_alpha)
        max_h = int(np.flatnonzero(kernel > 0).max())
        kept_share: list[float] = []
        for _ in range(args.rounds):
            for bag, (seg, starts, lengths, sig) in zip(bags, ranges):
                t = time.perf_counter()
                a = seg.hamming_distances(starts, lengths, sig)
                times["in_place"].append(time.perf_counter() - t)
                t = time.perf_counter()
                b = concatenated_distances(seg.signatures, starts, lengths, sig)
                times["concatenated"].append(time.perf_counter() - t)
                equal &= bool(np.array_equal(a, b))
                t = time.perf_counter()
                c = seg.postings_within(starts, lengths, a, max_h)
                times["kept_only"].append(time.perf_counter() - t)
                t = time.perf_counter()
                d = all_postings_then_kept(seg, starts, lengths, a, max_h)
                times["all_then_kept"].append(time.perf_counter() - t)
                equal &= all(bool(np.array_equal(x, y)) for x, y in zip(c, d))
                kept_share.append(c[0].size / max(a.size, 1))
                t = time.perf_counter()
                plan.score(bag.words, bag.weights, bag.signatures)
                times["score"].append(time.perf_counter() - t)
    ms = {k: round(float(np.median(v)) * 1e3, 2) for k, v in times.items()}
    data = {"command": COMMAND, "machine": machine_description(),
            "run_at": time.strftime("%Y-%m-%d %H:%M:%S"), "bundle": bundle.name,
            "n_images": int(plan.state.n_live), "queries": len(bags), "rounds": args.rounds,
            "postings_read_mean": round(float(np.mean(postings_read))),
            "kept_share_mean": round(float(np.mean(kept_share)), 4),
            "median_ms": ms, "concatenated_over_in_place": round(ms["concatenated"] / ms["in_place"], 2),
            "all_then_kept_over_kept_only": round(ms["all_then_kept"] / ms["kept_only"], 2),
            "score_ms_with_earlier_forms": round(ms["score"] + ms["concatenated"] - ms["in_place"]
                                                 + ms["all_then_kept"] - ms["kept_only"], 2),
            "identical": equal}
    out = HERE / "results"
    (out / "he_scoring.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# Hamming distances of a query's postings: in place against concatenated", "",
             f"Command: `{COMMAND}`  ", f"Machine: {data['machine']}", "",
             f"`{data['bundle']}` ({data['n_images']:,} images, `sift` with Hamming embedding), "
             f"{data['queries']} real query photos × {data['rounds']} rounds, both forms alternating "
             f"on the same ranges; {data['postings_read_mean']:,} postings read per query on average. "
             "Medians per query:", "",
             "| step | ms |", "|---|---|",
             f"| distances, in place (`PostingSegment.hamming_distances`) | {ms['in_place']} |",
             f"| distances, concatenated (the earlier form) | {ms['concatenated']} |",
             f"| postings within the threshold and their count per word: only they read, "
             f"counted by `bincount` (`PostingSegment.postings_within`) | {ms['kept_only']} |",
             f"| the same from every posting read, counted by `reduceat` over a mask (the "
             f"earlier form) | {ms['all_then_kept']} |",
             f"| the whole `score` step now (postings, distances, kernel, accumulation) | {ms['score']} |",
             "",
             f"- Distances × {data['concatenated_over_in_place']}, postings × "
             f"{data['all_then_kept_over_kept_only']}; {100 * data['kept_share_mean']:.1f} % of the "
             f"postings read are within the threshold (Hamming distance ≤ {max_h}).",
             f"- With both earlier forms the `score` step would take about "
             f"{data['score_ms_with_earlier_forms']} ms (its time now plus the two differences).",
             f"- Outputs identical: {'yes' if equal else 'NO'}."]
    (out / "he_scoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
