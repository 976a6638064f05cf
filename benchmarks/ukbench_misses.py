"""Where UKBench's missed views are: why N-S stops short of 4.

UKBench scores N-S, the views of the query's object among the top 4 (the query itself counted).
For each view of its object that a query misses, this reports where the search put it: its
rank in the top 50 (or beyond), whether geometric verification accepted it, and its
bag-of-words and colour scores, against the same scores of the wrong images that took its
place in the top 4. It runs the ``sift`` preset on the cached UKBench index of
``accuracy_bench.py`` (or builds one from the feature cache).

Run: ``python3 benchmarks/ukbench_misses.py``. Writes ``results/ukbench_misses.md`` and ``.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_bench import INDEX_CACHE, load_split  # noqa: E402
from feature_cache import cached_features  # noqa: E402

from vbow import ImageIndex, get_config  # noqa: E402
from vbow.eval.evaluate import machine_description  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMAND = "python3 benchmarks/ukbench_misses.py"
DATA = HERE.parent.parent / "shared" / "datasets"
DEPTH = 50


def main() -> None:
    if not (DATA / "ukbench").exists():
        sys.exit(f"{DATA / 'ukbench'} is missing: this benchmark needs the real dataset")
    split = load_split(DATA, "ukbench", "ukbench", False)
    config = get_config("sift")
    cached = INDEX_CACHE / "ukbench-sift"
    if (cached / "manifest.json").exists():
        index = ImageIndex.load(cached)
    else:
        cat, _ = cached_features(split.cat_paths, config)
        good = [i for i, f in enumerate(cat) if f is not None]
        index = ImageIndex(config).fit_features([cat[i] for i in good])
        index.add_features([cat[i] for i in good], [split.cat_keys[i] for i in good])
    group = dict(zip(split.cat_keys, split.cat_groups))
    qry, _ = cached_features(split.q_paths, config)
    hits = []
    missed, intruders = [], []
    pairs = {"bow": 0, "colour": 0, "n": 0}   # (wrong image in the top 4, missed view) of a query
    for q, g in zip(qry, split.q_groups):
        r = index.search_features(q, DEPTH)
        right = [group[m.key] == g for m in r.matches]
        hits.append(sum(right[:4]))
        q_missed, q_intruders = [], []
        for rank, (m, ok) in enumerate(zip(r.matches, right)):
            row = {"rank": rank, "verified": m.inliers > 0, "inliers": m.inliers,
                   "bow": m.bow_score, "colour": m.colour_score}
            if ok and rank >= 4:
                q_missed.append(row)
            elif not ok and rank < 4:
                q_intruders.append(row)
        for a in q_intruders:
            for b in q_missed:
                pairs["n"] += 1
                pairs["bow"] += a["bow"] > b["bow"]
                pairs["colour"] += a["colour"] > b["colour"]
        missed += q_missed + [{"rank": None}] * (4 - sum(right))   # not in the top DEPTH at all
        intruders += q_intruders
    in_depth = [m for m in missed if m["rank"] is not None]
    med = lambda rows, k: round(float(np.median([x[k] for x in rows])), 4) if rows else None  # noqa: E731
    data = {"command": COMMAND, "machine": machine_description(),
            "run_at": time.strftime("%Y-%m-%d %H:%M:%S"), "queries": len(hits),
            "ns": round(float(np.mean(hits)), 3), "missed_views": len(missed),
            "missed_beyond_top": len(missed) - len(in_depth), "missed_in_top": len(in_depth),
            "missed_in_top_verified": sum(m["verified"] for m in in_depth),
            "missed_rank_median": med(in_depth, "rank"),
            "missed_bow_median": med(in_depth, "bow"), "missed_colour_median": med(in_depth, "colour"),
            "intruders": len(intruders),
            "intruders_verified": sum(x["verified"] for x in intruders),
            "intruder_bow_median": med(intruders, "bow"),
            "intruder_colour_median": med(intruders, "colour"), "depth": DEPTH,
            "pairs_same_query": pairs["n"],
            "pairs_intruder_higher_bow": round(pairs["bow"] / max(pairs["n"], 1), 3),
            "pairs_intruder_higher_colour": round(pairs["colour"] / max(pairs["n"], 1), 3)}
    out = HERE / "results"
    (out / "ukbench_misses.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# UKBench: where the missed views are", "", f"Command: `{COMMAND}`  ",
             f"Machine: {data['machine']}", "",
             f"`sift` preset, all {data['queries']} queries, N-S {data['ns']}. A query misses a "
             f"view of its object when that view is not in its top 4.", "",
             "| | count | verified | median rank | median BoW score | median colour score |",
             "|---|---|---|---|---|---|",
             f"| missed views, in the top {DEPTH} | {data['missed_in_top']} | "
             f"{data['missed_in_top_verified']} | {data['missed_rank_median']} | "
             f"{data['missed_bow_median']} | {data['missed_colour_median']} |",
             f"| missed views, beyond the top {DEPTH} | {data['missed_beyond_top']} | | | | |",
             f"| wrong images in the top 4 | {data['intruders']} | {data['intruders_verified']} | | "
             f"{data['intruder_bow_median']} | {data['intruder_colour_median']} |", "",
             f"Within one query, {data['pairs_same_query']} (wrong image in the top 4, missed view "
             f"in the top {DEPTH}) pairs: the wrong image has the higher bag-of-words score in "
             f"{100 * data['pairs_intruder_higher_bow']:.0f} % of them and the higher colour "
             f"score in {100 * data['pairs_intruder_higher_colour']:.0f} %.", "",
             "Scores are the match's own (`Match.bow_score`, `Match.colour_score`), after query "
             "expansion; a view that verification did not accept is ranked by the fused first-"
             "stage score alone."]
    (out / "ukbench_misses.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
