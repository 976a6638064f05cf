"""The on-disk state of a segmented build, and the task that builds one segment.

Layout of a work directory (a path every worker and the client can reach)::

    plan.json                 fingerprint of the entries and settings, batch size, batch count
    vocabulary/               an empty index bundle: the vocabulary (and IDF) every segment uses
    segments/batch-000007/    one index bundle per batch, plus segment.json (keys, failures)

A segment is written under a temporary name and published by one ``os.rename`` of its
directory, so ``segments/batch-NNNNNN`` exists only once it is complete: a killed build leaves
at most temporary directories (removed on the next run) and never a half segment that looks
finished. Two attempts at the same batch (a task retried after its worker died) both write
their own temporary copy; the first rename wins and the other copy is discarded, and both are
equal because a batch's content depends only on its entries and the vocabulary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vbow.distributed.catalog_source import CatalogEntry
from vbow.errors import InvalidInputError
from vbow.results import ImageFailure

__all__ = ["WorkDir", "SegmentInfo", "build_segment", "PLAN_FORMAT"]

logger = logging.getLogger(__name__)

PLAN_FORMAT = "vbow-segmented-build"
PLAN_VERSION = 1
_SEGMENT_INFO = "segment.json"


@dataclass(frozen=True)
class SegmentInfo:
    """What one finished batch holds: its keys (images indexed) and its failures."""

    batch: int
    added: tuple[str, ...]
    failed: tuple[ImageFailure, ...]
    seconds: float
    worker: str

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "added": list(self.added),
                "failed": [dataclasses.asdict(f) for f in self.failed],
                "seconds": self.seconds, "worker": self.worker}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SegmentInfo":
        return cls(int(d["batch"]), tuple(d["added"]),
                   tuple(ImageFailure(**f) for f in d["failed"]), float(d["seconds"]),
                   str(d.get("worker", "")))


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WorkDir:
    """Paths and state of one segmented build's work directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.plan_path = self.root / "plan.json"
        self.vocabulary_path = self.root / "vocabulary"
        self.segments = self.root / "segments"

    def segment_path(self, batch: int) -> Path:
        return self.segments / f"batch-{int(batch):06d}"

    def is_done(self, batch: int) -> bool:
        """True when the batch's segment has been published (it is then complete)."""
        return (self.segment_path(batch) / _SEGMENT_INFO).is_file()

    def info(self, batch: int) -> SegmentInfo:
        with open(self.segment_path(batch) / _SEGMENT_INFO, encoding="utf-8") as fh:
            return SegmentInfo.from_json(json.load(fh))

    def has_vocabulary(self) -> bool:
        return (self.vocabulary_path / "manifest.json").is_file()

    def start(self, plan: dict[str, Any]) -> bool:
        """Create the directory and its plan, or check that it holds the same plan.

        Returns
        -------
        bool
            True when a previous run of the same build is being resumed.

        Raises
        ------
        InvalidInputError
            The directory holds a build of another catalog, batch size or settings.
        """
        self.segments.mkdir(parents=True, exist_ok=True)
        plan = {"format": PLAN_FORMAT, "version": PLAN_VERSION, **plan}
        if self.plan_path.is_file():
            with open(self.plan_path, encoding="utf-8") as fh:
                old = json.load(fh)
            if old != plan:
                diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
                raise InvalidInputError(
                    f"{self.root} holds another build (differs in {', '.join(diff)}: "
                    f"fingerprint {str(old.get('fingerprint'))[:12]} there, "
                    f"{str(plan.get('fingerprint'))[:12]} here); use a new work directory")
            self.remove_temporaries()
            return True
        _write_json_atomic(self.plan_path, plan)
        return False

    def remove_temporaries(self) -> int:
        """Delete temporary segment copies left by killed attempts; returns how many."""
        stale = [p for p in self.segments.glob(".batch-*.tmp-*") if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


def build_segment(work_dir: str, batch: int, entries: Sequence[CatalogEntry],
                  n_jobs: int = 1) -> SegmentInfo:
    """Index one batch with the work directory's vocabulary and publish it as a segment.

    Runs on a Dask worker (or in the client for a local build). Idempotent: a batch already
    published is not rebuilt.

    Parameters
    ----------
    work_dir : str
        The build's work directory (shared by the client and every worker).
    batch : int
        Batch number (names the segment).
    entries : sequence of CatalogEntry
        The batch's images.
    n_jobs : int
        Extraction processes for this batch (1 on a Dask worker: the worker is the unit).

    Returns
    -------
    SegmentInfo
        The published segment's keys and failures.
    """
    from vbow.index import ImageIndex

    work = WorkDir(work_dir)
    if work.is_done(batch):
        return work.info(batch)
    logger.info("segment %d: building %d images", batch, len(entries))
    index = ImageIndex.load(work.vocabulary_path, mmap=True)
    if index.config.n_jobs != n_jobs:
        index.config = dataclasses.replace(index.config, n_jobs=int(n_jobs))
    from threadpoolctl import threadpool_limits

    from vbow.describe.extraction import opencv_threads

    # One BLAS thread for quantisation wherever the segment is built: the nearest-word search is
    # a matrix product, and a different thread count can round a near-tie the other way (seen
    # on real images: 1 descriptor in ~20,000 got another word between a 2-thread client and a
    # single-threaded Dask worker), so pinning it makes local and Dask segments identical.
    # With n_jobs=1 this process is the unit of parallelism (a single-threaded Dask worker):
    # OpenCV runs on one thread too, so that workers sharing a machine do not contend.
    # Extraction processes (n_jobs > 1) set that themselves.
    threads = opencv_threads(1) if n_jobs == 1 else contextlib.nullcontext()
    with threadpool_limits(limits=1), threads:
        report = index.add([e.path for e in entries], keys=[e.key for e in entries],
                           metadata=[dict(e.metadata) for e in entries], progress=False)
    worker = f"{os.uname().nodename}:{os.getpid()}"
    info = SegmentInfo(int(batch), report.added, report.failed, report.seconds, worker)
    final = work.segment_path(batch)
    tmp = work.segments / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    index.save(tmp)
    _write_json_atomic(tmp / _SEGMENT_INFO, info.to_json())
    try:
        os.rename(tmp, final)
    except OSError:
        if not work.is_done(batch):
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another attempt published it first
        return work.info(batch)
    _fsync_dir(work.segments)
    logger.info("segment %d: %d images, %d failed, %.1fs on %s", batch, len(info.added),
                len(info.failed), info.seconds, worker)
    return info
