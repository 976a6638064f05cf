"""Scale benchmark (issue 4): synthetic catalogs of 10k, 100k and 1M images built from real word
statistics, queried with real photos.

Regenerate (writes ``benchmarks/results/scale.md`` and ``scale.json``)::

    nice -n 10 python3 benchmarks/scale_bench.py

With ``--hamming-embedding`` the same catalogs are built with ``hamming_embedding=True`` (each
feature's signature from ``benchmarks/synthetic_catalog.py``, given to ``add_quantised``) and
the results go to ``scale_he.md`` and ``scale_he.json``; the build-throughput and term-count
comparisons, which do not depend on it, are left to the plain run.

For each catalog size, in separate processes:

1. **build**: the real catalog images of ``../shared/datasets`` (features from the shared feature
   cache, quantised with a 65,536-word vocabulary trained on them, see
   ``benchmarks/synthetic_catalog.py``) are indexed unmodified, then synthetic images are
   generated (word ids remapped inside frequency bands, counts resampled) and added in batches
   of 50,000 through the public ``ImageIndex.add_quantised``, then ``ImageIndex.save``. Build
   time counts ``add_quantised`` and ``save``, not the generation of the synthetic images.
2. **query**: a fresh process opens the saved bundle (``ImageIndex.load``, memory-mapped) and
   runs real query photos (smvs_dvd and grocery_packages queries, features from the cache)
   through ``search_features``, without re-ranking and with re-ranking of a 100-image shortlist
   against the stored geometry (with the default early stop in verification, and alternating
   with ``verify_all=True``, which verifies the whole shortlist). It reports the latencies,
   the postings read per query, recall@1 of the real queries (their true matches are among the real images inside the catalog), the
   time to open, and its resident memory (peak ``VmHWM`` and current ``VmRSS``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORK = Path(os.environ.get("VBOW_SCALE_WORK", "/tmp/vbow-scale"))
BATCH = 50_000


def _proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build(n: int, bundle: Path, preset: str, overrides: dict, hamming_embedding: bool = False) -> dict:
    """Build and save a catalog of ``n`` images; returns timings and sizes."""
    from synthetic_catalog import SyntheticCatalog, real_batch, real_stats
    stats = real_stats(preset, **overrides)
    index = stats.empty_index(preset, **overrides, **({"hamming_embedding": True} if hamming_embedding else {}))
    sig = lambda b: {"signatures": b["signatures"]} if hamming_embedding else {}  # noqa: E731
    t_add = t_gen = 0.0
    n_real = min(n, stats.n_images)
    real = real_batch(stats)
    real = {k: v[:n_real] for k, v in real.items()}
    t = time.perf_counter()
    index.add_quantised(real["words"], real["keypoints"], real["colours"], real["image_sizes"],
                        real["keys"], scales=real["scales"], **sig(real))
    t_add += time.perf_counter() - t
    gen = SyntheticCatalog(stats, index.vocabulary.n_words_, seed=1)
    done = n_real
    while done < n:
        stop = min(n, done + BATCH)
        t = time.perf_counter()
        b = gen.batch(done, stop)
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        index.add_quantised(b["words"], b["keypoints"], b["colours"], b["image_sizes"], b["keys"],
                            scales=b["scales"], **sig(b))
        t_add += time.perf_counter() - t
        done = stop
        print(f"  built {done}/{n}  add {t_add:.1f}s  generate {t_gen:.1f}s  "
              f"rss {_proc_status('VmRSS') / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    n_features = int(sum(np.shape(w)[0] for w in real["words"]))  # real part only, for the log
    t = time.perf_counter()
    index.save(bundle)
    t_save = time.perf_counter() - t
    # only the files of the generation just saved: saving over an existing bundle keeps the
    # generation it replaced (for readers that opened it a moment ago) until the next save
    generation = json.loads((bundle / "manifest.json").read_text())["generation"]
    sizes = {}
    for f in bundle.iterdir():
        name, _, rest = f.name.partition(".g")
        if f.name == "manifest.json" or rest == f"{generation}.npy":
            sizes[name] = sizes.get(name, 0) + f.stat().st_size
    postings = sum(v for k, v in sizes.items() if k.startswith("postings_"))
    geometry = sum(v for k, v in sizes.items() if k.startswith("kp_"))
    vocab = sum(v for k, v in sizes.items() if k.startswith("vocab_"))
    total = sum(sizes.values())
    return {"n_images": n, "n_real_images": n_real, "add_seconds": round(t_add, 2),
            "save_seconds": round(t_save, 2), "generate_seconds": round(t_gen, 2),
            "build_seconds": round(t_add + t_save, 2),
            "build_images_per_minute": round(n / (t_add + t_save) * 60),
            "build_peak_rss_bytes": _proc_status("VmHWM"),
            "bytes_total": total, "bytes_vocabulary": vocab,
            "bytes_per_image_postings": round(postings / n, 1),
            "bytes_per_image_geometry": round(geometry / n, 1),
            "bytes_per_image_postings_geometry": round((postings + geometry) / n, 1),
            "bytes_per_image_all_but_vocabulary": round((total - vocab) / n, 1),
            "n_postings": index.stats()["postings"], "real_features_logged": n_features}


def query(bundle: Path, preset: str, n_queries: int, shortlist: int, overrides: dict,
          max_postings: int | None) -> dict:
    """Open the bundle and run the real queries; returns latencies and memory."""
    rss_before = _proc_status("VmRSS")
    import vbow
    t = time.perf_counter()
    index = vbow.ImageIndex.load(bundle)
    t_open = time.perf_counter() - t
    rss_open = _proc_status("VmRSS")
    from feature_cache import cached_features
    from synthetic_catalog import query_paths
    paths, groups = query_paths()
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(paths), min(n_queries, len(paths)), replace=False))
    feats, _ = cached_features([paths[i] for i in pick], vbow.get_config(preset, **overrides), n_jobs=1,
                               progress=False)
    q_groups = [groups[i] for i in pick]
    cfg = index.config
    if max_postings is not None:  # None: the saved config's budget; 0: no budget
        index.config = cfg = cfg.replace(max_postings=max_postings or None)
    lat = {False: [], True: []}
    # the same no-re-rank searches on the calling thread only (query_threads=1), alternating
    # with the default in order, so the ratio is measured side by side
    one_thread = cfg.replace(query_threads=1)
    lat_one: list[float] = []
    lat_all: list[float] = []
    verified: dict[bool, list[int]] = {False: [], True: []}
    hits_all = 0
    parts = {False: [], True: []}
    touched, hits = [], {False: 0, True: 0}
    per_ds: dict[str, list[int]] = {}
    n_done = 0
    for f, g in zip(feats, q_groups):
        if f is None:
            continue
        for rr in (False, True):
            if not rr:
                for c in ((one_thread, cfg) if n_done % 2 else (cfg, one_thread)):
                    index.config = c
                    t = time.perf_counter()
                    found = index.search_features(f, 10, rerank=False)
                    (lat_one if c is one_thread else lat[False]).append(time.perf_counter() - t)
                    if c is cfg:
                        r = found
                index.config = cfg
            else:
                # the default (verification stops at a clear winner) and verify_all=True
                # (the whole shortlist), alternating in order, so the ratio is side by side
                for every in ((True, False) if n_done % 2 else (False, True)):
                    t = time.perf_counter()
                    found = index.search_features(f, 10, rerank=True, shortlist=shortlist,
                                                  verify_all=every)
                    (lat_all if every else lat[True]).append(time.perf_counter() - t)
                    verified[every].append(found.n_verified)
                    if every:
                        best_all = found.best.key if len(found) else ""
                        hits_all += int(_group_of(index, best_all) == g)
                    else:
                        r = found
            parts[rr].append({k: v for k, v in r.timings.items()})
            best = r.best.key if len(r) else ""
            ok = int(_group_of(index, best) == g)
            hits[rr] += ok
            ds = g.split("/", 1)[0]
            per_ds.setdefault(f"{ds}_{'rerank' if rr else 'no_rerank'}", []).append(ok)
        with index.reading() as plan:
            touched.append(plan.postings_read(plan.quantise(f.features)))
        n_done += 1
    pct = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 2)  # noqa: E731
    warm = slice(5, None) if n_done > 20 else slice(None)
    out = {"open_seconds": round(t_open, 4), "n_queries": n_done,
           "first_query_ms_no_rerank": round(lat[False][0] * 1000, 2),
           "query_ms_p50_no_rerank": pct(lat[False][warm], 50),
           "query_ms_p95_no_rerank": pct(lat[False][warm], 95),
           "query_threads": cfg.query_threads,
           "query_ms_p50_no_rerank_one_thread": pct(lat_one[warm], 50),
           "query_ms_p95_no_rerank_one_thread": pct(lat_one[warm], 95),
           "query_ms_p50_rerank": pct(lat[True][warm], 50),
           "query_ms_p95_rerank": pct(lat[True][warm], 95),
           "rerank_shortlist": shortlist,
           "query_ms_p50_rerank_verify_all": pct(lat_all[warm], 50),
           "query_ms_p95_rerank_verify_all": pct(lat_all[warm], 95),
           "recall_at_1_rerank_verify_all": round(hits_all / max(n_done, 1), 4),
           "verified_per_query_mean": round(float(np.mean(verified[False])), 1),
           "verified_per_query_mean_verify_all": round(float(np.mean(verified[True])), 1),
           "queries_stopped_after_first_round": int(np.sum(np.asarray(verified[False]) <
                                                           np.asarray(verified[True]))),
           "postings_read_per_query_mean": round(float(np.mean(touched))),
           "postings_read_per_query_p95": round(float(np.percentile(touched, 95))),
           "recall_at_1_no_rerank": round(hits[False] / max(n_done, 1), 4),
           "recall_at_1_rerank": round(hits[True] / max(n_done, 1), 4),
           "recall_at_1_by_dataset": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_ds.items())},
           "stage_ms_mean_no_rerank": {k: round(float(np.mean([p.get(k, 0) for p in parts[False]])) * 1000, 2)
                                       for k in ("quantise", "score", "rerank")},
           "stage_ms_mean_rerank": {k: round(float(np.mean([p.get(k, 0) for p in parts[True]])) * 1000, 2)
                                    for k in ("quantise", "score", "rerank")},
           "rss_bytes_before_import": rss_before, "rss_bytes_after_open": rss_open,
           "rss_bytes_after_queries": _proc_status("VmRSS"),
           "rss_anon_bytes_after_queries": _proc_status("RssAnon"),
           "rss_file_bytes_after_queries": _proc_status("RssFile"),
           "peak_rss_bytes": _proc_status("VmHWM"),
           "max_postings": cfg.max_postings}
    return out


def build_ratio(preset: str, n_images: int, chunks: tuple[int, ...] = (100, 20)) -> dict:
    """Index build over real images against raw OpenCV, side by side in one process.

    The catalog images (every other ukbench image, then the other sets) are indexed with
    ``ImageIndex.add(paths)`` (decode, features, colour, quantise, index; ``n_jobs=1``) into an
    index whose vocabulary is already trained (vocabulary training is a one-off, reported
    separately by ``core_bench.py``). Raw OpenCV and vbow alternate on slices of ``chunk``
    images so that a busy neighbour on the other core slows both alike; every file is read once
    before timing so both find it in the page cache.

    Each slice size in ``chunks`` is measured with a fresh index. ``add`` quantises each call's
    descriptors in one batch (up to 200,000), and the vocabulary's loop over its 256 cells
    is a fixed cost per call, so small slices charge vbow more per image than a catalog build
    does: 100 images (about 56,000 descriptors) is close to how ``build`` and ``add`` batch a
    catalog, 20 shows the cost of adding images a few at a time. The first size is the
    headline.
    """
    import cv2
    from core_bench import raw_opencv
    from synthetic_catalog import catalog_paths, real_stats
    cv2.setNumThreads(1)
    stats = real_stats(preset)
    paths = catalog_paths()[0][:n_images]
    for p in paths:
        Path(p).read_bytes()
    by_chunk = {}
    for chunk in chunks:
        index = stats.empty_index(preset, n_jobs=1)
        t_raw = t_vbow = 0.0
        for s in range(0, len(paths), chunk):
            part = paths[s:s + chunk]
            t_raw += raw_opencv(part, index.config)
            t = time.perf_counter()
            index.add(part, keys=part, progress=False)
            t_vbow += time.perf_counter() - t
        by_chunk[chunk] = (t_raw, t_vbow)
    t_raw, t_vbow = by_chunk[chunks[0]]
    # building from extracted features (quantise + index, no image work): the cached features
    from feature_cache import cached_features
    feats, _ = cached_features(paths, index.config, n_jobs=1, progress=False)
    good = [i for i, f in enumerate(feats) if f is not None]
    fresh = stats.empty_index(preset)
    t = time.perf_counter()
    fresh.add_features([feats[i] for i in good], [f"f{i}" for i in good])
    t_feat = time.perf_counter() - t
    return {"n_images": len(paths), "raw_opencv_images_per_s": round(len(paths) / t_raw, 2),
            "add_features_images_per_minute": round(len(good) / t_feat * 60),
            "add_features_descriptors_per_image": round(
                float(np.mean([len(feats[i].features) for i in good])), 1),
            "vbow_add_images_per_s": round(len(paths) / t_vbow, 2),
            "build_throughput_ratio": round(t_raw / t_vbow, 3), "chunk": chunks[0],
            "ratio_by_chunk": {str(c): round(r / v, 3) for c, (r, v) in by_chunk.items()}}


#: The modules that read the packed postings' tf field by name (the tf-cap emulation patches all).
_TF_FIELD_MODULES = ("vbow.search.postings", "vbow.search.inverted_index", "vbow.search.accumulate",
                     "vbow.query")


def _tf_field() -> tuple[int, int]:
    """The tf field's width in bits and its cap, as the postings module has them now."""
    import vbow.search.postings as postings
    return postings.TF_BITS, postings.TF_CAP


