"""Resumable segmented build, locally or on a Dask cluster.

:func:`build_index` indexes a catalog (a manifest CSV, a dataset or a folder, see
:mod:`vbow.distributed.catalog_source`) in fixed batches:

1. the vocabulary is trained once, with :meth:`vbow.ImageIndex.fit` (which takes its own
   seeded sample of at most ``max_training_images`` images) and saved in the work directory;
   with a Dask client the sample's features are extracted on the workers (joblib's Dask
   backend);
2. every batch not yet finished becomes a segment (:func:`vbow.distributed.segments.build_segment`):
   in this process, or as one Dask task per batch, extraction and quantisation on the worker,
   which writes the segment to the shared work directory itself (only the work-directory path
   and the batch's entries travel, never an index object). Dask reschedules the tasks of a
   worker that dies;
3. the segments are appended in batch order (:meth:`vbow.ImageIndex.extend`) and saved as one
   bundle.

Run again with the same arguments after a kill, it reuses the vocabulary and every published
segment and builds only the missing batches; the result is the same index an uninterrupted
run gives (the batches and their content depend only on the entries and the settings). It also
equals :meth:`vbow.ImageIndex.build` over the same images and keys.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vbow.config import Config, get_config
from vbow.distributed.catalog_source import CatalogEntry, fingerprint, load_entries, make_batches
from vbow.distributed.segments import SegmentInfo, WorkDir, build_segment
from vbow.errors import InvalidInputError
from vbow.progress import Progress
from vbow.results import AddReport, ImageFailure

__all__ = ["SegmentedBuildReport", "build_index", "prepare_build", "merge_segments",
           "DEFAULT_BATCH_SIZE"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
#: settings that do not change what is built (excluded from the plan's fingerprint)
_RUN_ONLY_SETTINGS = ("n_jobs",)


@dataclass(frozen=True)
class SegmentedBuildReport:
    """What :func:`build_index` did.

    Attributes
    ----------
    added : tuple of str
        Keys indexed, in index order.
    failed : tuple of ImageFailure
        Inputs that could not be read (each named, with its error), as in a local build.
    seconds : float
        Wall time of this run.
    n_batches : int
        Batches in the plan.
    reused : tuple of int
        Batches already finished by an earlier run (not redone).
    built : tuple of int
        Batches this run built.
    path : Path or None
        The merged bundle (None with ``merge=False``).
    """

    added: tuple[str, ...]
    failed: tuple[ImageFailure, ...]
    seconds: float
    n_batches: int
    reused: tuple[int, ...]
    built: tuple[int, ...]
    path: Path | None

    def as_add_report(self) -> AddReport:
        """The same outcome as an :class:`vbow.results.AddReport`."""
        return AddReport(self.added, self.failed, self.seconds)


def _plan(entries: Sequence[CatalogEntry], config: Config, batch_size: int) -> dict[str, Any]:
    settings = {k: v for k, v in config.to_dict().items() if k not in _RUN_ONLY_SETTINGS}
    return {"fingerprint": fingerprint(entries, {"config": settings, "batch_size": batch_size}),
            "n_entries": len(entries), "batch_size": int(batch_size),
            "n_batches": -(-len(entries) // int(batch_size))}


def _train_vocabulary(work: WorkDir, entries: Sequence[CatalogEntry], config: Config,
                      client: Any, progress: bool | None) -> None:
    from vbow.index import ImageIndex

    index = ImageIndex(config)
    paths = [e.path for e in entries]
    t = time.perf_counter()
    if client is None:
        index.fit(paths, progress=progress)
    else:
        from joblib import parallel_config

        with client.as_current(), parallel_config(backend="dask"):
            index.fit(paths, progress=progress)
    index.save(work.vocabulary_path)
    logger.info("vocabulary trained in %.1fs and saved to %s", time.perf_counter() - t,
                work.vocabulary_path)


def _run_local(work: WorkDir, batches: list[list[CatalogEntry]], pending: list[int], n_jobs: int,
               progress: bool | None) -> dict[int, SegmentInfo]:
    out: dict[int, SegmentInfo] = {}
    with Progress(sum(len(batches[b]) for b in pending), "segments", progress) as bar:
        for b in pending:
            out[b] = build_segment(os.fspath(work.root), b, batches[b], n_jobs)
            bar.update(len(batches[b]))
    return out


def _run_dask(client: Any, work: WorkDir, batches: list[list[CatalogEntry]], pending: list[int],
              plan_id: str, progress: bool | None, retries: int) -> dict[int, SegmentInfo]:
    from distributed import as_completed

    root = os.fspath(work.root)
    futures = [client.submit(build_segment, root, b, batches[b], 1, pure=False, retries=retries,
                             key=f"vbow-segment-{plan_id[:12]}-{b:06d}-{time.time_ns()}")
               for b in pending]
    owner = {f.key: b for f, b in zip(futures, pending)}
    out: dict[int, SegmentInfo] = {}
    with Progress(sum(len(batches[b]) for b in pending), "segments", progress) as bar:
        for fut in as_completed(futures):
            info = fut.result()
            out[owner[fut.key]] = info
            bar.update(len(batches[owner[fut.key]]))
    return out


def merge_segments(work_dir: str | os.PathLike, n_batches: int | None = None) -> "Any":
    """Append every segment of a finished build, in batch order, to its vocabulary.

    Parameters
    ----------
    work_dir : str or os.PathLike
        The build's work directory.
    n_batches : int, optional
        Batches expected (default: from the plan); a missing one raises.

    Returns
    -------
    ImageIndex
        One index over every segment (in memory; segments are read memory-mapped).
    """
    import json

    from vbow.index import ImageIndex

    work = WorkDir(work_dir)
    if n_batches is None:
        with open(work.plan_path, encoding="utf-8") as fh:
            n_batches = int(json.load(fh)["n_batches"])
    missing = [b for b in range(n_batches) if not work.is_done(b)]
    if missing:
        raise InvalidInputError(f"{work.root}: {len(missing)} of {n_batches} segments are not "
                                f"built yet (first: batch {missing[0]}); run the build again")
    merged = ImageIndex.load(work.vocabulary_path, mmap=False)
    for b in range(n_batches):
        merged.extend(ImageIndex.load(work.segment_path(b), mmap=True))
    return merged


def prepare_build(source: str | os.PathLike | Sequence[CatalogEntry], work_dir: str | os.PathLike,
                  *, preset: str | Config = "sift", batch_size: int = DEFAULT_BATCH_SIZE,
                  client: Any = None, progress: bool | None = None,
                  **overrides: Any) -> int:
    """Write the plan and train the vocabulary of a build, without building any segment.

    A later :func:`build_index` with the same arguments (and this ``work_dir``) starts from
    here; copies of the prepared directory let benchmarks time segment building alone.

    Returns
    -------
    int
        Number of batches in the plan.
    """
    entries, config, plan, work = _start(source, None, work_dir, preset, batch_size, overrides)
    if not work.has_vocabulary():
        _train_vocabulary(work, entries, config, client, progress)
    return int(plan["n_batches"])


def _start(source, out, work_dir, preset, batch_size, overrides):
    if out is None and work_dir is None:
        raise InvalidInputError("give out, work_dir, or both")
    work = WorkDir(work_dir if work_dir is not None else f"{os.fspath(out)}.segments")
    entries = load_entries(source) if isinstance(source, (str, os.PathLike)) else list(source)
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise InvalidInputError(f"duplicate key {dup!r} in the catalog")
    if not entries:
        raise InvalidInputError(f"no catalog entries in {source}")
    config = get_config(preset, **overrides)
    plan = _plan(entries, config, batch_size)
    work.start(plan)
    return entries, config, plan, work


def build_index(source: str | os.PathLike | Sequence[CatalogEntry], out: str | os.PathLike | None,
                *, work_dir: str | os.PathLike | None = None, preset: str | Config = "sift",
                batch_size: int = DEFAULT_BATCH_SIZE, client: Any = None,
                progress: bool | None = None, merge: bool = True, retries: int = 2,
                **overrides: Any) -> SegmentedBuildReport:
    """Build (or resume building) an index in segments, locally or on a Dask cluster.

    Parameters
    ----------
    source : path or sequence of CatalogEntry
        A manifest CSV (``key,path,...metadata``), a ``groundtruth.csv``, a folder, or entries.
    out : path or None
        Bundle to write the merged index to (None: do not merge; needs ``work_dir``).
    work_dir : path, optional
        Where the plan, vocabulary and segments live (default ``<out>.segments``). With a
        Dask client it must be reachable at the same path by every worker.
    preset : str or Config
        As for :class:`vbow.ImageIndex`; ``**overrides`` are Config settings.
    batch_size : int
        Images per segment; part of the plan (resuming needs the same value).
    client : dask.distributed.Client, optional
        Run training extraction and the segments on this cluster (default: in this process,
        extraction with ``n_jobs`` processes).
    progress : bool or None
        Show progress (None: when stderr is a terminal).
    merge : bool
        Merge the segments into ``out`` at the end.
    retries : int
        Dask retries of a segment task that raised (a dead worker's tasks are rescheduled by
        the scheduler regardless).

    Returns
    -------
    SegmentedBuildReport

    Raises
    ------
    InvalidInputError
        ``work_dir`` holds another build, a key repeats, or no image could be read.
    """
    t0 = time.perf_counter()
    entries, config, plan, work = _start(source, out, work_dir, preset, batch_size, overrides)
    if not work.has_vocabulary():
        _train_vocabulary(work, entries, config, client, progress)
    batches = make_batches(entries, batch_size)
    done = [b for b in range(len(batches)) if work.is_done(b)]
    pending = [b for b in range(len(batches)) if not work.is_done(b)]
    logger.info("build: %d batches, %d already finished, %d to build", len(batches), len(done),
                len(pending))
    if client is None:
        _run_local(work, batches, pending, config.n_jobs, progress)
    else:
        _run_dask(client, work, batches, pending, plan["fingerprint"], progress, retries)
    infos = [work.info(b) for b in range(len(batches))]
    added = tuple(k for i in infos for k in i.added)
    failed = tuple(f for i in infos for f in i.failed)
    for f in failed:
        logger.warning("skipped %s", f.error)
    if not added:
        raise InvalidInputError("no catalog image could be read; see the failures: " +
                                "; ".join(f.error for f in failed[:5]))
    path = None
    if merge and out is not None:
        path = merge_segments(work.root, len(batches)).save(out)
    return SegmentedBuildReport(added, failed, time.perf_counter() - t0, len(batches),
                                tuple(done), tuple(pending), path)
