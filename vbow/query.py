"""The query plan: quantise → score → filter → fuse → shortlist → verify → expand → results.

A :class:`QueryPlan` runs one described query (:class:`vbow.describe.extraction.ImageDescription`)
against a :class:`SearchState`, the read-only view of an index that
:class:`vbow.ImageIndex` hands it while holding its read lock. Each step is a public method, so
tools that split the work (e.g. a sharded search) can run the same steps.

The plan owns the rule for how many candidates are verified, :func:`shortlist_sizes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from vbow.config import Config
from vbow.describe.extraction import ImageDescription
from vbow.describe.features import LocalFeatures
from vbow.errors import InvalidInputError
from vbow.results import Match, SearchResult
from vbow.search.catalog import Catalog, Where
from vbow.search.embedding import aggregate_query, selective_kernel
from vbow.search.fusion import FusedScores, interleaved_shortlist, select_pool
from vbow.search.inverted_index import InvertedIndex
from vbow.search.postings import TF_CAP
from vbow.search.weighting import bag_of_words, tfidf
from vbow.verify.keypoint_store import KeypointStore
from vbow.verify.rounds import verify_in_rounds
from vbow.verify.shortlist import verify_shortlist
from vbow.verify.verification import QueryWords, Verification
from vbow.vocab.training import descriptors32
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["SearchState", "QueryPlan", "QueryBag", "shortlist_sizes", "check_top_k", "check_shortlist",
           "check_verify_all", "check_search_arguments"]


def check_top_k(top_k: Any) -> int:
    """``top_k`` as an int >= 1 (bools, floats with a fraction, strings, NaN raise InvalidInputError)."""
    if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)):
        raise InvalidInputError(f"top_k must be an int >= 1; got {type(top_k).__name__} {top_k!r}")
    if int(top_k) < 1:
        raise InvalidInputError(f"top_k must be >= 1; got {top_k}")
    return int(top_k)


def check_shortlist(shortlist: Any) -> int | None:
    """``shortlist`` as None or an int >= 1 (else InvalidInputError)."""
    if shortlist is None:
        return None
    if isinstance(shortlist, (bool, np.bool_)) or not isinstance(shortlist, (int, np.integer)):
        raise InvalidInputError(f"shortlist must be an int >= 1 or None; got "
                                f"{type(shortlist).__name__} {shortlist!r}")
    if int(shortlist) < 1:
        raise InvalidInputError(f"shortlist must be >= 1 or None; got {shortlist}")
    return int(shortlist)


def check_verify_all(verify_all: Any) -> bool:
    """``verify_all`` as a bool (else InvalidInputError)."""
    if not isinstance(verify_all, (bool, np.bool_)):
        raise InvalidInputError(f"verify_all must be a bool; got {type(verify_all).__name__} "
                                f"{verify_all!r:.60}")
    return bool(verify_all)


def check_search_arguments(top_k: Any, shortlist: Any,
                           verify_all: Any) -> tuple[int, int | None, bool]:
    """The ``top_k``, ``shortlist`` and ``verify_all`` of a search, checked (else
    InvalidInputError) before any work is done."""
    return check_top_k(top_k), check_shortlist(shortlist), check_verify_all(verify_all)


def shortlist_sizes(config: Config, n_images: int, n_allowed: int, top_k: int, rerank: bool,
                    shortlist: int | None) -> tuple[int, int]:
    """How many candidates a search ranks and how many of them it verifies.

    The one rule: the number verified is ``shortlist`` when given, else
    ``config.shortlist`` when set, else ``config.shortlist_for(n_images)`` (it grows with the
    square root of the catalog, 20 to 200). The search ranks ``max(top_k, verified)``
    candidates, verifies that many of them (chosen as :meth:`QueryPlan.verification_order`
    says), re-ranks, and returns the best ``top_k``; with ``top_k`` above the shortlist the
    results past it are unverified. Without re-ranking it ranks ``top_k`` and verifies none.
    Both numbers are capped by the ``n_allowed`` images a filter lets through.

    Returns
    -------
    depth : int
        Candidates ranked.
    n_verify : int
        Of those, how many are verified.
    """
    if not rerank:
        return min(top_k, n_allowed), 0
    verified = config.shortlist_for(n_images) if shortlist is None else int(shortlist)
    depth = min(n_allowed, max(top_k, verified))
    return depth, min(verified, depth)


@dataclass(frozen=True)
class SearchState:
    """What a search reads: one consistent view of an index.

    Attributes
    ----------
    config : Config
    vocabulary : Vocabulary
    postings : InvertedIndex
    store : KeypointStore
        Per-image words and keypoint geometry (for verification and expansion).
    catalog : Catalog
    idf : np.ndarray
        ``(n_words,) float32`` the IDF the postings are weighted with.
    """

    config: Config
    vocabulary: Vocabulary
    postings: InvertedIndex
    store: KeypointStore
    catalog: Catalog
    idf: np.ndarray

    @property
    def n_live(self) -> int:
        return int(np.count_nonzero(self.postings.alive))


@dataclass(frozen=True)
class QueryBag:
    """A quantised query.

    Attributes
    ----------
    assignments : np.ndarray
        ``(nq, k) int32`` words per feature (``-1``: unused slot).
    assignment_weights : np.ndarray
        ``(nq, k) float32``.
    words : np.ndarray
        ``(m,) int`` the distinct words of the bag.
    tf : np.ndarray
        ``(m,) float32`` their (weighted) counts.
    weights : np.ndarray
        ``(m,) float32`` L2-normalised TF-IDF weights.
    signatures : np.ndarray or None
        ``(m,) uint64`` Hamming-embedding signature of each word (with
        ``config.hamming_embedding``), else None.
    """

    assignments: np.ndarray
    assignment_weights: np.ndarray
    words: np.ndarray
    tf: np.ndarray
    weights: np.ndarray
    signatures: np.ndarray | None = None


class QueryPlan:
    """Runs described queries against one :class:`SearchState`."""

    def __init__(self, state: SearchState) -> None:
        self.state = state
        self.config = state.config

    # ------------------------------------------------------------------------------ steps
    def quantise(self, features: LocalFeatures) -> QueryBag:
        """Assign the query's descriptors to words (multiple assignment) and weight the bag.
        A query of enough descriptors is assigned on up to ``config.query_threads`` threads,
        with the same words as on one."""
        cfg = self.config
        k = cfg.query_assignments
        if len(features):
            q_words, q_weights = self.state.vocabulary.quantise_multi(
                descriptors32(features), k, sigma=cfg.assignment_sigma, threads=cfg.query_threads)
        else:
            q_words = np.zeros((0, k), np.int32)
            q_weights = np.zeros((0, k), np.float32)
        words, tf = bag_of_words(q_words, q_weights)
        signatures = None
        if cfg.hamming_embedding and self.state.postings.has_signatures:
            residuals = self.state.vocabulary.embedding_residuals(descriptors32(features), q_words) \
                if len(features) else np.zeros(q_words.shape + (64,), np.float32)
            signatures = aggregate_query(q_words, q_weights, residuals, words)
        return QueryBag(q_words, q_weights, words, tf,
                        tfidf(words, tf, self.state.idf, cfg.burstiness), signatures)

    def score(self, words: np.ndarray, weights: np.ndarray,
              signatures: np.ndarray | None = None) -> np.ndarray:
        """``(n,) float32`` TF-IDF cosine of the bag ``(words, weights)`` with every image slot
        (0 for removed ones), reading at most ``config.max_postings`` postings. With the
        words' Hamming-embedding ``signatures`` (``(m,) uint64``), each term is weighted by the
        selective kernel of ``config.he_threshold`` and ``config.he_alpha``. Large queries use
        up to ``config.query_threads`` threads."""
        cfg = self.config
        kernel = None if signatures is None else selective_kernel(cfg.he_threshold, cfg.he_alpha)
        return self.state.postings.score_query(
            words, weights, self.state.idf, max_postings=cfg.max_postings, signatures=signatures,
            kernel=kernel, threads=cfg.query_threads)[0]

    def reads_every_posting(self, words: np.ndarray) -> bool:
        """Whether :meth:`score` reads every posting of a bag of the ``(m,) int`` words: no
        postings budget, a bag of at most one word, or one whose postings fit in the budget
        (the rule of :meth:`InvertedIndex.select_words`, without ranking the words)."""
        budget = self.config.max_postings
        return budget is None or np.size(words) <= 1 or \
            int(self.state.postings.postings_lengths(words).sum()) <= budget

    def postings_read(self, bag: QueryBag) -> int:
        """How many postings :meth:`score` reads for ``bag`` (under ``config.max_postings``)."""
        postings = self.state.postings
        chosen = postings.select_words(bag.words, bag.weights, self.state.idf, self.config.max_postings)
        return int(postings.postings_lengths(np.asarray(bag.words)[chosen]).sum())

    def allowed(self, where: Where) -> np.ndarray:
        """``(n,) bool`` live images passing the metadata filter."""
        return self.state.catalog.filter_mask(where, self.state.postings.alive)

    def fuse(self, bow: np.ndarray, query_colour: np.ndarray, allowed: np.ndarray) -> FusedScores:
        """Fused similarity ``z(bow) + w * z(colour)`` (see Config and :mod:`vbow.search.fusion`).

        Colour is compared for every live image in catalogs up to ``colour_candidates``
        images, else for that many best by words (the pool), and both scores are standardised
        over that population. It does not depend on the metadata filter, so a filter only
        removes candidates and never reorders the ones it keeps. ``bow`` is ``(n,) float32``,
        0 for removed images.
        """
        cfg = self.config
        live = self.state.postings.alive
        n_live = int(np.count_nonzero(live))
        covers_all = n_live <= cfg.colour_candidates
        pool = np.flatnonzero(live) if covers_all else select_pool(bow, cfg.colour_candidates)
        if cfg.colour_weight > 0 and pool.size:
            q = np.clip(np.rint(query_colour * 255), 0, 255).astype(np.float32)
            colour = (self.state.catalog.colour[pool].astype(np.float32) @ q).astype(np.float64) / (255.0 * 255.0)
        else:
            colour = np.zeros(pool.size, np.float64)
        return FusedScores(bow, allowed, min(n_live, cfg.colour_candidates), pool, colour,
                           cfg.colour_weight, covers_all)

    def verification_order(self, fusion: FusedScores, top: np.ndarray, n: int) -> np.ndarray:
        """Reorder the candidate list so its first ``n`` are the images to verify.

        With colour fused in, the ``n`` images verified alternate between the best by fused
        score and the best by bag-of-words score alone (:func:`vbow.search.fusion.interleaved_shortlist`):
        an image sharing many words with the query is checked geometrically whatever its colour
        (under odd light or on a shelf, colour can push the true product down), while the budget
        of ``n`` verifications stays. ``top`` is ``(depth,) int`` by fused score, best first.
        Returns ``(m,) int64`` ids, ``m >= depth``: the ``n`` to verify first, then the rest of
        ``top``.
        """
        if self.config.colour_weight <= 0 or n <= 0:
            return top
        return interleaved_shortlist(top, fusion.best(n, by_words=True), n)

    def verify(self, features: LocalFeatures, matcher: QueryWords,
               docs: np.ndarray) -> dict[int, Verification]:
        """Geometric verification of the catalog images ``docs`` (``(m,) int``) against the query.

        Returns
        -------
        dict of int to Verification
            The images that verified (inliers > 0), by id.
        """
        cfg = self.config
        ids = np.asarray(docs, np.int64)
        found = verify_shortlist(features.keypoints, matcher, self.state.store, ids,
                                 np.asarray(self.state.catalog.size[ids]), model=cfg.model,
                                 threshold=cfg.ransac_threshold, min_inliers=cfg.min_inliers,
                                 seed=cfg.random_state)
        return {int(ids[i]): v for i, v in found.items()}

    def expanded_ranking(self, bag: QueryBag, query_colour: np.ndarray, expand: list[int],
                         verifications: Mapping[int, Verification], allowed: np.ndarray,
                         depth: int, query_bow: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray, FusedScores]:
        """Average query expansion: rank again with the query averaged with verified results.

        The expanded bag is the sum of the L2-normalised TF-IDF vectors of the query and of the
        ``expand`` documents (their words come from the keypoint store); the expanded colour is
        the mean of their sqrt histograms. Verified documents keep their inlier bonus on top of
        the new fused score. Returns the new top ``depth`` ids and final scores, best first,
        and the expanded query's fused scores.

        ``query_bow``, the ``(n,) float32`` scores of the query's own bag (what :meth:`score`
        gave it without signatures), lets the expanded bag be scored without reading the
        query's postings again: the cosine is linear in the query vector, so the expanded
        scores are ``(query_bow + score(documents' part)) / norm``. That is used only when the
        postings budget would read every word of the expanded bag, so that both forms read the
        same postings and agree to float32 rounding; otherwise the expanded bag is scored
        whole under the budget.
        """
        cfg, idf = self.config, self.state.idf
        parts_w = [bag.words]
        parts_v = [bag.weights]
        colours = [np.asarray(query_colour, np.float32)]
        for doc in expand:
            doc_words, _ = self.state.store.get(doc)
            w, c = bag_of_words(doc_words)
            np.minimum(c, TF_CAP, out=c)  # as the postings store it
            parts_w.append(w)
            parts_v.append(tfidf(w, c, idf, cfg.burstiness))
            colours.append(self.state.catalog.colour[doc].astype(np.float32) / 255.0)
        uniq, inverse = np.unique(np.concatenate(parts_w), return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate(parts_v)).astype(np.float32)
        norm = max(float(np.linalg.norm(summed)), 1e-12)
        if query_bow is not None and self.reads_every_posting(uniq):
            docs, inverse = np.unique(np.concatenate(parts_w[1:]), return_inverse=True)
            doc_part = np.bincount(inverse, weights=np.concatenate(parts_v[1:])).astype(np.float32)
            bow = self.score(docs.astype(np.int32), doc_part)
            bow += query_bow
            bow /= np.float32(norm)
        else:
            bow = self.score(uniq.astype(np.int32), summed / norm)
        fusion = self.fuse(bow, np.mean(colours, axis=0), allowed)
        fusion.add_bonus(np.fromiter(verifications, np.int64, len(verifications)),
                         np.array([v.inliers for v in verifications.values()], np.float64))
        top = fusion.best(depth)
        return top, fusion.at(top), fusion

    def matches(self, query: ImageDescription, top: np.ndarray, final: np.ndarray,
                fusion: FusedScores, verifications: Mapping[int, Verification]) -> tuple[Match, ...]:
        """The :class:`Match` objects for ranked ids ``top`` with scores ``final``, transforms
        and inlier points mapped to original pixels."""
        catalog, store = self.state.catalog, self.state.store
        feats, q_scale = query.features, query.scale
        bow_at, colour_at = fusion.bow[top].tolist(), fusion.colour_at(top).tolist()
        out = []
        for rank, (doc, score) in enumerate(zip(top.tolist(), final.tolist())):
            v = verifications.get(doc)
            transform, points = None, np.zeros((0, 4), np.float32)
            if v is not None:
                d_scale = float(catalog.scale[doc])
                s_q = np.diag([q_scale, q_scale, 1.0])
                s_d_inv = np.diag([1.0 / d_scale, 1.0 / d_scale, 1.0])
                transform = s_q @ v.transform @ s_d_inv
                transform /= transform[2, 2] if transform[2, 2] != 0 else 1.0
                _, db_kp = store.get(doc)
                points = np.concatenate([feats.keypoints[v.pairs[:, 0], :2] * q_scale,
                                         db_kp[v.pairs[:, 1], :2] * d_scale], axis=1).astype(np.float32)
            w, h = (int(x) for x in catalog.size[doc])
            c_scale = float(catalog.scale[doc])
            out.append(Match(catalog.key(doc), float(score), bow_at[rank], colour_at[rank],
                             0 if v is None else v.inliers, transform, points,
                             catalog.metadata(doc), rank,
                             (max(1, round(w * c_scale)), max(1, round(h * c_scale)))))
        return tuple(out)

    # ------------------------------------------------------------------------------ the plan
    def run(self, query: ImageDescription, top_k: int = 10, *, where: Where = None,
            rerank: bool | None = None, shortlist: int | None = None,
            verify_all: bool = False) -> SearchResult:
        """Search with one described query (arguments as :meth:`vbow.ImageIndex.search`)."""
        cfg = self.config
        top_k, shortlist, verify_all = check_search_arguments(top_k, shortlist, verify_all)
        early_stop = None if verify_all else cfg.early_stop()
        n_bins = cfg.colour.n_bins
        if np.shape(query.colour) != (n_bins,):
            raise InvalidInputError(
                f"query {query.name!r} has a {np.shape(query.colour)} colour signature; this "
                f"index uses ({n_bins},): describe queries with this index's describe()")
        warnings = () if len(query.features) else (
            f"query {query.name!r} has no local features (blank, uniform or tiny image): only "
            "colour can rank it and nothing can be verified",)
        n_live = self.state.n_live
        if n_live == 0:
            return SearchResult(query.name, (), {"total": 0.0}, warnings)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        bag = self.quantise(query.features)
        timings["quantise"] = time.perf_counter() - t
        t = time.perf_counter()
        bow = self.score(bag.words, bag.weights, bag.signatures)
        allowed = self.allowed(where)
        fusion = self.fuse(bow, query.colour, allowed)
        do_rerank = cfg.rerank if rerank is None else bool(rerank)
        depth, n_verify = shortlist_sizes(cfg, n_live, int(np.count_nonzero(allowed)), top_k,
                                          do_rerank, shortlist)
        if depth == 0:
            return SearchResult(query.name, (), {"total": time.perf_counter() - t}, warnings)
        top = fusion.best(depth)
        timings["score"] = time.perf_counter() - t
        t = time.perf_counter()
        verifications: dict[int, Verification] = {}
        n_verified = 0
        if do_rerank:
            top = self.verification_order(fusion, top, n_verify)
            final = fusion.at(top)
            matcher = QueryWords(bag.assignments, max_fanout=cfg.max_fanout)
            verifications, n_verified = verify_in_rounds(
                n_verify, lambda lo, hi: self.verify(query.features, matcher, top[lo:hi]),
                early_stop)
            if verifications:
                verified = np.fromiter(verifications, np.int64, len(verifications))
                position = {doc: j for j, doc in enumerate(top[:n_verify].tolist())}
                final[[position[d] for d in verified.tolist()]] += [verifications[d].inliers
                                                                    for d in verified.tolist()]
            order = np.argsort(-final, kind="stable")
            top, final = top[order], final[order]
            expand = [d for d in top.tolist() if d in verifications][:cfg.query_expansion]
            if expand:
                top, final, fusion = self.expanded_ranking(
                    bag, query.colour, expand, verifications, allowed, depth,
                    query_bow=bow if bag.signatures is None else None)
        else:
            final = fusion.at(top)
        timings["rerank"] = time.perf_counter() - t
        matches = self.matches(query, top[:top_k], final[:top_k], fusion, verifications)
        timings["total"] = sum(timings.values())
        return SearchResult(query.name, matches, timings, warnings, n_verified=n_verified)
