"""Shortlist verification: the batched form against the earlier one-candidate-at-a-time loop.

For real queries of three protocols, each query's shortlist is taken exactly as a search takes
it (``ImageIndex.reading()``: quantise, score, fuse, verification order), then verified twice,
alternating:

* **loop** (the earlier form, kept here as the reference): for each candidate, its words and
  geometry from the store, its correspondences (``QueryWords.pairs_with``), every sampled
  single-pair hypothesis scored against every correspondence (``(h, m)`` arrays in chunks of
  64), and the robust fit (``fit_consistent``) on the best one's supporters;
* **batched** (``QueryPlan.verify``, what a search runs): all candidates' correspondences,
  hypotheses and bounds in one pass (``vbow.verify.hypotheses``), fits only where the best
  hypothesis can pass.

Both must give the same Verification for every candidate (inliers, transform, inlier pairs);
the report says whether they did. Indexes come from ``benchmarks/.cache/indexes`` (written by
``accuracy_bench.py``) or are built from the feature cache.

A second table sweeps ``block_correspondences`` (:func:`vbow.verify.shortlist.verify_shortlist`):
the batched form scores its candidates' hypotheses in blocks of at most that many
correspondences. Shortlists of 200 (the default shortlist from 10,000 images up), for the
``sift`` and ``orb`` presets, each block size alternating per query; every block size must give
the same Verification for every candidate as one block.

Run: ``python3 benchmarks/verify_bench.py``. Writes ``results/verify.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
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
from vbow.query import shortlist_sizes  # noqa: E402
from vbow.verify.shortlist import verify_shortlist  # noqa: E402
from vbow.verify.verification import (BLOCK_CORRESPONDENCES, QueryWords,  # noqa: E402
                                      Verification, fit_consistent, minimum_support)

HERE = Path(__file__).resolve().parent
COMMAND = "python3 benchmarks/verify_bench.py"
DATA = HERE.parent.parent / "shared" / "datasets"
PROTOCOLS = (("smvs_dvd+distractors", "smvs_dvd", True),
             ("grocery_packages+distractors", "grocery_packages", True),
             ("ukbench", "ukbench", False))


def dense_verify(query_kp: np.ndarray, db_kp: np.ndarray, pairs: np.ndarray,
                 db_size: tuple[int, int], model: str, threshold: float, min_inliers: int,
                 seed: int, tolerance: float = 0.08, max_hypotheses: int = 200) -> Verification:
    """The earlier kernel: all sampled hypotheses against all correspondences of one image."""
    m = pairs.shape[0]
    fail = Verification(0, None, np.zeros((0, 2), np.int64), m)
    need = minimum_support(model, min_inliers)
    if m < need:
        return fail
    q = query_kp[pairs[:, 0]].astype(np.float64)
    d = db_kp[pairs[:, 1]].astype(np.float64)
    hyp = np.arange(m) if m <= max_hypotheses else np.sort(
        np.random.default_rng(seed).choice(m, max_hypotheses, replace=False))
    ratio = np.log(np.maximum(q[:, 2], 1e-6) / np.maximum(d[:, 2], 1e-6))
    rot = np.deg2rad(q[:, 3] - d[:, 3])
    scale_of_hyp = q[hyp, 2] / np.maximum(d[hyp, 2], 1e-6)
    agree = np.zeros((hyp.size, m), bool)
    for lo in range(0, hyp.size, 64):
        h = hyp[lo:lo + 64]
        tol = max(threshold, float(np.median(tolerance * max(db_size) * scale_of_hyp[lo:lo + 64])))
        s = np.exp(ratio[h])[:, None]
        c, sn = np.cos(rot[h])[:, None], np.sin(rot[h])[:, None]
        dx = d[None, :, 0] - d[h, 0][:, None]
        dy = d[None, :, 1] - d[h, 1][:, None]
        px = q[h, 0][:, None] + s * (c * dx - sn * dy)
        py = q[h, 1][:, None] + s * (sn * dx + c * dy)
        close = (px - q[None, :, 0]) ** 2 + (py - q[None, :, 1]) ** 2 < tol * tol
        same_scale = np.abs(ratio[None, :] - ratio[h][:, None]) < np.log(2.0)
        turn = np.abs(np.mod(rot[None, :] - rot[h][:, None] + np.pi, 2 * np.pi) - np.pi)
        agree[lo:lo + 64] = close & same_scale & (turn < np.deg2rad(30.0))
    best = int(np.argmax(agree.sum(axis=1)))
    if agree[best].sum() < need:
        return fail
    return fit_consistent(q, d, pairs, agree[best], db_size, model, threshold, min_inliers)


def loop_verify(plan, features, matcher: QueryWords, docs: np.ndarray) -> dict[int, Verification]:
    cfg, store, size = plan.config, plan.state.store, plan.state.catalog.size
    out = {}
    for doc in docs.tolist():
        words, kp = store.get(doc)
        w, h = (int(x) for x in size[doc])
        v = dense_verify(features.keypoints, kp, matcher.pairs_with(words), (w, h), cfg.model,
                         cfg.ransac_threshold, cfg.min_inliers, cfg.random_state)
        if v.inliers > 0:
            out[doc] = v
    return out


def same(a: dict[int, Verification], b: dict[int, Verification]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if x.inliers != y.inliers or not np.array_equal(x.pairs, y.pairs) or \
                not np.array_equal(x.transform, y.transform):
            return False
    return True


def shortlists(index: ImageIndex, queries: list, shortlist: int | None = None) -> list[tuple]:
    """Each query's (features, matcher, shortlist ids), as ``QueryPlan.run`` picks them
    (``shortlist``: as the search argument of that name)."""
    out = []
    with index.reading() as plan:
        cfg = plan.config
        for q in queries:
            bag = plan.quantise(q.features)
            bow = plan.score(bag.words, bag.weights, bag.signatures)
            allowed = plan.allowed(None)
            fusion = plan.fuse(bow, q.colour, allowed)
            depth, n_verify = shortlist_sizes(cfg, plan.state.n_live, int(allowed.sum()), 10,
                                              True, shortlist)
            top = plan.verification_order(fusion, fusion.best(depth), n_verify)
            out.append((q.features, QueryWords(bag.assignments, max_fanout=cfg.max_fanout),
                        top[:n_verify]))
    return out


def protocol_index(name: str, folder: str, distractors: bool, preset: str):
    """The protocol's split and its ``preset`` index (cached, else built from cached features)."""
    split = load_split(DATA, name, folder, distractors)
    config = get_config(preset)
    cached = INDEX_CACHE / f"{name}-{preset}"
    if (cached / "manifest.json").exists():
        return split, ImageIndex.load(cached)
    cat, _ = cached_features(split.cat_paths, config)
    good = [i for i, f in enumerate(cat) if f is not None]
    index = ImageIndex(config).fit_features([cat[i] for i in good])
    index.add_features([cat[i] for i in good], [split.cat_keys[i] for i in good])
    index.save(cached)
    return split, index


