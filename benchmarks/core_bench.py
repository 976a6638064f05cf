"""Core speed benchmark (issue "vbow core"): on the same real images, side by side in one run,

* index build throughput as a ratio to raw OpenCV feature extraction (``cv2.imread`` +
  ``detectAndCompute`` with the same detector settings and image size), one process each;
* query latency p50 / p95 with and without geometric re-ranking;
* index bytes per image on disk.

Regenerate (writes ``benchmarks/results/core.md`` and ``core.json``)::

    python3 benchmarks/core_bench.py --dataset ../shared/datasets/ukbench --preset sift
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

import vbow
from vbow.eval.datasets import load_source
from vbow.eval.evaluate import catalog_of, machine_description


def raw_opencv(paths: list[str], preset: "str | vbow.Config") -> float:
    """Seconds of plain ``cv2.imread`` (grey) + resize + ``detectAndCompute`` over ``paths``, one
    process, with the preset's detector and size settings (down to ``max_side``, thumbnails up
    to ``min_side``, as vbow does)."""
    cfg = vbow.get_config(preset)
    det = cv2.SIFT_create(nfeatures=cfg.max_keypoints, contrastThreshold=cfg.contrast_threshold) if cfg.method == "sift" else \
        cv2.ORB_create(nfeatures=cfg.max_keypoints, fastThreshold=cfg.fast_threshold,
                       scoreType=cv2.ORB_HARRIS_SCORE)
    t = time.perf_counter()
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        s = cfg.max_side / max(img.shape)
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        elif cfg.min_side and max(img.shape) < cfg.min_side:  # thumbnails upscaled, as vbow does
            s = cfg.min_side / max(img.shape)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        det.detectAndCompute(img, None)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="../shared/datasets/smvs_dvd")
    ap.add_argument("--preset", default="sift")
    ap.add_argument("--max-queries", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    ds = load_source(args.dataset)
    paths, keys, _ = catalog_of(ds)
    queries = [str(q.path) for q in ds.queries][:args.max_queries]
    t_raw = raw_opencv(paths, args.preset)
    index = vbow.ImageIndex(args.preset, n_jobs=1)
    t = time.perf_counter()
    index.build(paths, keys=keys, progress=False)
    t_build = time.perf_counter() - t
    bundle = Path("/tmp/vbow-core-bench.vbow")
    index.save(bundle)
    size = sum(f.stat().st_size for f in bundle.iterdir())
    vocab_bytes = sum(f.stat().st_size for f in bundle.iterdir() if f.name.startswith("vocab_"))
    index = vbow.ImageIndex.load(bundle)
    lat = {True: [], False: []}
    for q in queries:
        qf = index.describe(q)
        for rr in (False, True):
            t = time.perf_counter()
            index.search_features(qf, 10, rerank=rr)
            lat[rr].append(time.perf_counter() - t)
    t = time.perf_counter()
    for q in queries[:50]:
        index.search(q, 10)
    e2e = (time.perf_counter() - t) / min(50, len(queries))
    pct = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 2)
    result = {
        "command": f"python3 benchmarks/core_bench.py --dataset {args.dataset} --preset {args.preset}",
        "machine": machine_description(), "dataset": ds.name, "preset": args.preset,
        "n_catalog": len(paths), "n_queries": len(queries),
        "raw_opencv_images_per_s": round(len(paths) / t_raw, 2),
        "vbow_build_images_per_s": round(len(paths) / t_build, 2),
        "build_throughput_ratio": round(t_raw / t_build, 3),
        "query_ms_p50_no_rerank": pct(lat[False], 50), "query_ms_p95_no_rerank": pct(lat[False], 95),
        "query_ms_p50_rerank": pct(lat[True], 50), "query_ms_p95_rerank": pct(lat[True], 95),
        "query_ms_end_to_end_mean": round(e2e * 1000, 1),
        "index_bytes_per_image": round((size - vocab_bytes) / len(paths)),
        "vocabulary_bytes": vocab_bytes,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"core_{args.preset}.json").write_text(json.dumps(result, indent=1) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items() if k not in ("command", "machine"))
    (out / f"core_{args.preset}.md").write_text(
        f"# Core speed benchmark ({args.preset})\n\nCommand: `{result['command']}`  \n"
        f"Machine: {result['machine']}  \nBuild ratio = raw OpenCV time / vbow build time, both "
        f"single-process, same images, same run (vbow build includes vocabulary training, "
        f"quantisation, colour and indexing).\n\n| metric | value |\n|---|---|\n{rows}\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
