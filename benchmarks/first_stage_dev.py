"""First stage without re-ranking: plain TF-IDF cosine against Hamming-embedding scoring.

A development benchmark for issue 12, cheap enough for a loaded 2-core machine: one protocol of
``accuracy_bench.py`` (same split, same scoring rules, catalog-side training only), one
vocabulary (``--n-words``, 4,096 by default, not the presets' 65,536), and for every setting the
recall@1 and mAP of the first stage alone (no verification, no query expansion), fused with
colour as the presets fuse it (``z(bow) + w z(colour)``, ``w`` in 0 / 1 / 5). Both scorers read
the same postings of the same vocabulary; the Hamming-embedding one weighs each term by the
selective kernel of ``he_threshold`` / ``he_alpha``. Writes ``results/first_stage_dev.md`` and
``.json``::

    nice -n 10 python3 benchmarks/first_stage_dev.py --protocol smvs_dvd+distractors
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_bench import PROTOCOLS, load_split, score  # noqa: E402
from feature_cache import cached_features  # noqa: E402

from vbow import get_config  # noqa: E402
from vbow.eval.evaluate import machine_description  # noqa: E402
from vbow.search.embedding import aggregate_query, selective_kernel  # noqa: E402
from vbow.search.fusion import FusedScores  # noqa: E402
from vbow.search.inverted_index import InvertedIndex  # noqa: E402
from vbow.search.weighting import bag_of_words, tfidf  # noqa: E402
from vbow.vocab.embedding import HammingEmbedding  # noqa: E402
from vbow.vocab.training import descriptors32  # noqa: E402
from vbow.vocab.training import make_vocabulary  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "nice -n 10 python3 benchmarks/first_stage_dev.py --protocol smvs_dvd+distractors"
SETTINGS = [(t, a) for t in (16, 20, 24, 28) for a in (1.0, 3.0)]
COLOUR_WEIGHTS = (0.0, 1.0, 5.0)


def run(protocol: str, n_words: int, datasets: Path) -> dict:
    folder, distractors = next((f, d) for name, f, d in PROTOCOLS if name == protocol)
    split = load_split(datasets, protocol, folder, distractors)
    cfg = get_config("sift", n_words=n_words)
    cat, _ = cached_features(split.cat_paths, cfg)
    qry, _ = cached_features(split.q_paths, cfg)
    good = [i for i, f in enumerate(cat) if f is not None]
    descs = [descriptors32(cat[i].features) for i in good]
    t = time.perf_counter()
    vocab = make_vocabulary("sift", n_words=n_words, probes=cfg.probes, random_state=0)
    vocab.fit([d for d in descs if len(d)], max_samples=cfg.max_training_descriptors)
    offsets = np.r_[0, np.cumsum([d.shape[0] for d in descs])].astype(np.int64)
    all_d = np.concatenate(descs)
    all_w = vocab.quantise(all_d).astype(np.int64)
    vocab.fit_idf(np.split(all_w, offsets[1:-1]))
    # thresholds from every catalog descriptor (the index's own embedding uses a 250k sample)
    he = HammingEmbedding(0).fit(vocab.words_, all_d, all_w)
    idf = vocab.idf_
    plain = InvertedIndex(vocab.n_words_)
    plain.add_words(offsets, all_w, idf)
    with_he = InvertedIndex(vocab.n_words_)
    with_he.add_words(offsets, all_w, idf, embedding=he.residuals(vocab.words_, all_d, all_w))
    build_s = time.perf_counter() - t
    colour = np.clip(np.rint(np.stack([cat[i].colour for i in good]) * 255), 0, 255).astype(np.float32)
    keys = np.array([split.cat_keys[i] for i in good])
    prepared = []
    for q in qry:
        if q is None:
            prepared.append(None)
            continue
        d = descriptors32(q.features)
        qw, qwt = vocab.quantise_multi(d, cfg.query_assignments, sigma=cfg.assignment_sigma)
        words, tf = bag_of_words(qw, qwt)
        sig = aggregate_query(qw, qwt, he.residuals(vocab.words_, d, qw), words)
        qc = np.clip(np.rint(q.colour * 255), 0, 255).astype(np.float32)
        prepared.append((words, tfidf(words, tf, idf, cfg.burstiness), sig,
                         (colour @ qc).astype(np.float64) / (255.0 * 255.0)))
    n = len(good)
    allowed, pool = np.ones(n, bool), np.arange(n)

    def evaluate(kernel: np.ndarray | None, weight: float) -> dict:
        rankings, ms = [], []
        for p in prepared:
            if p is None:
                rankings.append([])
                continue
            words, w, sig, col = p
            t0 = time.perf_counter()
            bow = plain.scores(words, w, idf) if kernel is None else \
                with_he.score_query(words, w, idf, signatures=sig, kernel=kernel)[0]
            ms.append((time.perf_counter() - t0) * 1000)
            rankings.append(keys[FusedScores(bow, allowed, n, pool, col, weight, True).best(10)].tolist())
        return {**score(split, rankings), "score_ms_p50": round(float(np.median(ms)), 2)}

    rows = []
    for w in COLOUR_WEIGHTS:
        rows.append({"scorer": "tf-idf", "he_threshold": None, "he_alpha": None, "colour_weight": w,
                     **evaluate(None, w)})
    for thr, alpha in SETTINGS:
        for w in COLOUR_WEIGHTS:
            rows.append({"scorer": "hamming embedding", "he_threshold": thr, "he_alpha": alpha,
                         "colour_weight": w, **evaluate(selective_kernel(thr, alpha), w)})
    return {"protocol": protocol, "n_words": int(vocab.n_words_), "n_catalog": n,
            "n_queries": len(split.q_paths), "postings": plain.n_postings,
            "build_seconds": round(build_s, 1), "rows": rows}


def write(result: dict, notes: list[str]) -> None:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    payload = {"command": COMMAND, "machine": machine_description(),
               "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
               "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
               "notes": notes, **result}
    (out / "first_stage_dev.json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = ["# First stage without re-ranking: TF-IDF vs Hamming embedding (dev benchmark)", "",
             f"Command: `{COMMAND}`  ", f"Machine: {payload['machine']}  ",
             f"Date: {payload['date']}; load average at the end {payload['load_average_at_end']}",
             "", f"Protocol `{result['protocol']}` ({result['n_catalog']} catalog images, "
             f"{result['n_queries']} queries), vocabulary of {result['n_words']} words trained on "
             "the catalog, recall@1 / mAP of the first stage alone (no re-ranking), fused with "
             "colour at weight w. See the docstring of `benchmarks/first_stage_dev.py`.", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines += ["| scorer | he_threshold | he_alpha | colour w | recall@1 | mAP |",
              "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['scorer']} | {r['he_threshold'] if r['he_threshold'] is not None else '–'} | "
                     f"{r['he_alpha'] if r['he_alpha'] is not None else '–'} | {r['colour_weight']:g} | "
                     f"{r['recall_at_1']:.3f} | {r['map']:.3f} |")
    (out / "first_stage_dev.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", default="smvs_dvd+distractors", choices=[p[0] for p in PROTOCOLS])
    parser.add_argument("--n-words", type=int, default=4096)
    parser.add_argument("--datasets", default=str(HERE.parent.parent / "shared" / "datasets"))
    args = parser.parse_args()
    write(run(args.protocol, args.n_words, Path(args.datasets)), [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
