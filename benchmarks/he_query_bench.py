"""Query signatures for Hamming embedding: one ``np.bincount`` against ``np.add.at``.

With ``hamming_embedding=True`` each distinct word of a query gets one signature: the signs of
the weighted sum of the residuals of the query's features assigned to it
(:func:`vbow.search.embedding.aggregate_query`). It sums with one ``np.bincount`` over (word, bit)
cells; the first version scattered with ``np.add.at``, which numpy runs one element at a time. Both are timed here side by side on query-shaped inputs (1,000
features, 3 assignments each, as ``query_assignments=3`` gives, over a 65,536-word vocabulary,
64-bit residuals), alternating, and their signatures compared.

Run: ``python3 benchmarks/he_query_bench.py``. Writes ``results/he_query.md`` and ``.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vbow.eval.evaluate import machine_description
from vbow.search.embedding import N_BITS, aggregate_query, pack_signs

COMMAND = "python3 benchmarks/he_query_bench.py"
HERE = Path(__file__).resolve().parent


def scatter_reference(words: np.ndarray, weights: np.ndarray, residuals: np.ndarray,
                      distinct: np.ndarray) -> np.ndarray:
    """The earlier form: ``np.add.at`` of the weighted residuals into one row per word."""
    w = words.reshape(-1)
    valid = w >= 0
    pos = np.searchsorted(distinct, w[valid])
    r = residuals.reshape(-1, N_BITS)[valid] * weights.reshape(-1)[valid, None]
    sums = np.zeros((distinct.size, N_BITS))
    np.add.at(sums, pos, r)
    return pack_signs(sums)


def main(n_features: int = 1000, k: int = 3, n_words: int = 65_536, n_queries: int = 50,
         rounds: int = 5) -> None:
    rng = np.random.default_rng(0)
    queries = []
    for _ in range(n_queries):
        # neighbouring words for one feature's k assignments, as a vocabulary's soft
        # assignment gives; some features share words
        base = rng.integers(0, n_words - k, n_features)
        words = (base[:, None] + np.arange(k)[None, :]).astype(np.int64)
        words[rng.random(words.shape) < 0.02] = -1
        weights = rng.random((n_features, k)).astype(np.float32)
        residuals = rng.standard_normal((n_features, k, N_BITS)).astype(np.float32)
        queries.append((words, weights, residuals, np.unique(words[words >= 0])))
    times: dict[str, list[float]] = {"bincount": [], "add_at": []}
    equal = True
    last: list[np.ndarray] = []
    for _ in range(rounds):
        for name, fn in (("bincount", aggregate_query), ("add_at", scatter_reference)):
            t = time.perf_counter()
            out = [fn(*q) for q in queries]
            times[name].append((time.perf_counter() - t) / n_queries * 1e3)
            if name == "add_at":
                equal &= all(np.array_equal(a, b) for a, b in zip(out, last))
            last = out
    ms = {name: round(float(np.median(v)), 3) for name, v in times.items()}
    data = {"command": COMMAND, "machine": machine_description(), "features": n_features,
            "assignments": k, "words": n_words, "queries": n_queries, "rounds": rounds,
            "ms_per_query_median": ms, "speedup": round(ms["add_at"] / ms["bincount"], 1),
            "signatures_equal": bool(equal)}
    md = f"""# Query signatures: one bincount against np.add.at

Command: `{COMMAND}`  
Machine: {data['machine']}

{n_queries} query-shaped inputs ({n_features:,} features × {k} assignments, {n_words:,} words,
{N_BITS}-bit residuals), both forms alternating over {rounds} rounds; the median per query:

| form | ms per query |
|---|---|
| `aggregate_query` (one `np.bincount`) | {ms['bincount']:.2f} |
| `np.add.at` scatter (the earlier form) | {ms['add_at']:.2f} |

- × {data['speedup']} faster; signatures identical: {data['signatures_equal']}.
"""
    out = HERE / "results"
    (out / "he_query.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "he_query.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
