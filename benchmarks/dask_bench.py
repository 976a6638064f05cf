"""Distributed build and sharded search benchmarks (issue 14), on this machine's LocalCluster.

Three parts, each writing ``benchmarks/results/dask_<part>.md`` and ``.json``:

``build``   the same 2,000 real images (ukbench 1,000 + 1,000 product distractors), the
            vocabulary trained once beforehand (``prepare_build``), then the segments built, side
            by side in one run: a local segmented build with ``n_jobs=2``, a LocalCluster with 2
            single-threaded worker processes, and one with 1 worker. Ratios: 2 workers / 1
            worker, Dask / local.
``resume``  a segmented build (local, 2 processes) killed with SIGKILL at 5 random moments and
            resumed each time; the final bundle is compared array by array, and by search
            results, with an uninterrupted build; images processed twice are counted from the
            segment logs (started but never published).
``shards``  a scale-benchmark catalog (``benchmarks/synthetic_catalog.py``) split into 4
            shards on a 2-worker LocalCluster: the 200 real queries, results compared with the
            single index, latency p50/p95 of both, side by side.

Commands::

    python3 benchmarks/dask_bench.py build
    python3 benchmarks/dask_bench.py resume
    python3 benchmarks/dask_bench.py shards --n 100000

Every part keeps the runs it replaces under ``earlier_runs`` in its JSON (:mod:`results_history`)
and shows them in its Markdown: ``build``, ``resume`` and ``hop`` as each file stood when it
was replaced (hand-written readings included), ``shards`` from each run's figures and
``reading``; ``shards --report-only`` rewrites that Markdown from the JSON, for example after
writing a run's ``reading`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_history import carry_history, earlier_runs, run_stamp  # noqa: E402
DATASETS = HERE.parent.parent / "shared" / "datasets"
RESULTS = HERE / "results"
WORK = Path(os.environ.get("VBOW_DASK_WORK", "/tmp/issue14-dask-bench"))


def machine() -> str:
    from vbow.eval.evaluate import machine_description
    return machine_description()


def load_avg() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def real_entries(n: int):
    """The first ``n`` of ukbench + product distractors as catalog entries (keys: relative)."""
    from vbow.distributed import load_entries
    entries = load_entries(DATASETS / "ukbench") + load_entries(DATASETS / "distractors_products")
    if len(entries) < n:
        raise SystemExit(f"only {len(entries)} images under {DATASETS}; need {n}")
    return entries[:n]


def write(name: str, md: str, data: dict | None) -> None:
    """Write ``results/<name>.md`` and, unless ``data`` is None, ``results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(md)
    if data is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    print(md)


_EARLIER = "\n## Earlier runs of this command\n"


def write_keeping_history(name: str, md: str, data: dict) -> None:
    """:func:`write` a run of ``build``, ``resume`` or ``hop``, keeping the run it replaces.

    The Markdown the file holds now, with whatever was written into it by hand after that run,
    becomes that run's ``markdown`` under ``earlier_runs`` in the JSON
    (:func:`results_history.carry_history`); the new file shows it, headings demoted, under
    "Earlier runs of this command".
    """
    md_path, json_path = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
    # the file as it stands: what was written into it after its run is kept too
    replaced = {"markdown": md_path.read_text().split(_EARLIER)[0].strip()} \
        if md_path.exists() else None
    data = carry_history(json_path, {**data, **run_stamp(HERE.parent), "markdown": md.strip()},
                         replaced)
    write(name, md + render_earlier(earlier_runs(data)), data)


