"""Peak memory of ``vbow index`` over 2,000 and 20,000 catalog images.

The catalogs are made by resampling real photos (``../shared/datasets``: ukbench and the two
distractor folders): image ``i`` is a random crop (80-100 % of each side) of source photo
``i mod S``, mirrored half of the time and resized to a longer side of 240-400 px, written as
a JPEG to a scratch folder outside the repository (deleted afterwards). Without the datasets the
synthetic product generator is used instead.

``vbow index`` runs as a subprocess with the same settings for both sizes, including a fixed
training sample (``--max-training-images``, default 1,000), so the two runs differ only in the
catalog's size. The benchmark samples the resident memory of the command's whole process tree
(the main process and its extraction workers) every 50 ms and reads the main process's
``VmHWM``. The index's own growth is the difference of the two saved bundles' sizes.

Command::

    nice -n 10 python3 benchmarks/build_memory_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "datasets"
RESULTS = ROOT / "results"
COMMAND = "nice -n 10 python3 benchmarks/build_memory_bench.py"


def _source_photos() -> list[Path]:
    out: list[Path] = []
    for name in ("ukbench", "distractors_photos", "distractors_products"):
        folder = DATA / name
        if folder.is_dir():
            out += sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return out


def make_catalog(folder: Path, n: int, seed: int = 0) -> str:
    """Write ``n`` resampled JPEGs into ``folder``; returns a description of the source."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = _source_photos()
    if sources:
        cache: dict[int, np.ndarray] = {}
        for i in range(n):
            j = i % len(sources)
            if j not in cache:
                img = cv2.imread(str(sources[j]), cv2.IMREAD_COLOR)
                if img is None:
                    img = np.full((240, 320, 3), 127, np.uint8)
                scale = 480 / max(img.shape[:2])
                cache[j] = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
                    if scale < 1 else img
            img = cache[j]
            h, w = img.shape[:2]
            ch, cw = int(h * rng.uniform(0.8, 1.0)), int(w * rng.uniform(0.8, 1.0))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = img[y:y + ch, x:x + cw]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            side = int(rng.integers(240, 401))
            f = side / max(crop.shape[:2])
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
                              interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / f"img{i:06d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 88])
            if len(cache) > 64:
                cache.pop(next(iter(cache)))
        return f"{len(sources)} real photos (ukbench, distractors), resampled"
    from vbow.synthetic import make_catalog as synthetic

    done = 0
    while done < n:
        chunk = min(500, n - done)
        cat = synthetic(chunk, 0, seed=seed + done)
        for k, img in enumerate(cat.products):
            cv2.imwrite(str(folder / f"img{done + k:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 88])
        done += chunk
    return "vbow.synthetic products"


def _tree_rss(pid: int) -> tuple[int, int]:
    """(sum of VmRSS over the process tree rooted at pid, VmHWM of pid), in kB."""
    total, hwm = 0, 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
            elif line.startswith("VmHWM:") and p == pid:
                hwm = int(line.split()[1])
        stack.extend(int(c) for c in children)
    return total, hwm


def run_index(folder: Path, out: Path, jobs: int, training: int) -> dict:
    cmd = [sys.executable, "-m", "vbow.apps.cli", "index", str(folder), "--out", str(out),
           "--jobs", str(jobs), "--max-training-images", str(training), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0, "hwm": 0}

    def sample() -> None:
        while proc.poll() is None:
            tree, hwm = _tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], tree)
            peak["hwm"] = max(peak["hwm"], hwm)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"vbow index failed ({proc.returncode}): {stderr[-2000:]}")
    summary = json.loads(stdout)
    bundle_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_tree_rss_mib": round(peak["tree"] / 1024, 1),
            "peak_main_hwm_mib": round(peak["hwm"] / 1024, 1),
            "bundle_mib": round(bundle_bytes / 2**20, 2), "indexed": summary.get("added"),
            "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--training", type=int, default=1000, help="--max-training-images for both runs")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="vbow-build-memory-"))
    runs = {}
    try:
        source = ""
        for n in args.sizes:
            folder = scratch / f"catalog{n}"
            t = time.perf_counter()
            source = make_catalog(folder, n)
            print(f"{n} images written in {time.perf_counter() - t:.0f}s", file=sys.stderr)
            runs[n] = run_index(folder, scratch / f"index{n}.vbow", args.jobs, args.training)
            print(json.dumps({n: {k: v for k, v in runs[n].items() if k != "summary"}}), file=sys.stderr)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    small, large = min(runs), max(runs)
    growth_rss = runs[large]["peak_main_hwm_mib"] - runs[small]["peak_main_hwm_mib"]
    growth_tree = runs[large]["peak_tree_rss_mib"] - runs[small]["peak_tree_rss_mib"]
    growth_index = runs[large]["bundle_mib"] - runs[small]["bundle_mib"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
              f"Linux {platform.release()}, Python {platform.python_version()}"
    result = {"command": COMMAND, "machine": machine, "date": time.strftime("%Y-%m-%d"),
              "source": source, "training_images": args.training, "jobs": args.jobs,
              "runs": {str(k): v for k, v in runs.items()},
              "growth_mib": {"main_process_peak": round(growth_rss, 1),
                             "process_tree_peak": round(growth_tree, 1),
                             "index_bundle": round(growth_index, 1)},
              "meets_target": bool(growth_rss <= growth_index)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "build_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {n:,} | {r['indexed']} | {r['seconds']} | {r['peak_main_hwm_mib']} | "
                     f"{r['peak_tree_rss_mib']} | {r['bundle_mib']} |" for n, r in sorted(runs.items()))
    md = f"""# Peak memory of `vbow index`

Command: `{COMMAND}`

Machine: {machine}; {result['date']}. Catalog: {source}; `--jobs {args.jobs}`,
`--max-training-images {args.training}` for every size (the training sample is a fixed cost set by
that option, so both runs train on the same number of images).

| catalog images | indexed | seconds | peak RSS, main process (MiB) | peak RSS, process tree (MiB) | saved index (MiB) |
|---|---|---|---|---|---|
{rows}

Growth from {small:,} to {large:,} images: main process peak **{growth_rss:+.1f} MiB**, process tree
peak {growth_tree:+.1f} MiB, saved index **{growth_index:+.1f} MiB**. Target: the peak grows by no more
than the index itself — {'met' if result['meets_target'] else 'missed'}.
"""
    (RESULTS / "build_memory.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
