"""Edge profile benchmark (issue 4): one core, a 10k-image catalog, small memory.

Regenerate (writes ``benchmarks/results/edge.md`` and ``edge.json``)::

    nice -n 10 python3 benchmarks/edge_bench.py

For each preset (``edge``, ``orb``, ``sift``) and the variants of ``edge`` in :data:`VARIANTS`
(``edge-orb300``, the preset before TEBLID; ``edge-1k``; ``edge-he``, ``edge`` with Hamming
embedding):

1. a 10,000-image catalog is built as in ``benchmarks/scale_bench.py`` (the real catalog images
   of ``../shared/datasets`` plus synthetic images made from their word statistics) and saved;
2. a fresh query process, pinned to one CPU (``taskset``) with one OpenCV / BLAS / OpenMP thread,
   opens it memory-mapped and answers real query photos (smvs_dvd and grocery_packages queries,
   resized once to 640 px on the long side and re-encoded as JPEG quality 90, outside the repo)
   end to end with ``ImageIndex.search(path)``: decode, features, colour, quantise, search,
   re-rank with the preset's shortlist. It reports latency percentiles, the stage breakdown,
   recall@1 against the real catalog images, its peak resident memory (``VmHWM``), and which heavy
   modules it imported (none of onnxruntime, torch, sklearn may be);
3. for the ``edge`` preset, four such query processes hold the same index open at once, and their
   proportional set size (``/proc/<pid>/smaps_rollup``, and per mapping of the bundle's files) shows
   that the memory-mapped index pages are shared, not copied.

EfficientNet-Lite0 (``benchmarks/cnn_baselines.py``, onnxruntime, one thread) is timed on the same
640 px photos in its own process, end to end (decode, preprocess, network).
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

from scale_bench import WORK, build, single_thread_env  # noqa: E402

NOTES = """## Notes

