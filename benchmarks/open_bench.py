"""Open-time benchmark: what checksums and structural checks cost when opening an index bundle.

Regenerate (writes ``benchmarks/results/open.md`` and ``open.json``)::

    nice -n 10 python3 benchmarks/open_bench.py

For 10,000 and 1,000,000 images it writes a bundle of the ``vbow-index`` format 2 layout
(:mod:`vbow.persist.schema`) at the per-image sizes the scale benchmark measured on real
features (``benchmarks/results/scale.json``: about 361 postings and 466 keypoints per image,
a 65,536-word SIFT vocabulary, 224 colour bins), with valid contents (postings ascending
within each word, ids in range, unique keys, JSON metadata), through the public
:func:`vbow.persist.bundle.save_bundle` (large arrays as ``LazyArray`` fills, so the 1M bundle
is never in memory). Then, in the same process, alternating and repeated, it times:

* ``ImageIndex.load(path)``: the default, CRC-32 of every file and the manifest plus the
  structural checks of :mod:`vbow.persist.validate`;
* ``ImageIndex.load(path, verify_checksums=False)``: the fast open (structural checks only);
* the parts: ``load_bundle`` with and without CRCs, and ``validate_index_bundle`` alone.

The bundle files are in the page cache (they were just written or read): these are warm opens.
A cold open also pays the disk read of every byte when checksums are on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import vbow
from vbow.persist.bundle import load_bundle, save_bundle
from vbow.persist.schema import FORMAT, FORMAT_VERSION
from vbow.persist.validate import validate_index_bundle
from vbow.search.lazy_array import LazyArray

HERE = Path(__file__).resolve().parent
COMMAND = "nice -n 10 python3 benchmarks/open_bench.py"
N_WORDS = 65536
N_CELLS = 256
POSTINGS_PER_IMAGE = 361          # scale.json at 1M: 360,664,077 postings
FEATURES_PER_IMAGE = 466          # scale.json at 1M: 3,727.5 bytes of geometry (8 B each) per image
CHUNK = 1 << 24


def _word_counts(n_images: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like postings per word, each at most ``n_images`` (one posting per image and word)."""
    total = POSTINGS_PER_IMAGE * n_images
    weights = 1.0 / (np.arange(N_WORDS) + 30.0) ** 0.8
    rng.shuffle(weights)
    counts = np.minimum(np.floor(weights / weights.sum() * total), n_images).astype(np.int64)
    return counts


def _postings(counts: np.ndarray, n_images: int, seed: int) -> LazyArray:
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])

    def fill(out: np.ndarray) -> None:
        rng = np.random.default_rng(seed)
        for s in range(0, total, CHUNK):
            idx = np.arange(s, min(total, s + CHUNK), dtype=np.int64)
            word = np.searchsorted(offsets, idx, side="right") - 1
            rank = idx - offsets[word]
            docs = rank * n_images // counts[word]      # strictly ascending within a word
            code = rng.integers(0, 4, idx.shape[0], dtype=np.uint32)
            out[s:s + idx.shape[0]] = (docs.astype(np.uint32) << np.uint32(2)) | code
    return LazyArray((total,), np.dtype("<u4"), fill)


def _random(shape: tuple[int, ...], dtype: str, high: int, seed: int) -> LazyArray:
    def fill(out: np.ndarray) -> None:
        rng = np.random.default_rng(seed)
        flat = out.reshape(-1)
        for s in range(0, flat.shape[0], CHUNK):
            e = min(flat.shape[0], s + CHUNK)
            flat[s:e] = rng.integers(0, high, e - s, dtype=np.int64).astype(dtype)
    return LazyArray(shape, np.dtype(dtype), fill)


def _strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [v.encode("utf-8") for v in values]
    blob = np.frombuffer(b"".join(encoded), np.uint8)
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return blob, offsets


