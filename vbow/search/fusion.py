"""Fusion of the bag-of-words and colour similarities of one query into one ranking score.

The rule (see :class:`vbow.Config`) is::

    fused(i) = z_bow(i) + w * z_colour(i)            (-inf where image i is not allowed)

Colour is compared only for a *pool* of images: every live image in catalogs up to
``colour_candidates`` images, else the ``colour_candidates`` best by words (:func:`select_pool`).
Both scores are standardised over that same population. ``z_colour`` standardises over the pool,
and images outside it get the pool's lowest ``z_colour``. ``z_bow`` standardises the TF-IDF
cosines over every live image in a catalog that fits the pool, else over the
``colour_candidates`` best by words (the pool, with images beyond its positive scores counted
as 0).

Standardising the words over the best ``colour_candidates`` rather than over every image keeps
the fused score on one scale whatever the catalog's size. Over a whole large catalog, most images
share no word with the query, the standard deviation shrinks, and the z-score of a true match
grows with the catalog, against a colour term and an inlier count that do not. Standardised over
the pool instead, recall@1 at a million images rose from 0.215 to 0.495 without re-ranking and
from 0.685 to 0.725 with it (``benchmarks/results/scale.md``, "Fusion at scale").

Because the pool holds the best images by words and every image outside it gets the lowest
colour term, no image outside the pool can score above one inside it. Rankings therefore only
need to look at the pool, plus any image given a re-ranking bonus. :class:`FusedScores`
evaluates fused scores lazily, at the ids asked for. A query over a million images costs a few
dense passes over ``bow`` and work proportional to the pool, not a dense fused array plus a
partition of every image that shares a word with the query.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FusedScores", "select_pool", "interleaved_shortlist"]

#: Pools are chosen from a strided sample of this many scores when the catalog is much larger.
_SAMPLE = 1 << 16


def _top_ids(values: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` ids with the highest ``values`` (``values[j]`` belongs to ``ids[j]``), best
    first: ``(min(k, m),) int64``."""
    if k <= 0 or ids.size == 0:
        return np.zeros(0, np.int64)
    if k < ids.size:
        part = np.argpartition(-values, k - 1)[:k]
        ids, values = ids[part], values[part]
    return ids[np.argsort(-values, kind="stable")].astype(np.int64)