- **Presets.** `edge` = ORB keypoints with TEBLID descriptors (`method="teblid"`), at most
  450 features per image (under 4 KB of postings and geometry each, issue 4's bound),
  65,536-word Hamming vocabulary, two words per query feature,
  re-ranking (homography RANSAC from shared words against the stored geometry) of a 20-image
  shortlist, no query expansion. `edge-orb300` is the `edge` preset as it was before it took
  TEBLID: ORB's own descriptors, 300 features, one word per query feature, query expansion from 3 verified
  results. `edge-1k` is `edge` with 1,000 features. `orb` = TEBLID on 1,000 ORB keypoints, 3
  assignments per query descriptor, shortlist 2·sqrt(n), query expansion. `sift` = RootSIFT,
  1,000 features, 3 assignments.
- **One core.** Query processes are pinned with `taskset` to one CPU and use one OpenCV, BLAS
  and OpenMP thread. The load average at the start (above) says whether the other core was
  busy; when it is (shared caches and memory bandwidth), latencies rise by 10-30 %.
- **Memory.** Peak RSS (`VmHWM`) of the query process includes the interpreter, numpy and OpenCV
  (about 50 MB before any index is opened) and the index pages it touched. The query process
  imports neither onnxruntime, torch nor scikit-learn (column "heavy modules").
- **Bytes per image** count postings (4 B per distinct word of an image) and geometry (8 B per
  feature); "all but vocabulary" adds the colour histogram, keys, metadata, sizes.
- **EfficientNet-Lite0** is a global descriptor only (no search, no re-ranking, no geometry);
  the issue quotes 6-7 ms per image on an idle core of this CPU.
- **`edge-he`** is the `edge` preset with `hamming_embedding=True`: a 64-bit signature per
  posting (the binary counterpart for ORB: projected residuals of the unpacked bits to the
  word's binary centroid, `vbow.vocab.embedding`) and the selective match kernel in scoring.
"""

#: Variants measured beside the presets: name -> (preset, settings changed, Hamming embedding
#: on). ``edge-orb300`` is the ``edge`` preset as it was before TEBLID (ORB's own descriptors,
#: 300 features, one word per query feature, query expansion 3), kept for the side-by-side
#: comparison; ``edge-1k`` shows what 1,000 features buy, and cost.
VARIANTS: dict[str, tuple[str, dict, bool]] = {
    "edge-he": ("edge", {}, True),
    "edge-orb300": ("edge", {"method": "orb", "max_keypoints": 300, "query_assignments": 1,
                             "query_expansion": 3}, False),
    "edge-1k": ("edge", {"max_keypoints": 1000}, False),
}

#: photos of the second, recall-only sample
WIDE_QUERIES = 200

HEAVY = ("onnxruntime", "torch", "sklearn", "tensorflow", "timm", "joblib", "scipy")


def _status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out


def query_photos(n: int) -> tuple[list[str], list[str]]:
    """``n`` seeded real query photos, resized to 640 px (long side), JPEG q90, and their groups."""
    import cv2
    from synthetic_catalog import query_paths
    paths, groups = query_paths()
    pick = np.sort(np.random.default_rng(0).choice(len(paths), min(n, len(paths)), replace=False))
    folder = WORK / "edge-queries"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in pick.tolist():
        target = folder / f"q{i:04d}.jpg"
        if not target.exists():
            img = cv2.imread(paths[i], cv2.IMREAD_COLOR)
            s = 640 / max(img.shape[:2])
            img = cv2.resize(img, None, fx=s, fy=s,
                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            cv2.imwrite(str(target), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(str(target))
    return out, [groups[i] for i in pick.tolist()]


def query_child(bundle: Path, n_queries: int, hold: bool) -> dict:
    """Runs in the pinned query process: end-to-end searches (see the module docstring)."""
    import cv2
    cv2.setNumThreads(1)
    import vbow
    t = time.perf_counter()
    index = vbow.ImageIndex.load(bundle)
    t_open = time.perf_counter() - t
    from synthetic_catalog import catalog_paths
    paths, groups = query_photos(n_queries)
    _, keys, cat_groups = catalog_paths()
    group_of = dict(zip(keys, cat_groups))

    def hit(result, group: str) -> int:
        """1 when the best match is a catalog image of the photo's group."""
        return int(len(result) > 0 and group_of.get(result.best.key, "") == group)

    for p in paths[:3]:  # warm-up: page in the index and the code paths
        index.search(p, top_k=10)
    total, stages, hits = [], {}, []
    for p, g in zip(paths, groups):
        t = time.perf_counter()
        r = index.search(p, top_k=10)
        total.append(time.perf_counter() - t)
        for k, v in r.timings.items():
            stages.setdefault(k, []).append(v)
        hits.append(hit(r, g))
    # recall alone on a larger seeded sample (60 photos make a noisy figure: one photo is 0.017)
    done = dict(zip(paths, hits))
    wide_paths, wide_groups = query_photos(WIDE_QUERIES)
    wide_hits = [done[p] if p in done else hit(index.search(p, top_k=10), g)
                 for p, g in zip(wide_paths, wide_groups)]
    pct = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 2)  # noqa: E731
    out = {"n_queries": len(paths), "open_seconds": round(t_open, 4),
           "recall_at_1_wide": round(float(np.mean(wide_hits)), 4), "n_queries_wide": len(wide_paths),
           "e2e_ms_p50": pct(total, 50), "e2e_ms_p95": pct(total, 95),
           "e2e_ms_mean": round(float(np.mean(total)) * 1000, 2),
           "stage_ms_p50": {k: pct(v, 50) for k, v in stages.items() if k != "total"},
           "recall_at_1": round(float(np.mean(hits)), 4),
           "shortlist": index.config.shortlist_for(len(index)),
           "cpus_allowed": sorted(os.sched_getaffinity(0)),
           "heavy_modules_imported": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)),
           **{k.lower() + "_bytes": v for k, v in _status().items()}}
    if hold:
        print(json.dumps(out), flush=True)
        sys.stdin.read()  # keep the mapping alive until the parent has measured PSS
    return out