def render_earlier(runs: list[dict]) -> str:
    """Markdown of earlier runs that stored their own ``markdown`` (titles and headings demoted)."""
    if not runs:
        return ""
    out = [_EARLIER, "Newest first, each as its file showed it; their JSON is under "
           "`earlier_runs` in this file's JSON.", ""]
    for run in runs:
        lines = run.get("markdown", "").splitlines()
        title = lines[0].lstrip("# ") if lines and lines[0].startswith("# ") else "An earlier run"
        when = _when(run)
        out += [f"### {title}" + (f" ({when})" if when else ""), ""]
        body = lines[1:] if lines and lines[0].startswith("# ") else lines
        while body and not body[0].strip():
            body = body[1:]
        out += [("##" + line) if line.startswith("#") else line for line in body] + [""]
    return "\n".join(out)


def bundle_arrays(path: Path) -> dict:
    from vbow.persist.bundle import load_bundle
    return load_bundle(path, "vbow-index", 99, mmap=False)[1]


def same_bundles(a: Path, b: Path) -> bool:
    xa, xb = bundle_arrays(a), bundle_arrays(b)
    return sorted(xa) == sorted(xb) and all(np.array_equal(xa[k], xb[k]) for k in xa)


# ------------------------------------------------------------------------------------ build
def bench_build(args) -> None:
    from distributed import Client, LocalCluster

    from vbow.distributed import build_index
    from vbow.distributed.build import prepare_build

    entries = real_entries(args.images)
    settings = dict(max_training_images=args.training_images, n_jobs=2)
    root = WORK / "build"
    shutil.rmtree(root, ignore_errors=True)
    template = root / "template"
    if args.vocabulary_from:  # a vocabulary bundle trained earlier (e.g. on a larger sample)
        template.mkdir(parents=True)
        shutil.copytree(args.vocabulary_from, template / "vocabulary")
    t = time.perf_counter()
    n_batches = prepare_build(entries, template, batch_size=args.batch_size, progress=False,
                              **settings)
    t_vocab = time.perf_counter() - t
    print(f"vocabulary: {t_vocab:.1f}s, {n_batches} batches", file=sys.stderr, flush=True)

    def fresh(name: str) -> Path:
        d = root / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(template, d)
        return d

    runs = []

    def timed(label: str, client=None) -> None:
        work = fresh(f"{label}-{len(runs)}")
        load = load_avg()
        t = time.perf_counter()
        report = build_index(entries, None, work_dir=work, batch_size=args.batch_size,
                             client=client, merge=False, progress=False, **settings)
        seconds = time.perf_counter() - t
        runs.append({"run": label, "seconds": round(seconds, 2), "load_before": load,
                     "images": len(report.added), "failed": len(report.failed),
                     "images_per_second": round(len(report.added) / seconds, 2), "work": str(work)})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)

    clusters = {}
    for w in (2, 1):
        t = time.perf_counter()
        lc = LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None)
        clusters[w] = (lc, Client(lc), round(time.perf_counter() - t, 2))
        clusters[w][1].run(lambda: bool(__import__("vbow.index")))  # imports outside the timing
    for _ in range(args.repeats):
        timed("local_n_jobs_2")
        timed("dask_2_workers", clusters[2][1])
        timed("dask_1_worker", clusters[1][1])
    for lc, client, _ in clusters.values():
        client.close()
        lc.close()
    from vbow.distributed import merge_segments
    t = time.perf_counter()
    merged = merge_segments(runs[0]["work"]).save(root / "merged.vbow")
    t_merge = time.perf_counter() - t
    equal = all(same_bundles_from_work(runs[0]["work"], r["work"], root) for r in runs[1:])

    def med(label):
        return float(np.median([r["seconds"] for r in runs if r["run"] == label]))

    ratio_workers = med("dask_1_worker") / med("dask_2_workers")
    overhead = med("dask_2_workers") / med("local_n_jobs_2") - 1.0
    command = "python3 benchmarks/dask_bench.py build" + (
        f" --images {args.images} --batch-size {args.batch_size}" if args.images != 2000 else "") + (
        f" --repeats {args.repeats}" if args.repeats != 1 else "")
    data = {"command": command, "machine": machine(),
            "images": len(entries), "batch_size": args.batch_size, "batches": n_batches,
            "training_images": args.training_images, "vocabulary_seconds": round(t_vocab, 2),
            "merge_seconds": round(t_merge, 2), "merged_bundle": str(merged),
            "cluster_start_seconds": {f"{w}_workers": c[2] for w, c in clusters.items()},
            "runs": runs, "speedup_2_workers_over_1": round(ratio_workers, 3),
            "dask_overhead_vs_local": round(overhead, 4),
            "all_runs_equal_segments": equal}
    vocab_note = (f", reused from {args.vocabulary_from}" if args.vocabulary_from else
                  f", trained on a seeded sample of {args.training_images} images")
    rows = "\n".join(f"| {r['run']} | {r['seconds']} | {r['images_per_second']} | {r['load_before']} |"
                     for r in runs)
    md = f"""# Distributed build throughput ({len(entries):,} real images)

Command: `{command}`  
Machine: {data['machine']} (the load average before each run is shown: 2 cores, so a load near 0 means an idle machine)

{len(entries)} images (ukbench + product distractors), {n_batches} batches of {args.batch_size}; the
vocabulary (the sift preset's 65,536 words{vocab_note}) is made once
beforehand ({t_vocab:.1f} s) and every run starts from a copy of it, so the runs time the segments:
extraction, quantisation and the segment bundles written. Runs are interleaved
(local, 2 workers, 1 worker) × {args.repeats}; ratios are of the medians.

| run | seconds | images/s | load average (1/5/15 min) before |
|---|---|---|---|
{rows}

- 2 single-threaded workers against 1: **× {ratio_workers:.2f}** (target ≥ 1.8)
- Dask (2 workers) against the local segmented build with `n_jobs=2`: **{overhead * 100:+.1f} %** (target ≤ +10 %)
- every run's segments identical to the first run's: {equal}
- merging the {n_batches} segments into one bundle: {t_merge:.1f} s; cluster start (not timed above):
  {', '.join(f'{w} worker(s) {c[2]} s' for w, c in clusters.items())}
"""
    write_keeping_history("dask_build", md, data)