def _set_tf_field(bits: int, cap: int) -> None:
    """Widen or restore the tf field of packed postings in every module that reads it (the
    benchmark's emulation of format 1's 255 cap; nothing saved with it)."""
    import importlib
    values = {"TF_BITS": bits, "TF_CAP": cap, "TF_MASK": np.uint32((1 << bits) - 1),
              "MAX_DOCS": 1 << (32 - bits)}
    for name in _TF_FIELD_MODULES:
        module = importlib.import_module(name)
        for attr, value in values.items():
            if hasattr(module, attr):
                setattr(module, attr, value)


def tf_cap_accuracy(preset: str) -> dict:
    """Accuracy cost of storing term counts capped at ``TF_CAP`` (2 bits in each posting)
    instead of at 255 (format 1), on real datasets with one vocabulary and the same features:
    smvs_dvd + both distractor sets (recall@1, mAP@10) and ukbench (N-S, recall@1), with and
    without re-ranking. The 255 cap is emulated by widening the tf field of the packed postings
    to 8 bits for the comparison run."""
    import vbow
    from feature_cache import cached_features
    from synthetic_catalog import DATASETS, real_stats
    from vbow.eval.datasets import load_source
    from vbow.eval.evaluate import catalog_of, score_rankings
    stats = real_stats(preset)
    config = vbow.get_config(preset)
    out: dict = {}
    protocols = {"smvs_dvd+distractors": ("smvs_dvd", ["distractors_products", "distractors_photos"]),
                 "ukbench": ("ukbench", [])}
    saved = _tf_field()
    try:
        for name, (ds_name, distractors) in protocols.items():
            ds = load_source(DATASETS / ds_name)
            paths, keys, groups = catalog_of(ds, [DATASETS / d for d in distractors])
            feats, _ = cached_features(paths, config, n_jobs=1, progress=False)
            good = [i for i, f in enumerate(feats) if f is not None]
            q_paths = [str(im.path) for im in ds.queries]
            q_feats, _ = cached_features(q_paths, config, n_jobs=1, progress=False)
            key_of_path = dict(zip(paths, keys))
            for bits in (2, 8):
                _set_tf_field(bits, 4 if bits == 2 else 255)
                index = stats.empty_index(preset)
                index.add_features([feats[i] for i in good], [keys[i] for i in good])
                for rerank in (False, True):
                    rankings = [index.search_features(q, 10, rerank=rerank).keys if q is not None else []
                                for q in q_feats]
                    sc = score_rankings(rankings, [key_of_path.get(p, "") for p in q_paths],
                                        [im.group for im in ds.queries], dict(zip(keys, groups)),
                                        ds.has_both)
                    out[f"{name} tf_cap={_tf_field()[1]} rerank={rerank}"] = \
                        {k: (round(v, 4) if v is not None else None) for k, v in sc.items()}
                    print(name, bits, rerank, sc, file=sys.stderr, flush=True)
    finally:
        _set_tf_field(*saved)
    return out