def select_pool(bow: np.ndarray, size: int) -> np.ndarray:
    """Ids of the ``size`` highest positive scores, or of every positive one if fewer.

    Parameters
    ----------
    bow : np.ndarray
        ``(n,) float`` scores (>= 0).
    size : int
        Pool size (>= 1).

    Returns
    -------
    np.ndarray
        ``(m,) int64`` sorted ids, ``m <= size``; every id left out has a score no higher than
        the lowest score in the pool. Ties at the boundary are broken arbitrarily.

    Notes
    -----
    In large catalogs a threshold is estimated from a strided sample (aiming at about twice
    ``size`` scores above it), so finding the pool costs one comparison pass over ``bow`` and
    a partition of a few thousand scores; if the estimate keeps too few, every positive score
    is partitioned instead.
    """
    n = bow.shape[0]
    cand = None
    if n >= 4 * _SAMPLE and 2 * size < n:
        sample = bow[::n // _SAMPLE]
        r = min(sample.size - 1, max(0, int(sample.size * (1.0 - 2.0 * size / n))))
        threshold = float(np.partition(sample, r)[r])
        if threshold > 0:
            cand = np.flatnonzero(bow >= threshold)
            if cand.size < size:
                cand = None
    if cand is None:
        cand = np.flatnonzero(bow > 0)
    if cand.size > size:
        cand = np.sort(cand[np.argpartition(-bow[cand], size - 1)[:size]])
    return cand.astype(np.int64, copy=False)


def interleaved_shortlist(by_fused: np.ndarray, by_words: np.ndarray, n: int) -> np.ndarray:
    """The images to verify first: the best by fused score and the best by words, alternately.

    Parameters
    ----------
    by_fused : np.ndarray
        ``(d,) int`` ids by fused score, best first (the ranking depth).
    by_words : np.ndarray
        ``(w,) int`` ids by bag-of-words score alone, best first.
    n : int
        Number of verifications.

    Returns
    -------
    np.ndarray
        ``(m,) int64``: the first ``min(n, ...)`` alternate between the two lists (duplicates
        skipped, a list that runs out leaves the rest to the other), then the rest of
        ``by_fused`` in order; nothing from ``by_fused`` is lost.
    """
    by_fused = np.asarray(by_fused, np.int64)
    by_words = np.asarray(by_words, np.int64)[:n]
    head = by_fused[:n]
    both = np.empty(head.size + by_words.size, np.int64)
    m = min(head.size, by_words.size)
    both[:2 * m:2], both[1:2 * m:2] = head[:m], by_words[:m]
    both[2 * m:] = head[m:] if head.size > m else by_words[m:]
    _, first = np.unique(both, return_index=True)
    verify = both[np.sort(first)][:n]
    return np.concatenate([verify, by_fused[~np.isin(by_fused, verify)]])


class FusedScores:
    """The fused scores of one query, evaluated lazily (see the module docstring).

    Parameters
    ----------
    bow : np.ndarray
        ``(n,) float32`` TF-IDF cosines of every image slot (0 for removed images).
    allowed : np.ndarray
        ``(n,) bool`` images that may be returned (live and passing the metadata filter).
    n_population : int
        Number of images ``z_bow`` standardises over, ``min(live images, colour_candidates)``:
        every live image when ``covers_all``, else the pool's nominal size, pool images beyond
        the positive scores counting as 0. The moments are taken from ``bow[pool]``.
    pool : np.ndarray
        ``(p,) int`` sorted ids whose colour was compared.
    pool_colour : np.ndarray
        ``(p,) float`` their colour similarities.
    weight : float
        Colour weight ``w`` (0 disables colour).
    covers_all : bool
        True when the pool holds every live image (then every image outside it is removed).
    """

    def __init__(self, bow: np.ndarray, allowed: np.ndarray, n_population: int, pool: np.ndarray,
                 pool_colour: np.ndarray, weight: float, covers_all: bool) -> None:
        self.bow = bow
        self.allowed = allowed
        self.pool = np.asarray(pool, np.int64)
        self.pool_colour = np.asarray(pool_colour, np.float64)
        self.covers_all = bool(covers_all)
        n = max(int(n_population), 1)
        in_pool = bow[self.pool].astype(np.float64)
        self.mean = float(np.sum(in_pool)) / n
        self.std = float(np.sqrt(max(float(np.dot(in_pool, in_pool)) / n - self.mean ** 2, 0.0))) + 1e-9
        self.floor = 0.0
        self.colour_term = np.zeros(self.pool.size, np.float64)
        if weight > 0 and self.pool.size:
            c = self.pool_colour
            z = (c - c.mean()) / (c.std() + 1e-9)
            self.floor = float(weight * z.min())
            self.colour_term = weight * z
        self._bonus_ids = np.zeros(0, np.int64)
        self._bonus = np.zeros(0, np.float64)

    def _pool_position(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ``(m,)`` ids: a mask of those in the pool and their positions in it."""
        if self.pool.size == 0:
            return np.zeros(ids.shape[0], bool), np.zeros(ids.shape[0], np.int64)
        pos = np.minimum(np.searchsorted(self.pool, ids), self.pool.size - 1)
        return self.pool[pos] == ids, pos

    def add_bonus(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Add ``values`` (``(m,) float``) to the scores of ``ids`` (``(m,) int``)."""
        ids = np.concatenate([self._bonus_ids, np.asarray(ids, np.int64)])
        self._bonus_ids, inverse = np.unique(ids, return_inverse=True)
        self._bonus = np.bincount(inverse, np.concatenate([self._bonus, np.asarray(values, np.float64)]),
                                  minlength=self._bonus_ids.size)

    def at(self, ids: np.ndarray) -> np.ndarray:
        """``(m,) float64`` fused scores (plus bonus) of ``ids``; ``-inf`` where not allowed."""
        ids = np.asarray(ids, np.int64)
        out = (self.bow[ids].astype(np.float64) - self.mean) / self.std + self.floor
        inside, pos = self._pool_position(ids)
        out[inside] += self.colour_term[pos[inside]] - self.floor
        if self._bonus_ids.size:
            pos = np.minimum(np.searchsorted(self._bonus_ids, ids), self._bonus_ids.size - 1)
            hit = self._bonus_ids[pos] == ids
            out[hit] += self._bonus[pos[hit]]
        out[~self.allowed[ids]] = -np.inf
        return out

    def colour_at(self, ids: np.ndarray) -> np.ndarray:
        """``(m,) float64`` colour similarities of ``ids`` (0 outside the pool)."""
        ids = np.asarray(ids, np.int64)
        inside, pos = self._pool_position(ids)
        return np.where(inside, self.pool_colour[pos] if self.pool.size else 0.0, 0.0)

    def dense(self) -> np.ndarray:
        """``(n,) float64`` the fused score of every image slot (a reference, and the fallback
        of :meth:`best`)."""
        return self.at(np.arange(self.bow.shape[0]))

    def best(self, k: int, *, by_words: bool = False) -> np.ndarray:
        """Ids of the ``k`` best allowed images by fused score (or by ``bow`` alone), best first.

        Returns ``(m,) int64``, ``m = min(k, number of allowed images)``. Only the pool (and,
        by fused score, the images given a bonus) is ranked, unless fewer than ``k`` pool images
        are allowed: then every image is.
        """
        k = int(k)
        in_pool = self.allowed[self.pool]
        enough = self.covers_all or int(np.count_nonzero(in_pool)) >= k
        if by_words:
            if enough:  # the pool holds the best by words; bonus images are not better by words
                ids = self.pool[in_pool]
                return _top_ids(self.bow[ids], ids, k)
            every = np.where(self.allowed, self.bow, -np.inf)
        else:
            if enough:  # k allowed pool images outrank every image outside the pool and the bonus
                ranked = np.union1d(self.pool, self._bonus_ids) if self._bonus_ids.size else self.pool
                vals = self.at(ranked)
                finite = np.isfinite(vals)
                return _top_ids(vals[finite], ranked[finite], k)
            every = self.dense()
        ids = np.flatnonzero(np.isfinite(every))
        return _top_ids(every[ids], ids, k)