def write_bundle(path: Path, n: int) -> dict:
    """Write a valid n-image index bundle; returns its size and write time."""
    rng = np.random.default_rng(n)
    config = vbow.Config(n_words=N_WORDS)
    n_bins = config.colour.n_bins
    counts = _word_counts(n, rng)
    cells = np.linspace(0, N_WORDS, N_CELLS + 1).astype(np.int64)
    n_feat = FEATURES_PER_IMAGE * n
    keys_blob, keys_offsets = _strings([f"SKU-{i:08d}" for i in range(n)])
    meta_blob, meta_offsets = _strings([f'{{"category": "c{i % 97}", "n": {i}}}' for i in range(n)])
    arrays = {
        "vocab_coarse": rng.random((N_CELLS, 128), np.float32),
        "vocab_words": rng.random((N_WORDS, 128), np.float32),
        "vocab_cell_offsets": cells,
        "vocab_idf": (rng.random(N_WORDS, np.float32) * 10).astype(np.float32),
        "postings_word_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "postings_postings": _postings(counts, n, seed=1),
        "postings_norms": (rng.random(n, np.float32) + 1).astype(np.float32),
        "kp_offsets": (np.arange(n + 1, dtype=np.int64) * FEATURES_PER_IMAGE),
        "kp_words": _random((n_feat,), "<u2", N_WORDS, 2),
        "kp_xy": _random((n_feat, 2), "<u2", 65536, 3),
        "kp_log_scale": _random((n_feat,), "|u1", 256, 4),
        "kp_angle": _random((n_feat,), "|u1", 256, 5),
        "keys_blob": keys_blob, "keys_offsets": keys_offsets,
        "meta_blob": meta_blob, "meta_offsets": meta_offsets,
        "colour": _random((n, n_bins), "|u1", 256, 6),
        "scale": np.ones(n, np.float32),
        "image_size": np.tile(np.array([[640, 480]], np.int32), (n, 1)),
    }
    manifest = {"vbow_version": vbow.__version__, "n_images": n, "config": config.to_dict(),
                "vocabulary": {"params": {"n_words": N_WORDS, "probes": 2,
                                          "min_points_per_word": 4, "random_state": 0,
                                          "coarse_sample_per_cell": 256},
                               "state": {"kind": "kmeans", "n_training_images": 0},
                               "n_words": N_WORDS}}
    if path.exists():
        shutil.rmtree(path)
    t = time.perf_counter()
    save_bundle(path, FORMAT, FORMAT_VERSION, manifest, arrays)
    write_s = time.perf_counter() - t
    size = sum(f.stat().st_size for f in path.iterdir())
    return {"bytes": size, "write_seconds": round(write_s, 2),
            "n_postings": int(counts.sum()), "n_features": n_feat}


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(path: Path, repeats: int) -> dict:
    times: dict[str, list[float]] = {k: [] for k in (
        "open_checked", "open_fast", "bundle_crc", "bundle_no_crc", "validate")}
    vbow.ImageIndex.load(path, verify_checksums=False)   # warm the page cache once
    for _ in range(repeats):
        times["open_checked"].append(_time(lambda: vbow.ImageIndex.load(path)))
        times["open_fast"].append(_time(lambda: vbow.ImageIndex.load(path, verify_checksums=False)))
        times["bundle_crc"].append(_time(lambda: load_bundle(path, FORMAT, FORMAT_VERSION)))
        manifest, arrays = load_bundle(path, FORMAT, FORMAT_VERSION, verify_checksums=False)
        times["bundle_no_crc"].append(_time(lambda: load_bundle(path, FORMAT, FORMAT_VERSION,
                                                                verify_checksums=False)))
        times["validate"].append(_time(lambda: validate_index_bundle(manifest, arrays, path)))
        del arrays
    out = {f"{k}_seconds": round(statistics.median(v), 4) for k, v in times.items()}
    out["crc_seconds"] = round(out["bundle_crc_seconds"] - out["bundle_no_crc_seconds"], 4)
    out["checked_over_fast"] = round(out["open_checked_seconds"] / out["open_fast_seconds"], 2)
    out["repeats"] = repeats
    return out


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def write_report(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "open.json").write_text(json.dumps(result, indent=1) + "\n")
    rows = result["sizes"]
    lines = ["# Opening an index bundle: checksums and structural checks", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores, load average at start "
             f"{result['machine']['load_average_at_start']} (shared machine: compare the ratios, "
             f"measured side by side in one process)", "",
             "Warm page cache; medians of the repeats. `ImageIndex.load(path)` checks CRC-32 of "
             "every file and of the manifest, then the structural checks; the fast open "
             "(`verify_checksums=False`) does only the structural checks.", "",
             "| images | bundle GB | default open s | fast open s | default / fast | CRC s | "
             "structural checks s | bundle read, no CRC s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["open"]
        lines.append(f"| {r['n_images']:,} | {r['bundle']['bytes'] / 1e9:.2f} | "
                     f"{m['open_checked_seconds']:.3f} | {m['open_fast_seconds']:.3f} | "
                     f"{m['checked_over_fast']:.1f} | {m['crc_seconds']:.3f} | "
                     f"{m['validate_seconds']:.3f} | {m['bundle_no_crc_seconds']:.4f} |")
    lines += ["", result["notes"], ""]
    (out_dir / "open.md").write_text("\n".join(lines))


NOTES = """## Reading the numbers

- The CRC-32 pass reads every byte once: its cost is the bundle size over zlib's CRC-32 speed
  (about 1.3 GB/s per core on this machine), shared between threads when there are several
  files. The structural checks read the postings, keypoint words and string tables once, in
  4M-element chunks.
- **The checked open exceeds 1 s at 1M images.** The checks are bandwidth-bound passes: the
  CRC over all 5.5 GB, and the structural checks, which read the postings once (1.4 GB) plus
  the string tables and the vocabulary (the kp word ids are not read, because a uint16 array
  cannot exceed a 65,536-word vocabulary). zlib's CRC-32 runs at 1.3-1.8 GB/s per core on
  these hosts, so the CRC alone takes 1.5-2 s on 2 threads for 5.5 GB: over 1 s on any
  machine like this one. The fast open skips only the CRC; whether it stays under 1 s
  depends on the host's memory bandwidth and load (0.80 s on an idle Intel Xeon host on
  2026-12-07, 3.9 s on an AMD EPYC host at load average 30 on 2026-12-02).
- **Choice above 1 s at 1M images.** The options were (a) a faster hash (xxHash3 or hardware
  CRC-32C, about 10x zlib's CRC-32, but a new dependency and a format change), (b) verifying
  lazily or in the background (a query could then run on unverified pages, which is what
  the checks exist to prevent), and (c) a documented fast open. vbow keeps CRC-32 on by
  default (a corrupt bundle is refused before it answers) and offers
  `ImageIndex.load(path, verify_checksums=False)`: it skips only the CRCs; the manifest, every
  `.npy` header, file sizes, types and names and all structural checks still run, so a
  corrupt bundle cannot make a query read out of range or fail with an untyped error, but
  flipped bits inside values (descriptors, norms, colours, geometry) go unnoticed. Use it for
  bundles already verified once, e.g. a service that opens the same bundle in many workers
  after one checked open."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", default=os.environ.get("VBOW_OPEN_WORK", "/tmp/persist-open-bench"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--keep", action="store_true", help="keep the bundles")
    parser.add_argument("--reuse", action="store_true",
                        help="measure bundles kept by an earlier --keep run instead of writing them")
    args = parser.parse_args()
    result = {"command": COMMAND, "machine": machine(), "vbow_version": vbow.__version__,
              "sizes": [], "notes": NOTES}
    work = Path(args.work)
    for n in args.sizes:
        path = work / f"open-{n}"
        info = path.parent / f"open-{n}.json"
        if args.reuse and info.exists() and (path / "manifest.json").exists():
            bundle = json.loads(info.read_text())
        else:
            print(f"writing {n} images ...", file=sys.stderr, flush=True)
            bundle = write_bundle(path, n)
            info.write_text(json.dumps(bundle))
        print(f"  {bundle}", file=sys.stderr, flush=True)
        m = measure(path, args.repeats)
        print(f"  {m}", file=sys.stderr, flush=True)
        result["sizes"].append({"n_images": n, "bundle": bundle, "open": m})
        if not args.keep:
            shutil.rmtree(path)
            info.unlink()
    write_report(result, Path(args.out))


if __name__ == "__main__":
    main()