def same_bundles_from_work(a: str, b: str, root: Path) -> bool:
    """Segments of two work dirs hold the same arrays, batch by batch."""
    sa = sorted((Path(a) / "segments").glob("batch-*"))
    sb = sorted((Path(b) / "segments").glob("batch-*"))
    return [p.name for p in sa] == [p.name for p in sb] and all(
        same_bundles(x, y) for x, y in zip(sa, sb))


# ----------------------------------------------------------------------------------- resume
_CHILD = """
import logging, sys, json
logging.basicConfig(filename=sys.argv[3], level=logging.INFO, format="%(created).3f %(name)s %(message)s")
from vbow.distributed import build_index
from vbow.distributed.catalog_source import CatalogEntry
entries = [CatalogEntry(k, p) for k, p in json.load(open(sys.argv[1]))]
build_index(entries, sys.argv[2], batch_size=int(sys.argv[4]), progress=False,
            max_training_images=int(sys.argv[5]), n_words=int(sys.argv[6]), n_jobs=2)
"""


def _segment_log(log: Path) -> tuple[dict[int, int], set[int]]:
    started, published = {}, set()
    if not log.exists():
        return started, published
    for line in log.read_text().splitlines():
        if "vbow.distributed.segments segment" not in line:
            continue
        parts = line.split()
        b = int(parts[3].rstrip(":"))
        if parts[4] == "building":
            started[b] = int(parts[5])
        else:
            published.add(b)
    return started, published