NOTES = """## Notes

- **Load.** The recorded run had the machine to itself (no other benchmark running). Every
  measured process runs under `nice -n 10` with one BLAS/OpenMP thread (multi-threaded OpenBLAS
  made the small query-time GEMMs ~10x slower when the other core was busy). On this shared
  virtual machine latencies still vary from run to run by 10-30 %; earlier runs with another
  benchmark on the other core were that much slower.
- **Memory.** `rss_mib_after_queries` counts the pages of the memory-mapped index the queries
  touched (file-backed page cache, shared between processes and reclaimable);
  `rss_anon_mib_after_queries` is the process's own memory. Opening maps the files and reads
  each once for its CRC-32 (`open_seconds`), so it depends on the page cache: right after a
  build the 1M bundle opens in about 2.5 s; a `--reuse` run after other bundles were read
  finds it on disk (6–9 s in the 2026-12-04 runs).
- **Bytes per image.** The real SIFT features average 258 per image (640 px, contrast threshold
  0.04), so geometry costs 8 B x 258 and postings 4 B per distinct word. At the 1,000-feature cap
  an image would cost about 8 KB of geometry and 3.5 KB of postings (11.5 KB), still within 12 KB.
  Postings are 4 bytes (`doc << 2 | min(tf, 4) - 1`, format 2); keypoints 8 bytes (word uint16,
  x/y uint16 at 1/16 px, log-scale and angle uint8).
- **Build.** "Build" is `add_quantised` + `save` (the synthetic generation is timed separately
  and excluded). Postings are built per batch with one radix argsort of the batch's word ids,
  segments are merged straight into the output file at save (no merged copy in memory).
- **Recall.** The true match of each real query is one of the 4,269 real images inside the
  catalog. grocery_packages queries (shelf photos of 31 products) are hard for every method;
  smvs_dvd is the reference protocol. The postings budget skips the long lists of frequent,
  low-IDF words first; the sweep above shows what each budget keeps of the recall of reading
  every posting, and at what latency.
- **Scoring.** A query's postings are gathered as contiguous slices of the memory-mapped
  postings; their term weights are computed from the count code in each posting's low bits
  (numpy only; the search core never imports OpenCV). From 262,144 postings on, they are
  scored in blocks of 262,144, each added in place into one float32 vector by scipy's compiled
  sparse kernel, so a block's arrays stay in cache (`vbow.search.accumulate`; blocks against
  whole-query passes, side by side: `results/accumulate.md`); smaller queries use one
  `np.bincount`. Past that, the work per image is one comparison pass that finds the colour
  pool (the 5,000 best by words, see `vbow/search/fusion.py`); both scores are standardised
  over the pool, and rankings look at the pool only.
- **Fusion at scale.** Until 2026-12-04 the word scores were standardised over every live
  image. Most images of a large catalog share no word with the query, so the spread shrank and
  a true match's z-score grew with the catalog, outvoting colour and the inliers added to it.
  Standardised over the pool, recall@1 at 1M went from 0.215 / 0.685 (no re-ranking /
  re-ranked, the previous `scale.md`) to the figures above; catalogs up to 5,000 images
  (every `accuracy.md` protocol) are unchanged.
- **Growth.** `stage_ms_mean_no_rerank` in `scale.json` splits a query into quantising
  (the same at every size) and scoring (postings, fusion, ranking). Scoring costs
  a little more per posting read at 1M than at 100k: the per-image score array (4 MB) no
  longer fits the 2 MB L2 cache, so the scattered adds into it slow down, while gathering the
  postings and weighting them grow linearly.
- **Re-ranking.** The shortlist is verified in at most two rounds
  (`vbow/verify/shortlist.py`: the correspondences of all of a round's candidates at once,
  their hypotheses and bounds in blocks of at most 4,096 correspondences, then one robust fit
  per candidate that can pass): the first 32 candidates, then the rest unless one of the 32 is
  clearly verified (`vbow/verify/rounds.py`; see "Early stop in verification"). `stage_ms_mean_rerank` in `scale.json` gives the re-rank stage: it
  also re-scores the query expanded with the verified images' words, so the stage mean grows
  with the catalog although the shortlist does not. Where the postings budget reads every
  word of the expanded query (10,000 and 100,000 images), only the verified images' words are
  read and added to the query's first-stage scores; at 1M the budget binds and the expanded
  query is scored whole (`QueryPlan.expanded_ranking`).
"""