def run_protocol(name: str, folder: str, distractors: bool, n_queries: int, rounds: int) -> dict:
    split, index = protocol_index(name, folder, distractors, "sift")
    config = index.config
    pick = np.sort(np.random.default_rng(0).choice(len(split.q_paths),
                                                   min(n_queries, len(split.q_paths)), replace=False))
    qry, _ = cached_features([split.q_paths[i] for i in pick.tolist()], config)
    work = shortlists(index, [q for q in qry if q is not None])
    times = {"loop": [], "batched": []}
    equal, verified, candidates = True, 0, 0
    with index.reading() as plan:
        for _ in range(rounds):
            for features, matcher, docs in work:
                t = time.perf_counter()
                a = loop_verify(plan, features, matcher, docs)
                times["loop"].append(time.perf_counter() - t)
                t = time.perf_counter()
                b = plan.verify(features, matcher, docs)
                times["batched"].append(time.perf_counter() - t)
                equal &= same(a, b)
                verified += len(b)
                candidates += docs.size
    ms = {k: {"p50": round(float(np.median(v)) * 1e3, 2), "mean": round(float(np.mean(v)) * 1e3, 2)}
          for k, v in times.items()}
    return {"protocol": name, "queries": len(work), "rounds": rounds,
            "candidates_per_query": round(candidates / (rounds * len(work)), 1),
            "verified_per_query": round(verified / (rounds * len(work)), 2),
            "ms_per_query": ms, "identical": bool(equal),
            "speedup_mean": round(ms["loop"]["mean"] / ms["batched"]["mean"], 2)}


#: one block for the whole shortlist
ONE_BLOCK = 2 ** 62
BLOCK_SIZES = (BLOCK_CORRESPONDENCES, 2048, 8192, 16384, ONE_BLOCK)
BLOCK_PROTOCOLS = (("grocery_packages+distractors", "grocery_packages", True),
                   ("smvs_dvd+distractors", "smvs_dvd", True))