def smaps(pid: int, bundle: Path) -> dict[str, int]:
    """Rss and Pss of the whole process, and of the mappings of the bundle's files (bytes)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, _, v = line.partition(":")
        if k in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
            out[k.lower() + "_bytes"] = int(v.split()[0]) * 1024
    rss = pss = 0
    inside = False
    prefix = str(bundle.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            inside = len(parts) >= 6 and parts[5].startswith(prefix)
        elif inside and parts and parts[0] == "Rss:":
            rss += int(parts[1]) * 1024
        elif inside and parts and parts[0] == "Pss:":
            pss += int(parts[1]) * 1024
    out["index_rss_bytes"], out["index_pss_bytes"] = rss, pss
    return out


def child_cmd(args: list[str], cpu: int | None) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return pin + ["nice", "-n", "10", sys.executable, str(Path(__file__).resolve())] + args


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=single_thread_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shared_memory(bundle: Path, n_queries: int, cpu: int | None, n_proc: int = 4) -> dict:
    """Start ``n_proc`` query processes on one bundle, measure their PSS while all hold it."""
    procs = [subprocess.Popen(child_cmd(["--child", "query", "--bundle", str(bundle), "--queries",
                                         str(n_queries), "--hold"], cpu),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=single_thread_env()) for _ in range(n_proc)]
    try:
        for p in procs:
            p.stdout.readline()  # the child's report: it has run its queries and holds the index
        per = [smaps(p.pid, bundle) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
    bundle_bytes = sum(f.stat().st_size for f in bundle.iterdir())
    return {"n_processes": n_proc, "per_process": per, "bundle_bytes": bundle_bytes,
            "sum_rss_bytes": sum(x["rss_bytes"] for x in per),
            "sum_pss_bytes": sum(x["pss_bytes"] for x in per),
            "sum_index_rss_bytes": sum(x["index_rss_bytes"] for x in per),
            "sum_index_pss_bytes": sum(x["index_pss_bytes"] for x in per)}


def cnn_child(paths: list[str]) -> dict:
    import cv2
    cv2.setNumThreads(1)
    from cnn_baselines import time_per_image
    ms = time_per_image("lite0", paths=paths, n_images=min(32, len(paths)))
    return {"model": "EfficientNet-Lite0", "ms_per_image_median": round(float(ms), 2),
            "vm_hwm_bytes": _status().get("VmHWM", 0)}


def write_report(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "edge.json").write_text(json.dumps(result, indent=1) + "\n")
    mib = lambda b: round(b / 2**20, 1)  # noqa: E731
    lines = ["# Edge profile benchmark", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}  ",
             f"Each query process is pinned to CPU {result['cpu']} (`taskset`), one OpenCV/BLAS/OpenMP "
             f"thread; the 1-minute load average when the run started was "
             f"{result.get('load_average_at_start', '?')} on 2 cores. "
             f"Catalog: {result['n_images']:,} images (the real catalog images of the datasets "
             f"plus synthetic ones, as in `scale.md`). Queries: {result['n_queries']} real query photos "
             f"(smvs_dvd + grocery_packages) resized to 640 px, end to end `ImageIndex.search(path)` "
             f"(decode, features, colour, quantise, search, re-rank). \"recall@1, 200 photos\" is recall "
             f"alone on a larger seeded sample of the same photos (it contains 10 of the 60), "
             f"since one photo of 60 is 0.017.", "",
             "| preset | e2e p50 ms | e2e p95 ms | features | quantise | score | rerank | shortlist "
             "| recall@1 | recall@1, 200 photos | postings+geometry B/image | all but vocabulary B/image | peak RSS MiB | heavy modules |",
             "|---|" + "---|" * 13]
    for name, r in result["presets"].items():
        q, b = r["query"], r["build"]
        s = q["stage_ms_p50"]
        lines.append(f"| {name} | {q['e2e_ms_p50']} | {q['e2e_ms_p95']} | {s.get('features', '')} | "
                     f"{s.get('quantise', '')} | {s.get('score', '')} | {s.get('rerank', '')} | "
                     f"{q['shortlist']} | {q['recall_at_1']} | {q.get('recall_at_1_wide', '')} | "
                     f"{b['bytes_per_image_postings_geometry']} | "
                     f"{b['bytes_per_image_all_but_vocabulary']} | {mib(q['vmhwm_bytes'])} | "
                     f"{', '.join(q['heavy_modules_imported']) or 'none'} |")
    cnn = result.get("cnn")
    if cnn:
        lines += ["", f"EfficientNet-Lite0 (onnxruntime, one thread, same photos, decode + preprocess + "
                      f"network, no search): {cnn['ms_per_image_median']} ms per image (median), "
                      f"peak RSS {mib(cnn['vm_hwm_bytes'])} MiB."]
    sh = result.get("shared")
    if sh:
        lines += ["", f"## {sh['n_processes']} query processes sharing one memory-mapped index "
                      f"(`{result['shared_preset']}`, bundle {mib(sh['bundle_bytes'])} MiB on disk)", "",
                  "| process | RSS MiB | PSS MiB | index files RSS MiB | index files PSS MiB |",
                  "|---|---|---|---|---|"]
        for i, p in enumerate(sh["per_process"]):
            lines.append(f"| {i + 1} | {mib(p['rss_bytes'])} | {mib(p['pss_bytes'])} | "
                         f"{mib(p['index_rss_bytes'])} | {mib(p['index_pss_bytes'])} |")
        lines.append(f"| sum | {mib(sh['sum_rss_bytes'])} | {mib(sh['sum_pss_bytes'])} | "
                     f"{mib(sh['sum_index_rss_bytes'])} | {mib(sh['sum_index_pss_bytes'])} |")
        lines += ["", "PSS charges each shared page 1/n to each of the n processes mapping it, so the "
                      "index pages' PSS summed over the processes is what they cost together, while "
                      "their RSS summed counts them once per process."]
    lines += ["", result.get("notes", "")]
    (out_dir / "edge.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+",
                    default=["edge", "edge-orb300", "edge-1k", "edge-he", "orb", "sift"],
                    help=f"presets, or the variants {sorted(VARIANTS)}")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--cpu", type=int, default=1, help="CPU the query processes are pinned to")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--reuse", action="store_true", help="reuse catalogs already built")
    ap.add_argument("--child", choices=["build", "query", "cnn"], help=argparse.SUPPRESS)
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--hamming-embedding", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.n, Path(args.bundle), args.preset, json.loads(args.overrides),
                               args.hamming_embedding)))
        return
    if args.child == "query":
        print(json.dumps(query_child(Path(args.bundle), args.queries, args.hold)))
        return
    if args.child == "cnn":
        print(json.dumps(cnn_child(query_photos(args.queries)[0])))
        return
    from vbow.eval.evaluate import machine_description
    WORK.mkdir(parents=True, exist_ok=True)
    query_photos(args.queries)
    result = {"command": "python3 benchmarks/edge_bench.py", "machine": machine_description(),
              "load_average_at_start": round(os.getloadavg()[0], 2),
              "cpu": args.cpu, "n_images": args.n, "n_queries": args.queries, "presets": {},
              "run_at": time.strftime("%Y-%m-%d %H:%M:%S"), "notes": NOTES}
    for preset in args.presets:
        bundle = WORK / f"catalog-{preset}-{args.n}.vbow"
        info = bundle.with_suffix(".build.json")
        if args.reuse and info.exists() and (bundle / "manifest.json").exists():
            b = json.loads(info.read_text())
        else:
            base, overrides, he = VARIANTS.get(preset, (preset, {}, False))
            b = run_json(child_cmd(["--child", "build", "--preset", base, "--n", str(args.n),
                                    "--bundle", str(bundle), "--overrides", json.dumps(overrides)]
                                   + (["--hamming-embedding"] if he else []), None))
            info.write_text(json.dumps(b))
        q = run_json(child_cmd(["--child", "query", "--bundle", str(bundle), "--queries",
                                str(args.queries)], args.cpu))
        print(preset, json.dumps(q), file=sys.stderr, flush=True)
        result["presets"][preset] = {"build": b, "query": q}
    shared = args.presets[0]
    result["shared_preset"] = shared
    result["shared"] = shared_memory(WORK / f"catalog-{shared}-{args.n}.vbow", args.queries, args.cpu)
    try:
        result["cnn"] = run_json(child_cmd(["--child", "cnn", "--queries", str(args.queries)], args.cpu))
    except (RuntimeError, json.JSONDecodeError) as exc:
        result["cnn"] = None
        print(f"CNN baseline failed: {exc}", file=sys.stderr)
    write_report(result, Path(args.out))


if __name__ == "__main__":
    main()