NOTES_HE = """## Notes

- Same catalogs, queries, budgets and machine conditions as `scale.md` (see its notes), built
  with `hamming_embedding=True`. Each posting also carries a 64-bit signature (8 B). Query words
  are scored with the selective kernel of the Hamming distance between the query's and the
  posting's signatures (`vbow/search/embedding.py`).
- Synthetic images keep their source features' signatures (`benchmarks/synthetic_catalog.py`).
  Where a word id was remapped, the signature was computed for another word, so it matches the
  new word's query signatures no better than an unrelated image's would.
"""


_GROUPS: dict[str, str] = {}


def _group_of(index, key: str) -> str:
    """Group of a real catalog key (dataset/group), "" for synthetic images and distractors."""
    if not _GROUPS:
        from synthetic_catalog import catalog_paths
        _, keys, groups = catalog_paths()
        _GROUPS.update(zip(keys, groups))
    return _GROUPS.get(key, "")


def single_thread_env() -> dict:
    """Environment with one BLAS/OpenMP thread: on this 2-core machine (the other core busy),
    multi-threaded OpenBLAS makes the small GEMMs of query quantisation ~10x slower."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _run_child(args: list[str]) -> dict:
    cmd = ["nice", "-n", "10", sys.executable, str(Path(__file__).resolve())] + args
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=single_thread_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = round(time.perf_counter() - t, 1)
    return out


def write_report(result: dict, out_dir: Path, name: str = "scale") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    rows = result["sizes"]
    he = " with Hamming embedding" if result.get("hamming_embedding") else ""
    lines = [f"# Scale benchmark ({result['preset']}{he})", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}  ",
             f"Vocabulary: {result['n_words']} words; real catalog images: {result['n_real_images']} "
             f"(ukbench, smvs_dvd db, grocery_packages db, coil100, both distractor sets), the rest "
             f"synthetic (see `benchmarks/synthetic_catalog.py`). Queries: {rows[0]['query']['n_queries']} "
             f"real photos (smvs_dvd + grocery_packages queries), features from the cache, so query "
             f"latency is `search_features` (quantise, score, fuse, re-rank); the first 5 queries "
             f"warm the page cache and are left out of the percentiles.", "",
             "| metric | " + " | ".join(f"{r['n_images']:,}" for r in rows) + " | target (1M) |",
             "|---|" + "---|" * (len(rows) + 1)]
    targets = {"query_ms_p95_no_rerank": "≤ 100", "query_ms_p95_rerank": "≤ 250",
               "open_seconds": "≤ 1", "bytes_per_image_postings_geometry": "≤ 12,288",
               "build_images_per_minute": "≥ 20,000"}
    metrics = [("query", "query_ms_p50_no_rerank"), ("query", "query_ms_p95_no_rerank"),
               ("query", "query_ms_p50_no_rerank_one_thread"),
               ("query", "query_ms_p95_no_rerank_one_thread"),
               ("query", "query_ms_p50_rerank"), ("query", "query_ms_p95_rerank"),
               ("query", "first_query_ms_no_rerank"),
               ("query", "postings_read_per_query_mean"), ("query", "postings_read_per_query_p95"),
               ("query", "recall_at_1_no_rerank"), ("query", "recall_at_1_rerank"),
               ("query", "open_seconds"), ("query", "rss_mib_after_queries"),
               ("query", "rss_anon_mib_after_queries"), ("query", "peak_rss_mib"),
               ("build", "bytes_per_image_postings"), ("build", "bytes_per_image_geometry"),
               ("build", "bytes_per_image_postings_geometry"),
               ("build", "bytes_per_image_all_but_vocabulary"), ("build", "build_seconds"),
               ("build", "build_images_per_minute"), ("build", "build_peak_rss_mib")]
    for r in rows:
        r["query"]["rss_mib_after_queries"] = round(r["query"]["rss_bytes_after_queries"] / 2**20, 1)
        r["query"]["peak_rss_mib"] = round(r["query"]["peak_rss_bytes"] / 2**20, 1)
        r["query"]["rss_anon_mib_after_queries"] = round(
            r["query"].get("rss_anon_bytes_after_queries", 0) / 2**20, 1)
        r["build"]["build_peak_rss_mib"] = round(r["build"]["build_peak_rss_bytes"] / 2**20, 1)
    for part, m in metrics:
        lines.append(f"| {m} | " + " | ".join(f"{r[part].get(m, '')}" for r in rows) +
                     f" | {targets.get(m, '')} |")
    lines += ["", "Latency growth against postings read (p50, no re-rank):", ""]
    for a, b in zip(rows, rows[1:]):
        qa, qb = a["query"], b["query"]
        lat = qb["query_ms_p50_no_rerank"] / qa["query_ms_p50_no_rerank"]
        post = qb["postings_read_per_query_mean"] / max(qa["postings_read_per_query_mean"], 1)
        lines.append(f"- {a['n_images']:,} → {b['n_images']:,}: latency × {lat:.2f}, postings read "
                     f"× {post:.2f}, catalog × {b['n_images'] / a['n_images']:.0f} "
                     f"({'no worse than' if lat <= max(post, 1.0) else 'worse than'} linear in postings read)")
    if all("query_ms_p50_no_rerank_one_thread" in r["query"] for r in rows):
        lines += ["", "Scoring threads (`Config.query_threads`, "
                  f"{rows[0]['query'].get('query_threads')} by default): the `_one_thread` rows run the same "
                  "searches without re-ranking on the calling thread only, alternating with the default "
                  "query by query in the same process. A query is split across threads only where it "
                  "reads at least 4M postings (`vbow.search.accumulate.PARALLEL_MIN_POSTINGS`):", ""]
        for r in rows:
            q = r["query"]
            lines.append(f"- {r['n_images']:,}: p50 × {q['query_ms_p50_no_rerank'] / q['query_ms_p50_no_rerank_one_thread']:.2f}, "
                         f"p95 × {q['query_ms_p95_no_rerank'] / q['query_ms_p95_no_rerank_one_thread']:.2f} "
                         f"against one thread")
    if all("query_ms_p50_rerank_verify_all" in r["query"] for r in rows):
        lines += ["", "## Early stop in verification", "",
                  "The re-ranked rows above use the default rule (`Config.early_stop_inliers`: "
                  "the first `early_stop_round` candidates are verified, and the rest only "
                  "unless the best of them has at least `early_stop_inliers` inliers and "
                  "`early_stop_ratio` times the second's). "
                  "The same searches with `verify_all=True` (the whole shortlist) alternate "
                  "with them query by query in the same process:", "",
                  "| catalog | queries stopped after the first round | verified per query, "
                  "default / all | p50 ms default / all | "
                  "p95 ms default / all | p50 ratio | recall@1 re-rank default / all |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            q = r["query"]
            stopped = q.get("queries_stopped_after_first_round")
            stopped_text = "—" if stopped is None else f"{stopped} of {q['n_queries']}"
            lines.append(f"| {r['n_images']:,} | {stopped_text} | "
                         f"{q['verified_per_query_mean']} / "
                         f"{q['verified_per_query_mean_verify_all']} | {q['query_ms_p50_rerank']} / "
                         f"{q['query_ms_p50_rerank_verify_all']} | {q['query_ms_p95_rerank']} / "
                         f"{q['query_ms_p95_rerank_verify_all']} | × "
                         f"{q['query_ms_p50_rerank'] / q['query_ms_p50_rerank_verify_all']:.2f} | "
                         f"{q['recall_at_1_rerank']} / {q['recall_at_1_rerank_verify_all']} |")
    sweep = result.get("budget_sweep") or []
    if sweep:
        lines += ["", "## Query postings budget (`Config.max_postings`)", "",
                  "Each query reads its words' postings in decreasing order of weight per posting "
                  "until the budget is spent (the long lists of frequent, low-IDF words go first). "
                  "Default row = the preset's setting.", "",
                  "| catalog | max_postings | postings read (mean) | p50 / p95 ms no re-rank | "
                  "p50 / p95 ms re-rank | recall@1 no re-rank | recall@1 re-rank | smvs_dvd / grocery recall@1 re-rank |",
                  "|---|---|---|---|---|---|---|---|"]
        base = [{"n_images": r["n_images"], "max_postings": f"{r['query']['max_postings']} (default)",
                 "query": r["query"]} for r in rows]
        for s in base + sweep:
            q = s["query"]
            by = q.get("recall_at_1_by_dataset", {})
            lines.append(f"| {s['n_images']:,} | {s['max_postings']} | {q['postings_read_per_query_mean']:,} | "
                         f"{q['query_ms_p50_no_rerank']} / {q['query_ms_p95_no_rerank']} | "
                         f"{q['query_ms_p50_rerank']} / {q['query_ms_p95_rerank']} | "
                         f"{q['recall_at_1_no_rerank']} | {q['recall_at_1_rerank']} | "
                         f"{by.get('smvs_dvd_rerank', '')} / {by.get('grocery_packages_rerank', '')} |")
    short = result.get("shortlist_sweep") or []
    if short:
        n_big = short[0]["n_images"]
        big = next(r for r in rows if r["n_images"] == n_big)
        lines += ["", "## Re-ranking shortlist", "",
                  "Candidates verified per query on the largest catalog, at the default postings "
                  "budget. The tables above verify "
                  f"{big['query']['rerank_shortlist']}; the library's default "
                  "(`Config.shortlist_for`) grows with the catalog's square root and is 200 from "
                  "10,000 images up.", "",
                  "| catalog | shortlist | p50 / p95 ms re-rank | recall@1 re-rank | "
                  "smvs_dvd / grocery recall@1 re-rank |", "|---|---|---|---|---|"]
        for n_verify, q in [(big["query"]["rerank_shortlist"], big["query"])] + \
                [(s["shortlist"], s["query"]) for s in short]:
            by = q.get("recall_at_1_by_dataset", {})
            lines.append(f"| {n_big:,} | {n_verify} | {q['query_ms_p50_rerank']} / "
                         f"{q['query_ms_p95_rerank']} | {q['recall_at_1_rerank']} | "
                         f"{by.get('smvs_dvd_rerank', '')} / {by.get('grocery_packages_rerank', '')} |")
    ratio = result.get("build_ratio")
    if ratio:
        lines += ["", "## Index build over real images vs raw OpenCV", "",
                  f"{ratio['n_images']} real catalog images, one process, alternating slices of "
                  f"{ratio.get('chunk', 20)} images: raw "
                  f"`cv2.imread` (grey) + resize + `detectAndCompute` {ratio['raw_opencv_images_per_s']} "
                  f"images/s; `ImageIndex.add(paths)` with a trained vocabulary (decode, features, colour "
                  f"histogram, quantise, index) {ratio['vbow_add_images_per_s']} images/s: ratio "
                  f"**{ratio['build_throughput_ratio']}** (target ≥ 0.85)."]
        if ratio.get("note"):
            lines += ["", ratio["note"]]
        if len(ratio.get("ratio_by_chunk", {})) > 1:
            lines += ["", "By slice size (images per `add` call, each with a fresh index): " +
                      ", ".join(f"{c}: {r}" for c, r in ratio["ratio_by_chunk"].items()) +
                      ". `add` quantises each call's descriptors in one batch, and the "
                      "vocabulary's loop over its 256 cells is a fixed cost per call, so small slices "
                      "charge vbow more per image than a catalog build, which batches up to "
                      "200,000 descriptors."]
        if ratio.get("repeats"):
            lines += ["", f"Repeated runs of the ratio: {', '.join(map(str, ratio['repeats']))}. "
                          + ratio.get("note", "")]
        if "add_features_images_per_minute" in ratio:
            lines += ["", f"Building from extracted features, quantisation included "
                          f"(`ImageIndex.add_features`, {ratio['add_features_descriptors_per_image']} "
                          f"RootSIFT descriptors per image): {ratio['add_features_images_per_minute']:,} "
                          f"images/min; from quantised words (`add_quantised` + `save`) see "
                          f"`build_images_per_minute` above (target ≥ 20,000)."]
    tfcap = result.get("tf_cap_accuracy")
    if tfcap:
        lines += ["", "## Accuracy cost of capped term counts (4 instead of 255)", "",
                  "Postings pack the document id and the term count in 4 bytes (`doc << 2 | tf - 1`, "
                  "tf capped at 4). Same vocabulary and features, real datasets, top 10:", "",
                  "| protocol, setting | recall@1 | mAP@10 | N-S |", "|---|---|---|---|"]
        for k, v in tfcap.items():
            if not isinstance(v, dict):
                continue
            lines.append(f"| {k} | {v.get('recall_at_1')} | {v.get('map')} | {v.get('ns') or ''} |")
    if he:
        lines += plain_comparison_lines(result, out_dir / "scale.json")
    else:
        lines += open_lines(out_dir / "open.json")
    if result.get("reading"):
        lines += ["", "## Reading of this run", "", result["reading"]]
    lines += ["", result.get("notes", "")]
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")


def plain_comparison_lines(result: dict, plain_json: Path) -> list[str]:
    """Markdown: the Hamming-embedding run beside the plain run of ``scale.json``, size by size."""
    try:
        plain = json.loads(plain_json.read_text())
    except (OSError, ValueError):
        return []
    by_size = {r["n_images"]: r["query"] for r in plain.get("sizes", [])}
    same = plain.get("machine") == result.get("machine")
    where = f"both on {result.get('machine')}" if same else \
        f"`scale.json` on {plain.get('machine')}, this one on {result.get('machine')}"
    lines = ["", "## Against `scale.md` (without Hamming embedding)", "",
             f"Same catalogs, queries and budget, from two runs ({plain.get('run_at')} and "
             f"{result.get('run_at')}; {where}). Recall is exact; latencies from two runs compare "
             f"only roughly{'' if same else ', and from two machines hardly'}. Each cell is "
             f"without / with Hamming embedding.", "",
             "| catalog | recall@1 no re-rank | recall@1 re-rank | grocery recall@1 re-rank | "
             "p50 ms no re-rank | p50 ms re-rank | quantise ms (mean) | score ms (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    cells = (lambda x: x["recall_at_1_no_rerank"], lambda x: x["recall_at_1_rerank"],
             lambda x: x.get("recall_at_1_by_dataset", {}).get("grocery_packages_rerank"),
             lambda x: x["query_ms_p50_no_rerank"], lambda x: x["query_ms_p50_rerank"],
             lambda x: x.get("stage_ms_mean_no_rerank", {}).get("quantise"),
             lambda x: x.get("stage_ms_mean_no_rerank", {}).get("score"))
    for r in result["sizes"]:
        q, p = r["query"], by_size.get(r["n_images"])
        if p is not None:
            lines.append(f"| {r['n_images']:,} | " + " | ".join(f"{get(p)} / {get(q)}" for get in cells)
                         + " |")
    return lines


def open_lines(open_json: Path) -> list[str]:
    """The open times of checksummed and fast-opened bundles, from ``open_bench.py``'s result."""
    try:
        opened = json.loads(open_json.read_text())
    except (OSError, ValueError):
        return []
    lines = ["", "## Opening a checksummed bundle", "",
             f"From `{opened.get('command')}` (`results/open.md`, its own run; load average at its "
             f"start {opened.get('machine', {}).get('load_average_at_start')}). Warm page cache, "
             "medians of the repeats.", "",
             "| images | bundle GB | `ImageIndex.load(path)` s (CRC-32 + structure) | "
             "`verify_checksums=False` s (structure only) | default / fast |", "|---|---|---|---|---|"]
    for size in opened.get("sizes", []):
        o, b = size["open"], size["bundle"]
        lines.append(f"| {size['n_images']:,} | {b['bytes'] / 1e9:.2f} | "
                     f"{o['open_checked_seconds']:.3f} | {o['open_fast_seconds']:.3f} | "
                     f"{o['checked_over_fast']} |")
    lines += ["", "Over 1 s at 1M images: the CRC pass reads all of the bundle once (about 1.3 GB/s "
              "per core with zlib). vbow keeps checksums on by default, so a corrupt bundle is "
              "refused before it answers, and offers the documented fast open for bundles already "
              "verified once (a service opening one bundle in many workers): it skips only the "
              "CRCs, and every structural check still runs. Why not a faster hash or a background "
              "check: see `results/open.md`."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--preset", default="sift")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--shortlist", type=int, default=100)
    ap.add_argument("--max-postings", type=int, default=None,
                    help="query postings budget (default: the preset's)")
    ap.add_argument("--budgets", type=int, nargs="*", default=[0, 4_000_000, 2_000_000],
                    help="query postings budgets swept on the middle and largest catalogs (0: none)")
    ap.add_argument("--shortlists", type=int, nargs="*", default=[200],
                    help="re-ranking shortlists also run on the largest catalog (the library's "
                         "default, Config.shortlist_for, is 200 from 10,000 images up)")
    ap.add_argument("--ratio-images", type=int, default=300,
                    help="real images in the build-throughput comparison with raw OpenCV")
    ap.add_argument("--no-tf-cap", dest="tf_cap", action="store_false",
                    help="skip the accuracy comparison of capped term counts")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the built bundles in $VBOW_SCALE_WORK")
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already built")
    ap.add_argument("--hamming-embedding", action="store_true",
                    help="build with hamming_embedding=True; writes scale_he.md / scale_he.json")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite scale.md from an existing scale.json")
    ap.add_argument("--reading", help="what this run's figures mean (host speed, load), kept in "
                                      "its JSON and shown in its Markdown; with --report-only it "
                                      "is added to the existing run")
    ap.add_argument("--child", choices=["build", "query", "ratio", "tfcap"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    args = ap.parse_args()
    overrides: dict = {}
    if args.child == "build":
        print(json.dumps(build(args.n, Path(args.bundle), args.preset, overrides, args.hamming_embedding)))
        return
    if args.child == "tfcap":
        print(json.dumps(tf_cap_accuracy(args.preset)))
        return
    if args.child == "ratio":
        print(json.dumps(build_ratio(args.preset, args.n)))
        return
    if args.child == "query":
        print(json.dumps(query(Path(args.bundle), args.preset, args.queries, args.shortlist,
                               overrides, args.max_postings)))
        return
    name = "scale_he" if args.hamming_embedding else "scale"
    tag = f"{args.preset}-he" if args.hamming_embedding else args.preset
    if args.report_only:
        result = json.loads((Path(args.out) / f"{name}.json").read_text())
        result["notes"] = NOTES_HE if args.hamming_embedding else NOTES
        if args.reading:
            result["reading"] = args.reading
        write_report(result, Path(args.out), name)
        return
    import vbow
    from synthetic_catalog import real_stats
    from vbow.eval.evaluate import machine_description
    if args.max_postings is None:  # the preset's budget, whatever the saved bundles say
        args.max_postings = vbow.get_config(args.preset).max_postings or 0
    stats = real_stats(args.preset)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    cmd = "python3 benchmarks/scale_bench.py" + ("" if args.sizes == [10_000, 100_000, 1_000_000] else
                                                 " --sizes " + " ".join(map(str, args.sizes)))
    if args.hamming_embedding:
        cmd += " --hamming-embedding"
    if args.budgets != [0, 4_000_000, 2_000_000]:
        cmd += " --budgets " + " ".join(map(str, args.budgets))
    if args.shortlists != [200]:
        cmd += " --shortlists " + " ".join(map(str, args.shortlists))
    for n in args.sizes:
        bundle = WORK / f"catalog-{tag}-{n}.vbow"
        common = ["--preset", args.preset, "--bundle", str(bundle)]
        build_args = ["--hamming-embedding"] if args.hamming_embedding else []
        info_file = bundle.with_suffix(".build.json")
        if args.reuse and info_file.exists() and (bundle / "manifest.json").exists():
            b = json.loads(info_file.read_text())
        else:
            print(f"building {n:,} ...", file=sys.stderr, flush=True)
            b = _run_child(["--child", "build", "--n", str(n)] + common + build_args)
            info_file.write_text(json.dumps(b))
        print(json.dumps(b), file=sys.stderr, flush=True)
        q_args = ["--child", "query", "--queries", str(args.queries), "--shortlist", str(args.shortlist)]
        q_args += ["--max-postings", str(args.max_postings)]
        q = _run_child(q_args + common)
        print(json.dumps(q), file=sys.stderr, flush=True)
        rows.append({"n_images": n, "build": b, "query": q})
    sweep = []
    for n in sorted({args.sizes[-1], args.sizes[len(args.sizes) // 2]}):
        bundle = WORK / f"catalog-{tag}-{n}.vbow"
        for budget in args.budgets:
            q_args = ["--child", "query", "--queries", str(args.queries), "--shortlist",
                      str(args.shortlist), "--preset", args.preset, "--bundle", str(bundle),
                      "--max-postings", str(budget)]
            q = _run_child(q_args)
            print(n, budget, json.dumps(q), file=sys.stderr, flush=True)
            sweep.append({"n_images": n, "max_postings": budget or "none", "query": q})
    shortlist_sweep = []
    largest = WORK / f"catalog-{tag}-{args.sizes[-1]}.vbow"
    for n_verify in args.shortlists:
        q = _run_child(["--child", "query", "--queries", str(args.queries), "--shortlist", str(n_verify),
                        "--preset", args.preset, "--bundle", str(largest),
                        "--max-postings", str(args.max_postings)])
        print(args.sizes[-1], "shortlist", n_verify, json.dumps(q), file=sys.stderr, flush=True)
        shortlist_sweep.append({"n_images": args.sizes[-1], "shortlist": n_verify, "query": q})
    ratio = None if args.hamming_embedding else \
        _run_child(["--child", "ratio", "--preset", args.preset, "--n", str(args.ratio_images)])
    tfcap = _run_child(["--child", "tfcap", "--preset", args.preset]) \
        if args.tf_cap and not args.hamming_embedding else None
    result = {"command": cmd, "machine": machine_description(), "preset": args.preset,
              "vbow_version": vbow.__version__, "n_words": int(stats.offsets.shape[0] and
                                                               vbow.ImageIndex.load(stats.vocab_bundle).vocabulary.n_words_),
              "n_real_images": stats.n_images, "sizes": rows, "budget_sweep": sweep,
              "shortlist_sweep": shortlist_sweep,
              "build_ratio": ratio, "tf_cap_accuracy": tfcap,
              "hamming_embedding": bool(args.hamming_embedding),
              "run_at": time.strftime("%Y-%m-%d %H:%M:%S"),
              "notes": NOTES_HE if args.hamming_embedding else NOTES}
    if args.reading:
        result["reading"] = args.reading
    write_report(result, Path(args.out), name)
    if not args.keep:
        import shutil
        for n in args.sizes:
            shutil.rmtree(WORK / f"catalog-{tag}-{n}.vbow", ignore_errors=True)


if __name__ == "__main__":
    main()