def run_blocks(name: str, folder: str, distractors: bool, preset: str, n_queries: int,
               shortlist: int) -> dict:
    """Verification time of each block size in :data:`BLOCK_SIZES`, alternating per query."""
    split, index = protocol_index(name, folder, distractors, preset)
    pick = np.sort(np.random.default_rng(0).choice(len(split.q_paths),
                                                   min(n_queries, len(split.q_paths)), replace=False))
    qry, _ = cached_features([split.q_paths[i] for i in pick.tolist()], index.config)
    work = shortlists(index, [q for q in qry if q is not None], shortlist)
    times: dict[int, list[float]] = {b: [] for b in BLOCK_SIZES}
    equal, candidates, correspondences = True, 0, 0
    with index.reading() as plan:
        cfg, store, size = plan.config, plan.state.store, plan.state.catalog.size
        for i, (features, matcher, docs) in enumerate(work):
            found = {}
            for b in (BLOCK_SIZES if i % 2 else BLOCK_SIZES[::-1]):
                t = time.perf_counter()
                found[b] = verify_shortlist(features.keypoints, matcher, store, docs,
                                            np.asarray(size[docs]), model=cfg.model,
                                            threshold=cfg.ransac_threshold,
                                            min_inliers=cfg.min_inliers, seed=cfg.random_state,
                                            block_correspondences=b)
                times[b].append(time.perf_counter() - t)
            equal &= all(same(found[b], found[ONE_BLOCK]) for b in BLOCK_SIZES)
            candidates += docs.size
            offsets, words, _ = store.gather_words(docs)
            correspondences += int(matcher.pairs_with_many(offsets, words)[1][-1])
    mean = {b: float(np.mean(v)) * 1e3 for b, v in times.items()}
    return {"protocol": name, "preset": preset, "queries": len(work),
            "candidates_per_query": round(candidates / max(len(work), 1), 1),
            "correspondences_per_query": round(correspondences / max(len(work), 1)),
            "ms_mean": {str(b): round(v, 2) for b, v in mean.items()},
            "ms_p50": {str(b): round(float(np.median(v)) * 1e3, 2) for b, v in times.items()},
            "ratio_to_one_block": {str(b): round(mean[b] / mean[ONE_BLOCK], 3) for b in BLOCK_SIZES},
            "identical": bool(equal)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--block-shortlist", type=int, default=200,
                    help="shortlist of the block-size sweep")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs the real datasets")
    rows = [run_protocol(n, f, d, args.queries, args.rounds) for n, f, d in PROTOCOLS]
    block_rows = [run_blocks(n, f, d, preset, args.queries, args.block_shortlist)
                  for n, f, d in BLOCK_PROTOCOLS for preset in ("sift", "orb")]
    data = {"command": COMMAND, "machine": machine_description(), "rows": rows,
            "block_sizes": block_rows, "block_shortlist": args.block_shortlist,
            "run_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verify.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["# Shortlist verification: batched against the one-by-one loop", "",
             f"Command: `{COMMAND}`  ", f"Machine: {data['machine']}", "",
             "Real queries (a seeded sample), `sift` preset, the shortlist a search verifies; both "
             "forms alternate per query. Time is verification only (no quantisation, scoring or "
             "query expansion).", "",
             "| protocol | queries × rounds | candidates / query | verified / query | loop ms p50 / mean "
             "| batched ms p50 / mean | loop / batched (mean) | identical results |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, ba = r["ms_per_query"]["loop"], r["ms_per_query"]["batched"]
        lines.append(f"| {r['protocol']} | {r['queries']} × {r['rounds']} | "
                     f"{r['candidates_per_query']} | {r['verified_per_query']} | "
                     f"{lo['p50']} / {lo['mean']} | {ba['p50']} / {ba['mean']} | "
                     f"× {r['speedup_mean']} | {'yes' if r['identical'] else '**no**'} |")
    lines += ["", "The loop is the form verification had before it was batched, kept in this file "
                  "as the reference; the batched form must give the same Verification for every "
                  "candidate (inliers, transform, inlier pairs).",
              "", "## Block size (`block_correspondences`)", "",
              f"Shortlists of {args.block_shortlist}, the same queries; the batched form with "
              "hypotheses scored in blocks of at most this many correspondences, each size "
              "alternating per query. Mean verification ms per query, and its ratio to one block "
              f"for the whole shortlist. The default is {BLOCK_CORRESPONDENCES}.", "",
              "| protocol | preset | queries | candidates / query | correspondences / query | "
              + " | ".join("one block" if b == ONE_BLOCK else f"{b:,}" for b in BLOCK_SIZES)
              + " | identical results |",
              "|---|---|---|---|---|" + "---|" * len(BLOCK_SIZES) + "---|"]
    for r in block_rows:
        cells = " | ".join(f"{r['ms_mean'][str(b)]} (× {r['ratio_to_one_block'][str(b)]:.2f})"
                           for b in BLOCK_SIZES)
        lines.append(f"| {r['protocol']} | {r['preset']} | {r['queries']} | "
                     f"{r['candidates_per_query']} | {r['correspondences_per_query']:,} | {cells} | "
                     f"{'yes' if r['identical'] else '**no**'} |")
    (out / "verify.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