def bench_resume(args) -> None:
    from vbow import ImageIndex

    entries = real_entries(args.images)
    root = WORK / "resume"
    ref = root / "reference.vbow"
    keep_ref = args.reuse_reference and (ref / "manifest.json").exists()
    for p in root.glob("*") if root.exists() else []:
        if keep_ref and p.name.startswith("reference"):
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    listing = root / "entries.json"
    listing.write_text(json.dumps([[e.key, e.path] for e in entries]))

    def child(out: Path, log: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _CHILD, str(listing), str(out), str(log),
                                 str(args.batch_size), str(args.training_images),
                                 str(args.n_words)])

    t = time.perf_counter()
    if not keep_ref:
        rc = child(ref, root / "reference.log").wait()
        if rc != 0:
            raise SystemExit(f"reference build failed ({rc})")
    t_ref = time.perf_counter() - t
    n_batches = -(-len(entries) // args.batch_size)
    rng = random.Random(args.seed)
    # kill points: after a random number of published segments (sorted, so every kill interrupts
    # the remaining work; 0 = during vocabulary training or the first batch), then a random part
    # of a batch's time, so the kill lands inside a batch or while one is being published
    targets = sorted(rng.sample(range(n_batches - 1), args.kills))
    out = root / "killed.vbow"
    segs = Path(f"{out}.segments") / "segments"
    kills = []
    for k, target in enumerate(targets):
        log = root / f"run-{k}.log"
        p = child(out, log)
        t = time.perf_counter()
        while p.poll() is None and len(list(segs.glob("batch-*"))) < target:
            time.sleep(0.02)
        wait_batch = rng.uniform(0.0, 1.0)
        t_seg = time.perf_counter()
        while p.poll() is None and time.perf_counter() - t_seg < wait_batch * args.batch_seconds:
            time.sleep(0.02)
        wait = time.perf_counter() - t
        finished = p.poll() is not None
        if not finished:
            p.send_signal(signal.SIGKILL)
        p.wait()
        started, published = _segment_log(log)
        lost = {b: n for b, n in started.items() if b not in published}
        kills.append({"run": k, "kill_after_segments": target, "kill_fraction_of_a_batch": round(wait_batch, 3),
                      "killed_after_s": round(wait, 2), "finished_before_kill": finished,
                      "batches_started": len(started), "batches_published": len(published),
                      "batches_in_flight_lost": sorted(lost),
                      "images_processed_twice": int(sum(lost.values()))})
        print(json.dumps(kills[-1]), file=sys.stderr, flush=True)
    log = root / "final.log"
    t = time.perf_counter()
    rc = child(out, log).wait()
    t_final = time.perf_counter() - t
    started, published = _segment_log(log)
    equal_arrays = same_bundles(ref, out)
    a, b = ImageIndex.load(ref), ImageIndex.load(out)
    queries = [e.path for e in entries[:: max(1, len(entries) // args.queries)]][:args.queries]
    same_results = all(a.search(q, 10).keys == b.search(q, 10).keys for q in queries)
    twice = sum(k["images_processed_twice"] for k in kills)
    data = {"command": "python3 benchmarks/dask_bench.py resume", "machine": machine(),
            "images": len(entries), "batch_size": args.batch_size, "kills": kills,
            "reference_seconds": round(t_ref, 2), "final_run_seconds": round(t_final, 2),
            "final_run_batches_built": len(started), "final_rc": rc,
            "equal_to_uninterrupted_arrays": equal_arrays, "equal_search_results": same_results,
            "search_queries_compared": len(queries), "images_processed_twice_total": twice,
            "keys_equal": a.keys == b.keys}
    rows = "\n".join(f"| {k['run']} | {k['kill_after_segments']} | {k['killed_after_s']} | {k['batches_published']} | "
                     f"{k['batches_in_flight_lost']} | {k['images_processed_twice']} |" for k in kills)
    md = f"""# Resumable build: 5 kills

Command: `python3 benchmarks/dask_bench.py resume`  
Machine: {data['machine']}

{len(entries)} real images in batches of {args.batch_size} (local segmented build, `n_jobs=2`, a
{args.n_words}-word vocabulary on a seeded sample of {args.training_images}). An uninterrupted build is the reference. The
same build was then started and SIGKILLed {args.kills} times, each time once a random number of segments
had been published (all published so far count) plus a random part of a batch's time (a kill may land in
the vocabulary training, in a batch, or while a segment is being published), resumed each time, and finally
run to the end ({t_final:.1f} s, {len(started)} batches left to build).

| run | kill after segments | killed after (s) | segments published in this run | batches in flight, lost | images processed twice |
|---|---|---|---|---|---|
{rows}

- final index equal to the uninterrupted one: every bundle array identical: **{equal_arrays}**; same
  keys: {a.keys == b.keys}; same top-10 keys on {len(queries)} catalog images as queries: {same_results}
- images processed twice over all kills: **{twice}** (at most one batch of {args.batch_size} per kill: the
  one in flight; a local build has one batch in flight)
"""
    write_keeping_history("dask_resume", md, data)


# ----------------------------------------------------------------------------------- shards
def shards_tag(args) -> str:
    return f"{args.n}" + (f"-w{args.n_words}" if args.n_words else "")


def bench_shards(args) -> None:
    if args.report_only:
        name = f"dask_shards_{shards_tag(args)}"
        write(name, render_shards(json.loads((RESULTS / f"{name}.json").read_text())), None)
        return
    from distributed import Client, LocalCluster

    import vbow
    from feature_cache import cached_features
    from synthetic_catalog import SyntheticCatalog, query_paths, real_batch, real_stats
    from vbow.distributed.shards import ShardedIndex, split_index

    root = WORK / "shards"
    root.mkdir(parents=True, exist_ok=True)
    overrides = {}
    if args.n_words:
        overrides = {"n_words": args.n_words, "max_training_descriptors": args.training_descriptors}
    tag = shards_tag(args)
    bundle = root / f"catalog-{tag}.vbow"
    stats = real_stats("sift", **overrides)
    t = time.perf_counter()
    if not (bundle / "manifest.json").exists():
        index = stats.empty_index("sift", **overrides)
        real = real_batch(stats)
        n_real = min(args.n, stats.n_images)
        index.add_quantised(real["words"][:n_real], real["keypoints"][:n_real],
                            real["colours"][:n_real], real["image_sizes"][:n_real],
                            real["keys"][:n_real], scales=real["scales"][:n_real])
        gen = SyntheticCatalog(stats, index.vocabulary.n_words_, seed=1)
        done = n_real
        while done < args.n:
            stop = min(args.n, done + 50_000)
            b = gen.batch(done, stop)
            index.add_quantised(b["words"], b["keypoints"], b["colours"], b["image_sizes"],
                                b["keys"], scales=b["scales"])
            done = stop
        index.save(bundle)
        del index
    t_build = time.perf_counter() - t
    split = root / f"split-{tag}-{args.shards}"
    t = time.perf_counter()
    if not (split / "shards.json").exists():
        split_index(bundle, split, args.shards)
    t_split = time.perf_counter() - t
    shard_bytes = [sum(f.stat().st_size for f in (split / f"shard-{s:03d}").iterdir())
                   for s in range(args.shards)]
    single = vbow.ImageIndex.load(bundle)
    paths, _ = query_paths()
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(paths), min(args.queries, len(paths)), replace=False))
    feats, _ = cached_features([paths[i] for i in pick], single.config, n_jobs=1, progress=False)
    feats = [f for f in feats if f is not None]
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(lc)
    t = time.perf_counter()
    sharded = ShardedIndex.open(client, split, timeout=120)
    t_open = time.perf_counter() - t
    # verify_all: the whole shortlist in one verify scatter, against the default's one or two
    # rounds (Config.early_stop_inliers), each of which is a scatter of its own on the shards
    modes = [(False, False, "no_rerank"), (True, False, "rerank"), (True, True, "rerank_verify_all")]
    lat = {f"{side}_{tag}": [] for _, _, tag in modes for side in ("single", "sharded")}
    same = {tag: 0 for _, _, tag in modes}
    score_err = []
    load_start = load_avg()
    for f in feats:
        for rr, every, mode in modes:
            t = time.perf_counter()
            a = single.search_features(f, 10, rerank=rr, shortlist=args.shortlist if rr else None,
                                       verify_all=every)
            lat[f"single_{mode}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            b = sharded.search_features(f, 10, rerank=rr, shortlist=args.shortlist if rr else None,
                                        verify_all=every)
            lat[f"sharded_{mode}"].append(time.perf_counter() - t)
            ok = b.complete and a.keys == b.keys
            same[mode] += ok
            if ok and len(a):
                score_err.append(float(np.max(np.abs(np.array([m.score for m in a]) -
                                                      np.array([m.score for m in b.result])))))
    client.close()
    lc.close()
    warm = slice(5, None) if len(feats) > 20 else slice(None)
    pct = lambda xs, p: round(float(np.percentile(xs[warm], p)) * 1000, 2)  # noqa: E731
    summary = {k: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95)} for k, v in lat.items()}
    hop = {tag: {"p50_ms": round(summary[f"sharded_{tag}"]["p50_ms"] - summary[f"single_{tag}"]["p50_ms"], 2),
                 "p95_ms": round(summary[f"sharded_{tag}"]["p95_ms"] - summary[f"single_{tag}"]["p95_ms"], 2)}
           for _, _, tag in modes}
    command = f"python3 benchmarks/dask_bench.py shards --n {args.n}" + (
        f" --n-words {args.n_words} --training-descriptors {args.training_descriptors}"
        if args.n_words else "") + (f" --queries {args.queries}" if args.queries != 200 else "")
    data = {"command": command, "machine": machine(), "n_images": args.n, "n_shards": args.shards,
            "n_words": int(single.vocabulary.n_words_), "queries": len(feats),
            "rerank_shortlist": args.shortlist, "catalog_build_seconds": round(t_build, 1),
            "split_seconds": round(t_split, 1), "open_seconds": round(t_open, 2),
            "shard_bytes": shard_bytes, "latency": summary, "extra_hop": hop,
            "equal_results": same,
            "max_abs_score_difference": max(score_err) if score_err else None,
            "load_average_at_start": load_start}
    data.update(run_stamp(HERE.parent))
    if args.label:
        data["label"] = args.label
    if args.reading:
        data["reading"] = Path(args.reading).read_text().strip()
    data = carry_history(RESULTS / f"dask_shards_{tag}.json", data)
    write(f"dask_shards_{tag}", render_shards(data), data)


