"""What image-input safety costs: vbow.read_image against plain OpenCV on real photos, and how fast
header bombs are refused.

For every photo, in one process and alternating, three timings:

* ``vbow``: ``vbow.read_image(path, max_side=640)`` (regular-file check, size cap, header sniff and
  pixel limit, then decoding with libjpeg DCT downscaling, EXIF orientation, BGR conversion);
* ``opencv``: ``cv2.imread(path)`` then ``cv2.resize`` to a 640-pixel longer side (INTER_AREA), what
  a user would write by hand, with none of the checks;
* ``checks``: only the checks vbow adds before decoding (``read_file`` + ``sniff_image``).

Then the refusal time and the process's peak-RSS growth for three bombs: a 69-byte PNG claiming
10^10 pixels, the 875 KB PNG whose valid zlib stream decodes to 30000 x 30000, and a JPEG whose frame
header says 65535 x 65535.

Writes ``benchmarks/results/input.md`` and ``input.json``.

    nice -n 10 python3 benchmarks/input_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

import vbow
from vbow.describe.image_header import sniff_image
from vbow.describe.image_sources import read_file

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
COMMAND = "nice -n 10 python3 benchmarks/input_bench.py"


def photos(limit: int) -> dict[str, list[Path]]:
    """Real JPEG photos: smvs_dvd (1024 x 768 phone photos) and ukbench (320 x 240)."""
    out = {}
    for name in ("smvs_dvd", "ukbench"):
        files = sorted(p for p in (DATASETS / name).rglob("*.jpg"))[:limit]
        if files:
            out[name] = files
    return out


def opencv_read(path: Path, max_side: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
    return image


def time_files(files: list[Path], repeats: int) -> dict[str, float]:
    t = {"vbow": [], "opencv": [], "checks": []}
    for _ in range(repeats):
        for path in files:
            a = time.perf_counter()
            vbow.read_image(path, max_side=640)
            b = time.perf_counter()
            opencv_read(path, 640)
            c = time.perf_counter()
            sniff_image(read_file(path))
            d = time.perf_counter()
            t["vbow"].append(b - a)
            t["opencv"].append(c - b)
            t["checks"].append(d - c)
    med = {k: float(np.median(v)) for k, v in t.items()}
    return {"images": len(files), "calls": len(t["vbow"]),
            "vbow_ms_p50": med["vbow"] * 1e3, "opencv_ms_p50": med["opencv"] * 1e3,
            "checks_ms_p50": med["checks"] * 1e3,
            "vbow_over_opencv": med["vbow"] / med["opencv"],
            "checks_share_of_vbow": med["checks"] / med["vbow"]}


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _zeros_stream(width: int, height: int) -> bytes:
    block = 1 << 20
    full, rest = divmod(height * (width + 1), block)
    comp = zlib.compressobj(9)
    first = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    return first + repeat * (full - 1) + comp.compress(bytes(rest)) + comp.flush()


def bombs() -> list[dict]:
    jpeg = bytearray(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    i = jpeg.find(b"\xff\xc0")
    jpeg[i + 5:i + 9] = struct.pack(">HH", 65535, 65535)
    cases = {"PNG header claiming 100000 x 100000": _png(100_000, 100_000, zlib.compress(bytes(64))),
             "PNG with a valid stream of 30000 x 30000": _png(30000, 30000, _zeros_stream(30000, 30000)),
             "JPEG frame header 65535 x 65535": bytes(jpeg)}
    out = []
    for name, data in cases.items():
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            vbow.read_image(data)
            error = None
        except vbow.VbowError as exc:
            error = type(exc).__name__
        seconds = time.perf_counter() - t
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
        out.append({"input": name, "bytes": len(data), "error": error, "ms": seconds * 1e3,
                    "peak_rss_growth_mib": growth / 1024})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="photos per dataset")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    sets = photos(args.limit)
    if not sets:
        raise SystemExit(f"no photos under {DATASETS}: this benchmark reads the shared datasets")
    files = {name: time_files(paths, args.repeats) for name, paths in sets.items()}
    refused = bombs()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
              f"Linux {platform.release()}, Python {platform.python_version()}, " \
              f"OpenCV {cv2.__version__}"
    result = {"command": COMMAND, "machine": machine, "load_average_at_start": load,
              "files": files, "bombs": refused}
    out = ROOT / "benchmarks" / "results"
    (out / "input.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Image input: the cost of the safety checks, and bombs refused", "",
             f"Command: `{COMMAND}`  ", f"Machine: {machine}; load average {load:.1f} at the start "
             "(shared machine: compare the ratios, measured side by side in one process, not the "
             "absolute times).", "",
             "Per photo, alternating in one process: `vbow.read_image(path, max_side=640)`; "
             "`cv2.imread` + `cv2.resize` to 640 (no checks); the checks alone "
             "(`read_file` + `sniff_image`). Medians.", "",
             "| photos | images x repeats | vbow ms | OpenCV ms | checks ms | vbow / OpenCV | "
             "checks / vbow |", "|---|---|---|---|---|---|---|"]
    for name, r in files.items():
        lines.append(f"| {name} | {r['calls']} | {r['vbow_ms_p50']:.2f} | {r['opencv_ms_p50']:.2f} | "
                     f"{r['checks_ms_p50']:.3f} | {r['vbow_over_opencv']:.3f} | "
                     f"{r['checks_share_of_vbow']:.4f} |")
    lines += ["", "Bombs (each `vbow.read_image(data)` with the default `max_pixels`):", "",
              "| input | bytes | error | ms | peak RSS growth MiB |", "|---|---|---|---|---|"]
    for b in refused:
        lines.append(f"| {b['input']} | {b['bytes']:,} | {b['error']} | {b['ms']:.2f} | "
                     f"{b['peak_rss_growth_mib']:.0f} |")
    (out / "input.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
