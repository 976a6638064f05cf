"""On-disk cache of vbow per-image features for the benchmarks.

Extracting SIFT from a few thousand images takes minutes on two cores, and several benchmarks
(accuracy, scale, edge) and several protocols of one benchmark read the same images with the
same settings. Each image's :class:`vbow.describe.extraction.ImageDescription` is stored once,
as a plain ``.npz`` (no pickle), under ``benchmarks/.cache/features/<settings hash>/``; the key covers the
file's path, size and modification time and every setting that changes the extraction.

Each entry also records the wall-clock milliseconds its extraction took in the worker process
(decode, features, colour), which the benchmarks report as extraction time per image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from vbow import Config, ImageIndex
from vbow.errors import ImageError
from vbow.describe.extraction import ImageDescriber, ImageDescription, resolve_jobs
from vbow.describe.features import LocalFeatures
from vbow.progress import Progress

__all__ = ["CACHE_ROOT", "cached_features", "settings_key"]

logger = logging.getLogger(__name__)

CACHE_ROOT = Path(__file__).resolve().parent / ".cache" / "features"


def settings_key(config: Config) -> str:
    """A short hash of every setting that changes per-image extraction."""
    fields = {k: v for k, v in config.to_dict().items()
              if k in ("method", "max_keypoints", "max_side", "contrast_threshold",
                       "fast_threshold", "colour")}
    if config.min_side:
        fields["min_side"] = config.min_side
    fields["format"] = 1
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _entry_name(path: str) -> str:
    st = os.stat(path)
    ident = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(ident.encode()).hexdigest() + ".npz"


def _save(target: Path, f: ImageDescription, ms: float) -> None:
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent runs may share the cache
    np.savez(tmp, keypoints=f.features.keypoints, descriptors=f.features.descriptors,
             image_size=np.array(f.features.image_size, np.int32), colour=f.colour,
             scale=np.float32(f.scale), ms=np.float32(ms))
    os.replace(tmp, target)


def _load(target: Path, name: str) -> tuple[ImageDescription | None, float]:
    with np.load(target, allow_pickle=False) as z:
        ms = float(z["ms"])
        if z["image_size"].size == 0:  # recorded failure
            return None, ms
        feats = LocalFeatures(z["keypoints"], z["descriptors"],
                              tuple(int(v) for v in z["image_size"]))
        return ImageDescription(name, feats, z["colour"], float(z["scale"])), ms


def _work(extractor: ImageDescriber, jobs: list[tuple[str, str]]) -> int:
    import time

    import cv2
    cv2.setNumThreads(1)
    for path, target in jobs:
        t = time.perf_counter()
        try:
            f = extractor(path)
        except ImageError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            np.savez(target, image_size=np.zeros(0, np.int32), ms=np.float32(0))
            continue
        _save(Path(target), f, (time.perf_counter() - t) * 1000)
    return len(jobs)


def cached_features(paths: Sequence[str], config: Config, *, n_jobs: int = -1,
                    progress: bool | None = None
                    ) -> tuple[list[ImageDescription | None], np.ndarray]:
    """Features of image files, extracted once per settings and cached.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    config : vbow.Config
        Settings (only the extraction ones matter).
    n_jobs : int
        Worker processes for images not cached yet (-1 = all cores).

    Returns
    -------
    features : list
        Per path, its :class:`ImageDescription`, or None when the image could not be read.
    ms : np.ndarray
        ``(len(paths),) float64`` extraction milliseconds per image (as measured when cached).
    """
    folder = CACHE_ROOT / settings_key(config)
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / _entry_name(p) for p in paths]
    todo = [(str(p), str(t)) for p, t in zip(paths, targets) if not t.exists()]
    if todo:
        extractor = ImageIndex(config).extractor
        chunks = [todo[i:i + 16] for i in range(0, len(todo), 16)]
        with Progress(len(todo), f"extracting {config.method}", progress) as bar:
            if resolve_jobs(n_jobs) == 1:
                for c in chunks:
                    bar.update(_work(extractor, c))
            else:
                from joblib import Parallel, delayed
                run = Parallel(n_jobs=resolve_jobs(n_jobs), return_as="generator")
                for done in run(delayed(_work)(extractor, c) for c in chunks):
                    bar.update(done)
    out, ms = [], np.zeros(len(paths))
    for i, (p, t) in enumerate(zip(paths, targets)):
        f, ms[i] = _load(t, str(p))
        out.append(f)
    return out, ms
