"""Postings signatures from per-feature signatures: bit majority against summing +-1 rows.

With ``hamming_embedding=True`` every posting carries the bitwise majority of its features'
64-bit signatures. ``InvertedIndex.add_words(signatures=...)`` computes it directly: a posting
with one feature copies that signature, and only the features of postings with repeats are
unpacked. The earlier path, ``embedding=signs_of(signatures)``, expanded every feature to a
``(64,) float32`` row (256 bytes) first. Both are timed on one batch of 50,000 synthetic images
of the scale benchmark's catalog (``benchmarks/synthetic_catalog.py``), side by side in one
process, and their signatures compared.

Run: ``python3 benchmarks/he_postings_bench.py``. Writes ``results/he_postings.md`` and ``.json``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic_catalog import SyntheticCatalog, real_stats  # noqa: E402

from vbow.eval.evaluate import machine_description  # noqa: E402
from vbow.search.embedding import signs_of  # noqa: E402
from vbow.search.inverted_index import InvertedIndex  # noqa: E402

COMMAND = "python3 benchmarks/he_postings_bench.py"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    stats = real_stats("sift")
    n_words = int(stats.words.max()) + 1
    batch = SyntheticCatalog(stats, n_words, seed=1).batch(0, 50_000)
    counts = np.array([w.size for w in batch["words"]], np.int64)
    offsets = np.r_[0, np.cumsum(counts)]
    words = np.concatenate(batch["words"])
    sig = np.concatenate(batch["signatures"])
    idf = np.ones(n_words, np.float32)
    base = _peak_mib()
    t = time.perf_counter()
    majority = InvertedIndex(n_words)
    majority.add_words(offsets, words, idf, signatures=sig)
    t_major, peak_major = time.perf_counter() - t, _peak_mib()
    t = time.perf_counter()
    summed = InvertedIndex(n_words)
    summed.add_words(offsets, words, idf, embedding=signs_of(sig))
    t_sum, peak_sum = time.perf_counter() - t, _peak_mib()
    equal = bool(np.array_equal(majority.segments[0].signatures, summed.segments[0].signatures))
    data = {"command": COMMAND, "machine": machine_description(), "images": 50_000,
            "features": int(words.size), "postings": int(majority.n_postings),
            "seconds": {"majority": round(t_major, 2), "signs_of": round(t_sum, 2)},
            "speedup": round(t_sum / t_major, 2),
            "peak_rss_mib": {"before": round(base), "after_majority": round(peak_major),
                             "after_signs_of": round(peak_sum)},
            "signatures_equal": equal}
    md = f"""# Postings signatures: bit majority against summed signs

Command: `{COMMAND}`  
Machine: {data['machine']}

One `add_words` batch of 50,000 synthetic images ({data['features']:,} features,
{data['postings']:,} postings), both ways in one process, majority first:

| path | seconds | peak RSS after (MiB) |
|---|---|---|
| `signatures=` (bit majority) | {t_major:.2f} | {peak_major:.0f} |
| `embedding=signs_of(...)` | {t_sum:.2f} | {peak_sum:.0f} |

- × {data['speedup']} faster. Peak RSS was {base:.0f} MiB before either path ran (the batch and the
  real statistics). The peak is a high-water mark, so the second row counts whatever the first
  left behind, plus the `(F, 64) float32` array.
- Signatures identical: {equal}.
"""
    out = HERE / "results"
    (out / "he_postings.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "he_postings.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
