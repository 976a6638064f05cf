"""One shard of a sharded index: an :class:`vbow.ImageIndex` answering the scatter steps.

:class:`vbow.distributed.shards.ShardedIndex` holds one :class:`ShardServer` per shard, as a Dask
actor on a worker or in process, and merges their answers (see :mod:`vbow.distributed.shards`
for why the merge is exact).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from vbow.distributed.allocator import keep_large_allocations
from vbow.errors import InvalidInputError
from vbow.verify.verification import QueryWords

__all__ = ["ShardServer"]


class ShardServer:
    """One shard: an :class:`vbow.ImageIndex` opened memory-mapped, answering the scatter steps.

    Created on a Dask worker as an actor (``client.submit(ShardServer, path, actor=True)``), or
    in process. Every method takes and returns plain numpy arrays, lists and dicts.

    Parameters
    ----------
    path : path
        The shard's saved index.
    mmap : bool
        Open it memory-mapped.
    keep_allocations : bool
        Call :func:`vbow.distributed.allocator.keep_large_allocations` for this process, so that
        the per-query arrays are not mapped afresh on every query (half of each scatter step's
        time on a Dask worker otherwise). Process-wide; pass False to leave malloc alone.
    """

    def __init__(self, path: str | os.PathLike, mmap: bool = True,
                 keep_allocations: bool = True) -> None:
        from vbow.index import ImageIndex

        if keep_allocations:
            keep_large_allocations()
        self.path = os.fspath(path)
        self.index = ImageIndex.load(path, mmap=mmap)
        if self.index.config.idf_source != "vocabulary":
            raise InvalidInputError(f"sharded search needs idf_source='vocabulary'; shard "
                                    f"{self.path} uses {self.index.config.idf_source!r}")

    def stats(self) -> dict[str, Any]:
        """Live images and ``(n_words,) int64`` postings per word (over every segment, removed
        images included, as the postings budget counts them)."""
        with self.index.reading() as plan:
            postings = plan.state.postings
            lengths = np.zeros(postings.n_words, np.int64)
            for seg in postings.segments:
                lengths += np.diff(np.asarray(seg.word_offsets, np.int64))
            return {"n_live": plan.state.n_live, "word_lengths": lengths,
                    "pid": os.getpid()}

    def candidates(self, words: np.ndarray, weights: np.ndarray, query_colour: np.ndarray,
                   where: Any, pool_size: int, covers_all: bool, depth: int,
                   extra: np.ndarray) -> dict[str, Any]:
        """Score the (already budgeted) query words and return this shard's candidates.

        Parameters
        ----------
        words, weights : np.ndarray
            ``(m,) int32`` words and ``(m,) float32`` L2-normalised TF-IDF weights; read whole.
        query_colour : np.ndarray
            ``(n_bins,) float32`` the query's colour signature.
        where : mapping, callable or None
            Metadata filter.
        pool_size : int
            ``colour_candidates``: this shard's best images by words that may enter the pool.
        covers_all : bool
            The whole catalog fits the pool: return every live image as pool-eligible.
        depth : int
            Also return the best ``depth`` allowed images by words.
        extra : np.ndarray
            ``(e,) int64`` local ids to return as well (images given a re-ranking bonus).

        Returns
        -------
        dict
            ``n_live``, ``n_allowed``, and per candidate: ``ids`` (local, int64), ``bow``
            (float32), ``colour`` (float64), ``allowed`` (bool), ``eligible`` (bool: may enter
            the pool).
        """
        from vbow.search.fusion import select_pool

        with self.index.reading() as plan:
            state = plan.state
            bow = state.postings.scores(np.asarray(words, np.int32), np.asarray(weights, np.float32),
                                        state.idf, max_postings=None)
            allowed = plan.allowed(where)
            live = state.postings.alive
            eligible_ids = np.flatnonzero(live) if covers_all else select_pool(bow, int(pool_size))
            allowed_ids = np.flatnonzero(allowed)
            if depth > 0 and allowed_ids.size > depth:
                part = np.argpartition(-bow[allowed_ids], depth - 1)[:depth]
                allowed_ids = allowed_ids[part]
            ids = np.unique(np.concatenate([eligible_ids.astype(np.int64), allowed_ids.astype(np.int64),
                                            np.asarray(extra, np.int64)]))
            q = np.clip(np.rint(np.asarray(query_colour, np.float32) * 255), 0, 255).astype(np.float32)
            colour = (state.catalog.colour[ids].astype(np.float32) @ q).astype(np.float64) / (255.0 * 255.0)
            return {"n_live": int(np.count_nonzero(live)),
                    "n_allowed": int(np.count_nonzero(allowed)), "ids": ids,
                    "bow": bow[ids], "colour": colour, "allowed": allowed[ids],
                    "eligible": np.isin(ids, eligible_ids)}

    def verify(self, features: Any, assignments: np.ndarray, ids: np.ndarray) -> dict[int, Any]:
        """Geometric verification of local images ``ids`` (:meth:`vbow.query.QueryPlan.verify`).

        Returns ``{local id: Verification}`` for the images that verified."""
        with self.index.reading() as plan:
            matcher = QueryWords(np.asarray(assignments), max_fanout=plan.config.max_fanout)
            return plan.verify(features, matcher, np.asarray(ids, np.int64))

    def expansion_parts(self, ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stored words ``(n_i,) int64`` and colour ``(n_bins,) uint8`` of local images."""
        with self.index.reading() as plan:
            return [(plan.state.store.get(int(d))[0], np.asarray(plan.state.catalog.colour[int(d)]))
                    for d in np.asarray(ids, np.int64).tolist()]

    def details(self, ids: np.ndarray, pairs: Mapping[int, np.ndarray]) -> list[dict[str, Any]]:
        """Key, metadata and scale of local images, and the catalog keypoints ``(k, 2)`` of the
        given inlier pairs (``{local id: (k,) int}`` catalog feature indices)."""
        out = []
        with self.index.reading() as plan:
            catalog, store = plan.state.catalog, plan.state.store
            for d in np.asarray(ids, np.int64).tolist():
                item = {"key": catalog.key(d), "metadata": catalog.metadata(d),
                        "scale": float(catalog.scale[d]),
                        "size": tuple(int(x) for x in catalog.size[d])}
                if d in pairs:
                    _, kp = store.get(d)
                    item["points"] = kp[np.asarray(pairs[d], np.int64), :2]
                out.append(item)
        return out

    def add(self, images: Sequence[Any], keys: Sequence[str],
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
        """Index images on this shard (extraction runs here). Returns the AddReport as a dict."""
        report = self.index.add(list(images), keys=list(keys), metadata=metadata, progress=False)
        return {"added": list(report.added), "failed": [dataclasses.asdict(f) for f in report.failed]}

    def remove(self, keys: Sequence[str]) -> int:
        """Remove images by key (KeyError for an unknown one, nothing removed)."""
        return self.index.remove(list(keys))

    def save(self, path: str | os.PathLike | None = None) -> str:
        """Save the shard (default: over its own bundle, atomically)."""
        return os.fspath(self.index.save(self.path if path is None else path))
