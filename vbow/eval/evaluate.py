"""Run a retrieval benchmark on a ``groundtruth.csv`` dataset.

Protocol:

* the catalog is every image with role ``db``, ``both`` or ``distractor``, plus every image of
  the ``distractors`` folders; the vocabulary, IDF and everything else learned is fitted on that
  catalog only, never on role-``query`` images;
* every image with role ``query`` or ``both`` is a query;
* for role-``both`` sets, N-S counts the relevant images in the top 4 with the query itself
  counted (UKBench's score, at most 4); recall@1 and mAP leave the query itself out;
* mAP is computed over the top ``top_k`` results (relevant images ranked lower count as missed).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from vbow.config import Config
from vbow.eval.datasets import Dataset, load_source
from vbow.errors import DatasetError
from vbow.index import ImageIndex
from vbow.eval.metrics import average_precision, ns_score, recall_at_k
from vbow.results import ImageFailure

__all__ = ["EvaluationReport", "evaluate", "score_rankings", "machine_description"]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    """Scores and timings of one evaluation run (see the module docstring for the protocol)."""

    dataset: str
    n_db: int
    n_queries: int
    ns: float | None
    recall_at_1: float
    map: float
    seconds: float
    timings: dict[str, float]
    preset: str = "sift"
    failed: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_description() -> str:
    """One line naming this machine (for benchmark reports)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def score_rankings(rankings: Sequence[Sequence[str]], query_keys: Sequence[str],
                   query_groups: Sequence[str | None], catalog_groups: dict[str, str | None],
                   query_in_catalog: bool) -> dict[str, float | None]:
    """Score ranked key lists against groups.

    Parameters
    ----------
    rankings : sequence of sequence of str
        Per query, catalog keys best first.
    query_keys : sequence of str
        Each query's own catalog key (used only when ``query_in_catalog``).
    query_groups : sequence of str
        Each query's group.
    catalog_groups : dict
        Catalog key → group (None for distractors).
    query_in_catalog : bool
        Role-``both`` protocol: N-S with the query counted; recall@1 and mAP without it.

    Returns
    -------
    dict
        ``ns`` (None unless ``query_in_catalog``), ``recall_at_1``, ``map``.
    """
    group_sizes: dict[str, int] = {}
    for g in catalog_groups.values():
        if g is not None:
            group_sizes[g] = group_sizes.get(g, 0) + 1
    ns_total, r1, ap = [], [], []
    for ranking, own, group in zip(rankings, query_keys, query_groups):
        rel = np.array([catalog_groups.get(k) == group and group is not None for k in ranking], bool)
        if query_in_catalog:
            ns_total.append(ns_score(rel))
            keep = np.array([k != own for k in ranking], bool)
            rel = rel[keep]
            n_rel = group_sizes.get(group, 0) - 1
        else:
            n_rel = group_sizes.get(group, 0)
        r1.append(recall_at_k(rel, 1))
        ap.append(average_precision(rel, n_rel))
    return {"ns": float(np.mean(ns_total)) if query_in_catalog and ns_total else None,
            "recall_at_1": float(np.mean(r1)) if r1 else 0.0,
            "map": float(np.mean(ap)) if ap else 0.0}


def catalog_of(dataset: Dataset, distractors: Sequence[str | os.PathLike] = ()) -> tuple[list, list, list]:
    """Catalog paths, keys and groups: the dataset's catalog side plus distractor folders."""
    paths, keys, groups = [], [], []
    for im in dataset.catalog:
        paths.append(str(im.path))
        keys.append(f"{dataset.name}/{im.relative}")
        groups.append(im.group if im.role != "distractor" else None)
    for folder in distractors:
        extra = load_source(folder)
        for im in extra.images:
            if im.role == "query":
                continue  # never index another set's queries
            paths.append(str(im.path))
            keys.append(f"{extra.name}/{im.relative}")
            groups.append(None)
    return paths, keys, groups


def evaluate(dataset: str | os.PathLike, distractors: Sequence[str | os.PathLike] = (), *,
             preset: str | Config = "sift", top_k: int = 100, progress: bool | None = None,
             index: ImageIndex | None = None, search_options: dict[str, Any] | None = None,
             **overrides: Any) -> EvaluationReport:
    """Build an index on the dataset's catalog side and run every query.

    Parameters
    ----------
    dataset : path
        Folder with ``groundtruth.csv`` (or the csv itself).
    distractors : sequence of paths
        Folders (plain, or with a ``groundtruth.csv``) whose images are added to the catalog.
    preset : str or Config
        Engine preset.
    top_k : int
        Results per query (mAP depth).
    index : ImageIndex, optional
        Reuse an index already built on this exact catalog (skips building).
    search_options : dict, optional
        Extra keyword arguments for :meth:`ImageIndex.search_many` (e.g. ``rerank=False``).
    progress : bool or None
        Progress bars for building, query features and searching (None: when stderr is a
        terminal or in Jupyter, see :func:`vbow.progress.progress_enabled`).
    **overrides
        :class:`vbow.Config` settings.

    Returns
    -------
    EvaluationReport
    """
    ds = load_source(dataset)
    if not any(im.group for im in ds.images):
        raise DatasetError(f"{dataset}: no groundtruth groups; evaluate needs a groundtruth.csv")
    paths, keys, groups = catalog_of(ds, distractors)
    queries = ds.queries
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if index is None:
        index = ImageIndex(preset, **overrides)
        report = index.build(paths, keys=keys, metadata=None, progress=progress)
        failed = [f.source for f in report.failed]
        seconds["build"] = time.perf_counter() - t0
    else:
        failed = []
    catalog_groups = dict(zip(keys, groups))
    key_of_path = dict(zip(paths, keys))
    q_paths = [str(im.path) for im in queries]
    t = time.perf_counter()
    # public path: query features extracted in parallel, then each query searched in turn
    answers = index.search_many(q_paths, top_k, progress=progress, **(search_options or {}))
    wall = time.perf_counter() - t
    rankings, latencies = [], []
    for answer in answers:
        if isinstance(answer, ImageFailure):
            failed.append(answer.source)
            rankings.append([])
        else:
            rankings.append([m.key for m in answer])
            latencies.append(answer.timings.get("total", 0.0))
    searching = float(sum(latencies))
    seconds["query_features"] = max(wall - searching, 0.0)
    seconds["search"] = searching
    seconds["total"] = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.zeros(1)
    scores = score_rankings(rankings, [key_of_path.get(p, "") for p in q_paths],
                            [im.group for im in queries], catalog_groups, ds.has_both)
    preset_name = preset if isinstance(preset, str) else "custom"
    return EvaluationReport(ds.name, len(index), len(queries), scores["ns"], scores["recall_at_1"],
                            scores["map"], round(seconds["total"], 3),
                            {k: round(v, 3) for k, v in seconds.items()}, preset_name, failed,
                            {"search_ms_p50": round(float(np.percentile(lat, 50)) * 1000, 2),
                             "search_ms_p95": round(float(np.percentile(lat, 95)) * 1000, 2),
                             "machine": machine_description()})