_MODE_WORDS = {"no_rerank": "without re-ranking", "rerank": "with",
               "rerank_verify_all": "with `verify_all=True`"}


def _latency_table(data: dict) -> str:
    rows = "\n".join(f"| {k} | {v['p50_ms']} | {v['p95_ms']} |" for k, v in data["latency"].items())
    return f"| search | p50 ms | p95 ms |\n|---|---|---|\n{rows}"


def _equal_line(data: dict) -> str:
    same = data["equal_results"]
    return ", ".join(f"**{n} / {data['queries']}** {_MODE_WORDS.get(m, m)}" for m, n in same.items())


def _when(data: dict) -> str:
    """When a run ran and on which code: ``run_at, commit X, result committed in Y`` (what
    of it is known)."""
    return ", ".join(x for x in (data.get("run_at"), data.get("commit") and f"commit {data['commit']}",
                                 data.get("stored_in") and f"result committed in {data['stored_in']}") if x)


def _provenance(data: dict) -> str:
    when = _when(data)
    return f"`{data['command']}`; {data['machine']}" + (f"; {when}" if when else "")


def render_shards(data: dict) -> str:
    """The Markdown report of one ``shards`` result JSON, its earlier runs included."""
    n, shards, hop = data["n_images"], data["n_shards"], data["extra_hop"]
    hops = ", ".join(f"p50 {h['p50_ms']} ms / p95 {h['p95_ms']} ms {_MODE_WORDS.get(m, m)}"
                     for m, h in hop.items())
    md = f"""# Sharded search: {shards} shards of the scale catalog ({n:,} images, {data['n_words']:,} words)

Command: `{data['command']}`  
Machine: {data['machine']}; load average at the start {data['load_average_at_start']}  
""" + (f"Run: {_when(data)}\n" if data.get("run_at") else "") + f"""
The scale benchmark's catalog ({n:,} images: the 4,269 real catalog images, the rest synthetic,
`benchmarks/synthetic_catalog.py`) saved as one bundle, split by key hash into {shards} shards
(`vbow.distributed.shards.split_index`, {data['split_seconds']:.0f} s) held by 2 LocalCluster worker processes
({shards // 2} shards each, as actors on memory-mapped bundles). {data['queries']} real query photos (smvs_dvd + grocery, features from
the cache), each searched on the single index and on the shards, alternately; the first 5 are left out of
the percentiles. Re-ranking verifies a shortlist of {data['rerank_shortlist']}.

{_latency_table(data)}

- results equal to the single index (same top-10 keys in the same order, every shard answering):
  {_equal_line(data)}; largest score difference {data['max_abs_score_difference']}
- the extra hop (sharded − single): {hops}. Re-ranking verifies the first 32 candidates of the
  shortlist, and the rest in a second round unless one of them is a clear winner
  (`Config.early_stop_inliers`); on shards each round is one scatter to the owning shards, and
  `verify_all=True` verifies the whole shortlist in one scatter
- bytes per shard: {', '.join(f'{b / 2**20:.0f} MiB' for b in data['shard_bytes'])}
"""
    if data.get("reading"):
        md += f"\n**Reading this run.** {data['reading']}\n"
    older = earlier_runs(data)
    if older:
        md += ("\n## Earlier runs of this command\n\nNewest first. Each is the JSON file of that run, "
               "kept under `earlier_runs` in this file's JSON (the benchmark moves the file's run "
               "there before it writes a new one); a run's `reading` is what was written about it.\n")
    for run in older:
        title = run.get("label") or run.get("run_at") or "an earlier run"
        md += f"\n### {title[:1].upper() + title[1:]}\n\n{_provenance(run)}\n\n{_latency_table(run)}\n\n"
        md += f"Equal to the single index: {_equal_line(run)}.\n"
        if run.get("reading"):
            md += f"\n{run['reading']}\n"
    return md


