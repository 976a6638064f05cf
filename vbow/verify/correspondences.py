"""Tentative correspondences between a query and catalog images, from shared visual words.

No descriptor matching: every query feature is paired with the catalog image's features that
carry one of its words. Words that occur more than ``max_fanout`` times in either image
(repeated texture) are skipped: they only add noise. :class:`QueryWords` prepares the query
once and pairs it with a whole shortlist of catalog images in one vectorised pass
(:meth:`QueryWords.pairs_with_many`), with no Python loop per candidate.
"""

from __future__ import annotations

import numpy as np

from vbow.search.csr import gather_ranges, offsets_from_counts

__all__ = ["QueryWords", "word_correspondences"]

_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)


def _run_lengths_in_place(keys: np.ndarray) -> np.ndarray:
    """``(n,) int64``: for each entry of ``keys``, how many entries share its value."""
    if keys.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    lengths = np.diff(np.r_[starts, ordered.size])
    out = np.empty(keys.size, np.int64)
    out[order] = np.repeat(lengths, lengths)
    return out


class QueryWords:
    """A query's feature words, prepared once to find correspondences with many catalog images.

    Parameters
    ----------
    query_words : np.ndarray
        ``(nq,)`` or ``(nq, k) int`` word ids of the query's features (``k`` > 1 with multiple
        assignment; ``-1`` entries are ignored). The words of one row must be distinct, as
        :meth:`vbow.vocab.vocabulary.Vocabulary.quantise_multi` returns them.
    max_fanout : int
        Skip words that occur more than this many times in the query or in a catalog image.

    Notes
    -----
    The query's words are sorted once; the catalog images' words are then looked up in them, a
    few hundred binary searches per image and one batch for a whole shortlist.
    """

    def __init__(self, query_words: np.ndarray, *, max_fanout: int = 5) -> None:
        qw = np.asarray(query_words, dtype=np.int64)
        if qw.ndim == 1:
            qw = qw[:, None]
        flat = qw.reshape(-1)
        slot = np.flatnonzero(flat >= 0)  # position in the flattened (nq, k) array
        words = flat[slot]
        _, inverse, counts = np.unique(words, return_inverse=True, return_counts=True)
        keep = counts[inverse] <= max_fanout  # drop bursty words on the query side
        slot, words = slot[keep], words[keep]
        order = np.argsort(words, kind="stable")
        self.sorted_words = words[order]
        self.slots = slot[order]
        # dense look-up over the query's word range: where each word's slots start, how many
        span = int(self.sorted_words[-1]) + 1 if self.sorted_words.size else 0
        self._count = np.bincount(self.sorted_words, minlength=span).astype(np.int64)
        self._start = offsets_from_counts(self._count)[:-1]
        self.k = qw.shape[1]
        self.n_slots = int(flat.size)
        self.max_fanout = int(max_fanout)

    def pairs_with(self, db_words: np.ndarray) -> np.ndarray:
        """``(m, 2) int64`` (query feature index, catalog feature index) pairs sharing a word,
        each pair once, ordered by query feature, then its word's assignment rank, then
        catalog feature; ``db_words`` is ``(nd,) int``."""
        dw = np.asarray(db_words, dtype=np.int64)
        pairs, _ = self.pairs_with_many(np.array([0, dw.size], np.int64), dw)
        return pairs

    def pairs_with_many(self, db_offsets: np.ndarray,
                        db_words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correspondences with each of ``n`` catalog images at once.

        Parameters
        ----------
        db_offsets : np.ndarray
            ``(n + 1,) int64`` CSR offsets: image ``i``'s features are
            ``db_words[db_offsets[i]:db_offsets[i + 1]]``.
        db_words : np.ndarray
            ``(F,) int`` word id per catalog feature.

        Returns
        -------
        pairs : np.ndarray
            ``(M, 2) int64`` (query feature index, catalog feature index *within its image*),
            image by image; within an image exactly what :meth:`pairs_with` gives.
        pair_offsets : np.ndarray
            ``(n + 1,) int64``: image ``i``'s pairs are ``pairs[pair_offsets[i]:pair_offsets[i + 1]]``.
        """
        offsets = np.asarray(db_offsets, dtype=np.int64)
        dw = np.asarray(db_words, dtype=np.int64)
        n = offsets.size - 1
        if self.sorted_words.size == 0 or dw.size == 0:
            return _EMPTY_PAIRS, np.zeros(n + 1, np.int64)
        image = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        span = self._count.size
        shared = np.flatnonzero(self._count[np.minimum(dw, span - 1)] * (dw < span) > 0)
        # a shared word's count within its image (all its occurrences are shared ones)
        fanout = _run_lengths_in_place(image[shared] * span + dw[shared])
        d_idx = shared[fanout <= self.max_fanout]             # drop bursty catalog words
        lo = self._start[dw[d_idx]]
        lengths = self._count[dw[d_idx]]
        positions = gather_ranges(lo, lengths)
        if positions.size == 0:
            return _EMPTY_PAIRS, np.zeros(n + 1, np.int64)
        slots = self.slots[positions]
        d = np.repeat(d_idx, lengths)
        of_image = image[d]
        # (image, query slot, catalog feature) is unique per pair: one sort on a combined key
        order = np.argsort((of_image * self.n_slots + slots) * dw.size + d)
        of_image = of_image[order]
        pairs = np.stack([slots[order] // self.k, d[order] - offsets[of_image]], axis=1)
        return pairs, offsets_from_counts(np.bincount(of_image, minlength=n))


def word_correspondences(query_words: np.ndarray, db_words: np.ndarray, *,
                         max_fanout: int = 5) -> np.ndarray:
    """Pairs of features that share a visual word, for one catalog image.

    ``query_words`` and ``max_fanout`` are as in :class:`QueryWords` (which prepares the query
    once to match it against many images); ``db_words`` is the ``(nd,) int`` word ids of the
    catalog image's features. Returns ``(m, 2) int64`` (query feature index, catalog feature
    index), each pair once.
    """
    return QueryWords(query_words, max_fanout=max_fanout).pairs_with(db_words)
