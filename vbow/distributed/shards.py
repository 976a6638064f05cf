"""Sharded search: an index split by key hash into N shards, each held by one server (a Dask
actor on a worker, memory-mapping its bundle), queried as one index.

Why the merge is exact
----------------------
A single index ranks with statistics of the whole catalog (see :mod:`vbow.query` and
:mod:`vbow.search.fusion`): the postings budget picks query words by their postings over all
images, the colour pool is the ``colour_candidates`` best images by words (both scores are
standardised over it), and query expansion averages in the words of the verified images. So,
as Elasticsearch's ``dfs_query_then_fetch``, every such statistic is gathered from all shards
before anything is ranked:

* per-word postings lengths and live counts are gathered from every shard once (and again
  after each ``add``/``remove``), so the client selects the budgeted words globally and the
  shards read exactly those words;
* one scatter of the (client-side described and quantised) query returns, per shard, its live
  and allowed counts and its candidates: its best images by words (enough to form the global
  colour pool, or every live image when the whole catalog fits the pool), its best allowed
  images by words up to the ranking depth (enough for every fallback of
  :class:`~vbow.search.fusion.FusedScores`), and any image asked for by id (verified images,
  which keep their bonus after expansion). Each candidate carries its word score, colour
  similarity and filter flag;
* the client forms the global pool and a :class:`~vbow.search.fusion.FusedScores` over the
  candidates, standardised over that pool, and runs the steps of :class:`vbow.query.QueryPlan`
  on it: shortlist, verification (on the owning shards, with the query's keypoints), expansion
  (the verified images' words fetched from their shards, then a second scatter), results.

The merged results equal one index over the whole catalog: same keys, same order, scores
within float tolerance (shards accumulate their postings in their own order). Ties between
equal scores may be broken differently, as they may between two runs of one index.

``idf_source="database"`` is not supported here: its IDF would have to be recomputed from the
global document frequencies and pushed to every shard on each change.

A shard that does not answer within the timeout is left out: the result then covers the other
shards only and names the missing ones (:attr:`ShardedSearchResult.missing`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vbow.describe.extraction import ImageDescription
from vbow.errors import InvalidInputError, VbowError
from vbow.results import Match, SearchResult
from vbow.search.fusion import FusedScores
from vbow.search.postings import TF_CAP
from vbow.search.weighting import bag_of_words, tfidf
from vbow.verify.rounds import verify_in_rounds
from vbow.distributed.shard_layout import LAYOUT_FILE, read_layout, shard_of, split_index
from vbow.distributed.shard_server import ShardServer

__all__ = ["shard_of", "split_index", "read_layout", "ShardServer", "ShardedIndex",
           "ShardedSearchResult", "ShardTimeoutError", "LAYOUT_FILE"]

logger = logging.getLogger(__name__)

_MATCH_FIELDS = frozenset(f.name for f in dataclasses.fields(Match))


class ShardTimeoutError(VbowError, TimeoutError):
    """No shard answered within the timeout."""


# ----------------------------------------------------------------------------------- client
@dataclass(frozen=True)
class ShardedSearchResult:
    """A merged search result and which shards it covers.

    Attributes
    ----------
    result : SearchResult
        Ranked matches (its ``warnings`` name missing shards).
    missing : tuple of int
        Shards that did not answer within the timeout (empty: the result is complete).
    """

    result: SearchResult
    missing: tuple[int, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def keys(self) -> list[str]:
        return self.result.keys


class _Missing(Exception):
    pass


class ShardedIndex:
    """Search N shards as one index (see the module docstring).

    Parameters
    ----------
    servers : sequence
        One server per shard, in shard order: :class:`ShardServer` objects, or Dask actor
        handles of them (see :meth:`open`).
    vocabulary_path : path
        The layout's vocabulary bundle (queries are described and quantised here, once).
    timeout : float
        Seconds to wait for each scatter step before leaving a shard out.
    """

    def __init__(self, servers: Sequence[Any], vocabulary_path: str | os.PathLike, *,
                 timeout: float = 30.0, client: Any = None) -> None:
        from vbow.index import ImageIndex

        self.servers = list(servers)
        self.n_shards = len(self.servers)
        self.timeout = float(timeout)
        self.client = client
        self._vocab_index = ImageIndex.load(vocabulary_path, mmap=True)
        self.config = self._vocab_index.config
        if self.config.idf_source != "vocabulary":
            raise InvalidInputError("sharded search needs idf_source='vocabulary'; got "
                                    f"{self.config.idf_source!r}")
        self._stats: dict[int, dict[str, Any]] = {}
        self.refresh()

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, client: Any, layout_dir: str | os.PathLike, *, timeout: float = 30.0,
             workers: Sequence[str] | None = None) -> "ShardedIndex":
        """Start one :class:`ShardServer` actor per shard, shard ``i`` on worker ``i mod W``.

        Parameters
        ----------
        client : dask.distributed.Client
        layout_dir : path
            Written by :func:`split_index`; reachable at this path by every worker.
        timeout : float
            Per-step timeout in seconds.
        workers : sequence of str, optional
            Worker addresses to use (default: every worker, sorted).
        """
        layout = read_layout(layout_dir)
        root = Path(layout_dir)
        if workers is None:
            workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise InvalidInputError("the Dask cluster has no workers")
        futures = [client.submit(ShardServer, os.fspath(root / name), actor=True,
                                 workers=[workers[i % len(workers)]], allow_other_workers=False,
                                 key=f"vbow-shard-{i:03d}-{time.time_ns()}")
                   for i, name in enumerate(layout["shards"])]
        actors = [f.result() for f in futures]
        index = cls(actors, root / layout["vocabulary"], timeout=timeout, client=client)
        index._futures = futures  # keep the actors alive
        return index

    @classmethod
    def local(cls, layout_dir: str | os.PathLike, **kwargs: Any) -> "ShardedIndex":
        """All shards in this process (no Dask): for tests and small deployments."""
        layout = read_layout(layout_dir)
        root = Path(layout_dir)
        servers = [ShardServer(root / name) for name in layout["shards"]]
        return cls(servers, root / layout["vocabulary"], **kwargs)

    # ------------------------------------------------------------------ scatter / gather
    def _call(self, shards: Sequence[int], method: str, args: Callable[[int], tuple],
              timeout: float) -> tuple[dict[int, Any], list[int]]:
        """Call ``method`` on the given shards at once and wait at most ``timeout`` seconds
        for all of them; returns ``{shard: answer}`` and the shards that did not answer."""
        deadline = time.monotonic() + float(timeout)
        pending = {}
        done: dict[int, Any] = {}
        missing: list[int] = []
        for s in shards:
            server = self.servers[s]
            try:
                pending[s] = getattr(server, method)(*args(s))
            except Exception as exc:  # a local server raising, or an actor that is gone
                logger.warning("shard %d failed in %s: %s", s, method, exc)
                missing.append(s)
        waiting = {}
        for s, value in pending.items():
            if hasattr(value, "done") and hasattr(value, "result"):
                waiting[s] = value
            else:
                done[s] = value  # an in-process server answered directly
        for s, future in waiting.items():  # one deadline for all: block, do not poll
            remaining = deadline - time.monotonic()
            if not future.done() and remaining > 0:
                try:
                    future.result(timeout=remaining)
                except Exception:  # a timeout, or an error collected below
                    pass
            if not future.done():
                logger.warning("shard %d did not answer %s within %.1fs", s, method, timeout)
                missing.append(s)
                continue
            try:  # the answer is here; collecting it is one hop on the client's loop
                done[s] = future.result()
            except Exception as exc:  # a dead worker, or an error on the shard
                logger.warning("shard %d failed in %s: %s", s, method, exc)
                missing.append(s)
        return done, sorted(missing)

    def refresh(self) -> list[int]:
        """Gather live counts and per-word postings lengths from every shard; returns the
        shards that did not answer."""
        got, missing = self._call(range(self.n_shards), "stats", lambda s: (), self.timeout)
        self._stats.update(got)
        return missing

    @property
    def n_live(self) -> int:
        return int(sum(st["n_live"] for st in self._stats.values()))

    def __len__(self) -> int:
        return self.n_live

    # ------------------------------------------------------------------ maintenance
    def add(self, images: Sequence[Any], keys: Sequence[str],
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
        """Add images, each on the shard that owns its key (extraction runs on the shard).

        Returns ``{"added": [...], "failed": [...]}`` over all shards.
        """
        keys = [str(k) for k in keys]
        images = list(images)
        if len(images) != len(keys):
            raise InvalidInputError(f"got {len(images)} images but {len(keys)} keys")
        meta = list(metadata) if metadata is not None else [None] * len(keys)
        owner = shard_of(keys, self.n_shards)
        groups = {s: np.flatnonzero(owner == s).tolist() for s in np.unique(owner).tolist()}
        got, missing = self._call(sorted(groups), "add", lambda s: (
            [images[i] for i in groups[s]], [keys[i] for i in groups[s]],
            [meta[i] for i in groups[s]]), max(self.timeout, 600.0))
        if missing:
            raise InvalidInputError(f"shards {missing} did not take their images; retry them")
        self.refresh()
        return {"added": [k for s in sorted(got) for k in got[s]["added"]],
                "failed": [f for s in sorted(got) for f in got[s]["failed"]]}

    def remove(self, keys: Sequence[str]) -> int:
        """Remove images by key on their owning shards; returns how many were removed."""
        keys = [str(k) for k in keys]
        owner = shard_of(keys, self.n_shards)
        groups = {s: [k for k, o in zip(keys, owner.tolist()) if o == s] for s in set(owner.tolist())}
        got, missing = self._call(sorted(groups), "remove", lambda s: (groups[s],), self.timeout)
        self.refresh()
        if missing:
            raise KeyError(f"shards {missing} did not remove their keys (unknown key or no answer)")
        return int(sum(got.values()))

    # ------------------------------------------------------------------ search
    def describe(self, image: Any, name: str | None = None) -> ImageDescription:
        """Describe a query image once, on the client, with the shards' settings."""
        return self._vocab_index.describe(image, name)

    def search(self, image: Any, top_k: int = 10, *, where: Any = None, rerank: bool | None = None,
               shortlist: int | None = None, name: str | None = None,
               timeout: float | None = None, verify_all: bool = False) -> ShardedSearchResult:
        """Search every shard with one query image (arguments as :meth:`vbow.ImageIndex.search`)."""
        from vbow.query import check_search_arguments

        check_search_arguments(top_k, shortlist, verify_all)
        t0 = time.perf_counter()
        query = self.describe(image, name)
        out = self.search_features(query, top_k, where=where, rerank=rerank, shortlist=shortlist,
                                   timeout=timeout, verify_all=verify_all)
        timings = dict(out.result.timings)
        timings["features"] = time.perf_counter() - t0 - timings.get("total", 0.0)
        timings["total"] = time.perf_counter() - t0
        return ShardedSearchResult(dataclasses.replace(out.result, timings=timings), out.missing)

    def _budgeted(self, words: np.ndarray, weights: np.ndarray, idf: np.ndarray,
                  shards: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The query words read under ``config.max_postings``, chosen from the postings of the
        given shards together (the rule of :meth:`InvertedIndex.select_words`)."""
        budget = self.config.max_postings
        words = np.asarray(words, np.int64)
        if budget is None or words.size == 0:
            return words.astype(np.int32), np.asarray(weights, np.float32)
        lengths = np.zeros(words.size, np.int64)
        for s in shards:
            lengths += self._stats[s]["word_lengths"][words]
        if int(lengths.sum()) <= budget:
            return words.astype(np.int32), np.asarray(weights, np.float32)
        order = np.argsort(-(np.asarray(weights, np.float64) * idf[words]), kind="stable")
        within = np.cumsum(lengths[order]) <= budget
        within[0] = True
        chosen = np.sort(order[within])
        return words[chosen].astype(np.int32), np.asarray(weights, np.float32)[chosen]

    def _gather_candidates(self, words, weights, query_colour, where, depth, extra, shards,
                           step_timeout) -> tuple[dict[str, Any], list[int]]:
        cfg = self.config
        n_live = int(sum(self._stats[s]["n_live"] for s in shards))
        covers_all = n_live <= cfg.colour_candidates
        words, weights = self._budgeted(words, weights, self._idf, shards)
        got, missing = self._call(shards, "candidates", lambda s: (
            words, weights, query_colour, where, cfg.colour_candidates, covers_all, depth,
            np.asarray(extra.get(s, []), np.int64)), step_timeout)
        live_shards = sorted(got)
        parts = [got[s] for s in live_shards]
        shard_col = np.concatenate([np.full(p["ids"].size, s, np.int64)
                                    for s, p in zip(live_shards, parts)]) if parts else np.zeros(0, np.int64)
        cand = {
            "shard": shard_col,
            "local": np.concatenate([p["ids"] for p in parts]) if parts else np.zeros(0, np.int64),
            "bow": np.concatenate([p["bow"] for p in parts]) if parts else np.zeros(0, np.float32),
            "colour": np.concatenate([p["colour"] for p in parts]) if parts else np.zeros(0),
            "allowed": np.concatenate([p["allowed"] for p in parts]) if parts else np.zeros(0, bool),
            "eligible": np.concatenate([p["eligible"] for p in parts]) if parts else np.zeros(0, bool),
            "n_live": sum(p["n_live"] for p in parts), "n_allowed": sum(p["n_allowed"] for p in parts),
        }
        cand["covers_all"] = cand["n_live"] <= cfg.colour_candidates
        return cand, missing

    def _fuse(self, cand: dict[str, Any]) -> FusedScores:
        """FusedScores over the candidates, standardised over the global pool."""
        cfg = self.config
        bow = cand["bow"]
        eligible = np.flatnonzero(cand["eligible"])
        if cand["covers_all"]:
            pool = eligible
        else:
            eligible = eligible[bow[eligible] > 0]
            if eligible.size > cfg.colour_candidates:
                part = np.argpartition(-bow[eligible], cfg.colour_candidates - 1)
                eligible = eligible[part[:cfg.colour_candidates]]
            pool = np.sort(eligible)
        colour = cand["colour"][pool] if cfg.colour_weight > 0 else np.zeros(pool.size)
        return FusedScores(bow, cand["allowed"], min(cand["n_live"], cfg.colour_candidates), pool,
                           colour, cfg.colour_weight, cand["covers_all"])

    @staticmethod
    def _positions(cand: dict[str, Any], owners: Sequence[tuple[int, int]]) -> np.ndarray:
        """Candidate positions of ``(shard, local id)`` pairs (all must be candidates)."""
        lookup = {(int(s), int(d)): i for i, (s, d) in
                  enumerate(zip(cand["shard"].tolist(), cand["local"].tolist()))}
        return np.array([lookup[o] for o in owners], np.int64)

    def search_features(self, query: ImageDescription, top_k: int = 10, *, where: Any = None,
                        rerank: bool | None = None, shortlist: int | None = None,
                        timeout: float | None = None,
                        verify_all: bool = False) -> ShardedSearchResult:
        """Search every shard with a query described by :meth:`describe`.

        Returns
        -------
        ShardedSearchResult
            The merged result; ``missing`` names shards that did not answer within ``timeout``
            (default: the index's), whose images the result then leaves out.
        """
        from vbow.query import check_search_arguments, shortlist_sizes

        cfg = self.config
        top_k, shortlist, verify_all = check_search_arguments(top_k, shortlist, verify_all)
        early_stop = None if verify_all else cfg.early_stop()
        n_bins = cfg.colour.n_bins
        if np.shape(query.colour) != (n_bins,):
            raise InvalidInputError(f"query {query.name!r} has a {np.shape(query.colour)} colour "
                                    f"signature; these shards use ({n_bins},)")
        step_timeout = self.timeout if timeout is None else float(timeout)  # for each scatter step
        shards = [s for s in range(self.n_shards) if s in self._stats]
        missing: set[int] = set(range(self.n_shards)) - set(shards)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        with self._vocab_index.reading() as plan:
            bag = plan.quantise(query.features)
            self._idf = plan.state.idf
        timings["quantise"] = time.perf_counter() - t
        t = time.perf_counter()
        n_live = int(sum(self._stats[s]["n_live"] for s in shards))
        do_rerank = cfg.rerank if rerank is None else bool(rerank)
        depth_bound, _ = shortlist_sizes(cfg, n_live, n_live, top_k, do_rerank, shortlist)
        cand, lost = self._gather_candidates(bag.words, bag.weights, query.colour, where,
                                             depth_bound, {}, shards, step_timeout)
        missing.update(lost)
        shards = [s for s in shards if s not in missing]

        n_verified = 0

        def result(matches: tuple[Match, ...]) -> ShardedSearchResult:
            timings["total"] = sum(v for k, v in timings.items() if k != "total")
            warn = () if not missing else (
                f"shards {sorted(missing)} of {self.n_shards} did not answer within the timeout: "
                f"these results leave out their images",)
            return ShardedSearchResult(SearchResult(query.name, matches, timings, warn,
                                                    n_verified=n_verified),
                                       tuple(sorted(missing)))

        if cand["n_live"] == 0:
            return result(())
        fusion = self._fuse(cand)
        depth, n_verify = shortlist_sizes(cfg, cand["n_live"], cand["n_allowed"], top_k,
                                          do_rerank, shortlist)
        if depth == 0:
            return result(())
        top = fusion.best(depth)
        timings["score"] = time.perf_counter() - t
        t = time.perf_counter()
        verified: dict[tuple[int, int], Any] = {}
        if do_rerank:
            top = plan.verification_order(fusion, top, n_verify)
            final = fusion.at(top)
            to_verify = top[:n_verify]
            features = dataclasses.replace(query.features, descriptors=query.features.descriptors[:0])

            def verify_slice(lo: int, hi: int) -> dict[tuple[int, int], Any]:
                by_shard: dict[int, list[int]] = {}
                for pos in to_verify[lo:hi].tolist():
                    by_shard.setdefault(int(cand["shard"][pos]), []).append(int(cand["local"][pos]))
                got, lost = self._call(sorted(by_shard), "verify", lambda s: (
                    features, bag.assignments, np.array(by_shard[s], np.int64)), step_timeout)
                missing.update(lost)
                return {(s, int(d)): v for s, vs in got.items() for d, v in vs.items()}

            verified, n_verified = verify_in_rounds(n_verify, verify_slice, early_stop)
            owners = list(zip(cand["shard"][to_verify].tolist(), cand["local"][to_verify].tolist()))
            for j, o in enumerate(owners):
                if o in verified:
                    final[j] += verified[o].inliers
            order = np.argsort(-final, kind="stable")
            top, final = top[order], final[order]
            expand = [o for o in zip(cand["shard"][top].tolist(), cand["local"][top].tolist())
                      if o in verified][:cfg.query_expansion]
            if expand:
                top, final, fusion, cand, lost = self._expanded(
                    bag, query.colour, expand, verified, where, depth, shards, step_timeout)
                missing.update(lost)
        else:
            final = fusion.at(top)
        timings["rerank"] = time.perf_counter() - t
        matches, lost = self._matches(query, cand, top[:top_k], final[:top_k], fusion, verified,
                                      step_timeout)
        missing.update(lost)
        return result(matches)

    def _expanded(self, bag, query_colour, expand, verified, where, depth, shards, step_timeout):
        """:meth:`vbow.query.QueryPlan.expanded_ranking` over the shards."""
        cfg, idf = self.config, self._idf
        by_shard: dict[int, list[int]] = {}
        for s, d in expand:
            by_shard.setdefault(s, []).append(d)
        got, lost = self._call(sorted(by_shard), "expansion_parts",
                               lambda s: (np.array(by_shard[s], np.int64),), step_timeout)
        parts_w, parts_v = [bag.words], [bag.weights]
        colours = [np.asarray(query_colour, np.float32)]
        cursor = {s: 0 for s in got}
        for s, d in expand:
            if s not in got:
                continue
            doc_words, doc_colour = got[s][cursor[s]]
            cursor[s] += 1
            w, c = bag_of_words(doc_words)
            np.minimum(c, TF_CAP, out=c)
            parts_w.append(w)
            parts_v.append(tfidf(w, c, idf, cfg.burstiness))
            colours.append(np.asarray(doc_colour).astype(np.float32) / 255.0)
        uniq, inverse = np.unique(np.concatenate(parts_w), return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate(parts_v)).astype(np.float32)
        norm = float(np.linalg.norm(summed))
        extra: dict[int, list[int]] = {}
        for s, d in verified:
            extra.setdefault(s, []).append(d)
        live = [s for s in shards if s not in lost]
        cand, lost2 = self._gather_candidates(uniq, summed / max(norm, 1e-12),
                                              np.mean(colours, axis=0), where, depth, extra, live,
                                              step_timeout)
        fusion = self._fuse(cand)
        present = [o for o in verified if o[0] in set(cand["shard"].tolist())]
        if present:
            fusion.add_bonus(self._positions(cand, present),
                             np.array([verified[o].inliers for o in present], np.float64))
        top = fusion.best(depth)
        return top, fusion.at(top), fusion, cand, sorted(set(lost) | set(lost2))

    def _matches(self, query, cand, top, final, fusion, verified, step_timeout):
        """:meth:`vbow.query.QueryPlan.matches` with the catalog details fetched from the shards."""
        owners = list(zip(cand["shard"][top].tolist(), cand["local"][top].tolist()))
        by_shard: dict[int, list[int]] = {}
        for s, d in owners:
            by_shard.setdefault(s, []).append(d)
        got, lost = self._call(sorted(by_shard), "details", lambda s: (
            np.array(by_shard[s], np.int64),
            {d: verified[(s, d)].pairs[:, 1] for d in by_shard[s] if (s, d) in verified}), step_timeout)
        info = {}
        for s, items in got.items():
            for d, item in zip(by_shard[s], items):
                info[(s, d)] = item
        feats, q_scale = query.features, query.scale
        bow_at, colour_at = fusion.bow[top].tolist(), fusion.colour_at(top).tolist()
        out = []
        for rank, (o, score) in enumerate(zip(owners, final.tolist())):
            if o not in info:
                continue
            item = info[o]
            v = verified.get(o)
            transform, points = None, np.zeros((0, 4), np.float32)
            if v is not None:
                d_scale = item["scale"]
                transform = np.diag([q_scale, q_scale, 1.0]) @ v.transform @ \
                    np.diag([1.0 / d_scale, 1.0 / d_scale, 1.0])
                transform /= transform[2, 2] if transform[2, 2] != 0 else 1.0
                points = np.concatenate([feats.keypoints[v.pairs[:, 0], :2] * q_scale,
                                         item["points"] * d_scale], axis=1).astype(np.float32)
            extra = {}
            if "catalog_size" in _MATCH_FIELDS:  # the catalog image in original pixels
                w, h = item["size"]
                extra["catalog_size"] = (max(1, round(w * item["scale"])),
                                         max(1, round(h * item["scale"])))
            out.append(Match(item["key"], float(score), bow_at[rank], colour_at[rank],
                             0 if v is None else v.inliers, transform, points, item["metadata"],
                             len(out), **extra))
        return tuple(out), lost