def bench_hop(args) -> None:
    """The cost of the scatter/gather hop alone: a small synthetic catalog (so scoring costs
    almost nothing), one index against 4 shards on a 2-worker LocalCluster."""
    from distributed import Client, LocalCluster

    import vbow
    from vbow.distributed.shards import ShardedIndex, split_index
    from vbow.synthetic import make_catalog

    root = WORK / "hop"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cat = make_catalog(args.products, 1, seed=5, difficulty=0.6)
    index = vbow.ImageIndex("sift", n_words=args.n_words, n_jobs=1)
    index.build(list(cat.products), keys=[f"sku-{i:04d}" for i in range(args.products)],
                progress=False)
    full = index.save(root / "full.vbow")
    split_index(full, root / "split", args.shards)
    single = vbow.ImageIndex.load(full)
    queries = [single.describe(p.image) for p in cat.photos[:args.queries]]
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(lc)
    sharded = ShardedIndex.open(client, root / "split", timeout=120)
    lat = {k: [] for k in ("single_no_rerank", "sharded_no_rerank", "single_rerank", "sharded_rerank")}
    equal = {False: 0, True: 0}
    load_start = load_avg()
    for _ in range(args.repeats):
        for q in queries:
            for rr in (False, True):
                tag = "rerank" if rr else "no_rerank"
                t = time.perf_counter()
                a = single.search_features(q, 10, rerank=rr)
                lat[f"single_{tag}"].append(time.perf_counter() - t)
                t = time.perf_counter()
                b = sharded.search_features(q, 10, rerank=rr)
                lat[f"sharded_{tag}"].append(time.perf_counter() - t)
                equal[rr] += int(b.complete and a.keys == b.keys)
    client.close()
    lc.close()
    pct = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 2)  # noqa: E731
    summary = {k: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95)} for k, v in lat.items()}
    hop = {t: round(summary[f"sharded_{t}"]["p50_ms"] - summary[f"single_{t}"]["p50_ms"], 2)
           for t in ("no_rerank", "rerank")}
    n = len(queries) * args.repeats
    data = {"command": "python3 benchmarks/dask_bench.py hop", "machine": machine(),
            "products": args.products, "n_words": args.n_words, "shards": args.shards,
            "searches_each": n, "latency": summary, "extra_hop_p50_ms": hop,
            "equal_results": {"no_rerank": equal[False], "rerank": equal[True]},
            "load_average_at_start": load_start}
    rows = "\n".join(f"| {k} | {v['p50_ms']} | {v['p95_ms']} |" for k, v in summary.items())
    md = f"""# The sharded-search hop on a small catalog

Command: `python3 benchmarks/dask_bench.py hop`  
Machine: {data['machine']}; load average at the start {load_start} (shared machine)

{args.products} synthetic products ({args.n_words}-word vocabulary), one index against {args.shards}
shards on 2 LocalCluster worker processes (actors). Scoring a catalog this small costs almost
nothing, so the difference is the hop: the scatter/gather round trips (candidates; with re-ranking
also verify, expansion words, a second candidates scatter, details) and the client-side merge.
{n} searches of each kind, single and sharded alternately.

| search | p50 ms | p95 ms |
|---|---|---|
{rows}

- extra hop (sharded − single, p50): **{hop['no_rerank']} ms** without re-ranking, **{hop['rerank']} ms** with
- results equal to the single index: {equal[False]} / {n} without re-ranking, {equal[True]} / {n} with
"""
    write_keeping_history("dask_hop", md, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    b = sub.add_parser("build")
    b.add_argument("--images", type=int, default=2000)
    b.add_argument("--batch-size", type=int, default=50)
    b.add_argument("--training-images", type=int, default=200)
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--vocabulary-from", help="reuse this vocabulary bundle instead of training")
    r = sub.add_parser("resume")
    r.add_argument("--images", type=int, default=400)
    r.add_argument("--batch-size", type=int, default=25)
    r.add_argument("--training-images", type=int, default=100)
    r.add_argument("--n-words", type=int, default=4096)
    r.add_argument("--kills", type=int, default=5)
    r.add_argument("--queries", type=int, default=20)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--batch-seconds", type=float, default=8.0,
                   help="about how long a batch takes here (spreads the kill inside a batch)")
    r.add_argument("--reuse-reference", action="store_true",
                   help="keep an uninterrupted reference build from an earlier run")
    s = sub.add_parser("shards")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--shards", type=int, default=4)
    s.add_argument("--queries", type=int, default=200)
    s.add_argument("--shortlist", type=int, default=100)
    s.add_argument("--n-words", type=int, default=0,
                   help="a smaller vocabulary than the preset's (0: the preset's)")
    s.add_argument("--training-descriptors", type=int, default=300_000)
    s.add_argument("--label", help="what distinguishes this run (shown when a later run keeps it)")
    s.add_argument("--reading", metavar="FILE",
                   help="Markdown: what this run shows (or edit `reading` in the JSON and use --report-only)")
    s.add_argument("--report-only", action="store_true",
                   help="rewrite the Markdown from the JSON of the last run, without running anything")
    h = sub.add_parser("hop")
    h.add_argument("--products", type=int, default=40)
    h.add_argument("--n-words", type=int, default=1024)
    h.add_argument("--shards", type=int, default=4)
    h.add_argument("--queries", type=int, default=20)
    h.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    {"build": bench_build, "resume": bench_resume, "shards": bench_shards,
     "hop": bench_hop}[args.part](args)


if __name__ == "__main__":
    main()
