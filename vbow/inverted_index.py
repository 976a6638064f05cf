"""Inverted file of visual words with compact CSR postings.

Postings live in *segments*. Each segment holds, for a contiguous range of document ids, flat
arrays ordered by word (CSR): ``word_offsets (n_words + 1,) int64``, ``docs (P,) uint32`` and
``tf (P,) uint8`` (term counts, capped at 255). :meth:`InvertedIndex.add` appends a segment;
:meth:`InvertedIndex.compact` merges all segments into one in O(P) (no sort), dropping postings of
removed documents. A loaded index is one segment whose arrays may be memory-mapped.

A query is scored by visiting only the postings of its own words: their positions are gathered
with one vectorised range expansion and accumulated with ``np.bincount``.

Scores are cosines of TF-IDF vectors (see :mod:`vbow.weighting`): the postings keep raw counts,
and each document keeps its vector norm, so changing the IDF (``idf_source="database"``) only
recomputes norms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .csr import gather_ranges, offsets_from_counts
from .errors import InvalidInputError
from .weighting import BURSTINESS, burst

__all__ = ["PostingSegment", "InvertedIndex"]

logger = logging.getLogger(__name__)

_TF_MAX = 255


@dataclass
class PostingSegment:
    """Postings of the documents ``doc_start .. doc_start + n_docs - 1``, grouped by word.

    Attributes
    ----------
    doc_start, n_docs : int
        The document id range this segment covers.
    word_offsets : np.ndarray
        ``(n_words + 1,) int64``; word ``w``'s postings are ``docs[word_offsets[w]:word_offsets[w+1]]``.
    docs : np.ndarray
        ``(P,) uint32`` global document ids, ascending within each word.
    tf : np.ndarray
        ``(P,) uint8`` term counts (capped at 255).
    """

    doc_start: int
    n_docs: int
    word_offsets: np.ndarray
    docs: np.ndarray
    tf: np.ndarray

    @property
    def n_postings(self) -> int:
        return int(self.docs.shape[0])

    def word_of_posting(self) -> np.ndarray:
        """``(P,) int64`` the word of each posting."""
        return np.repeat(np.arange(self.word_offsets.shape[0] - 1), np.diff(self.word_offsets))


class InvertedIndex:
    """Inverted file over ``n_words`` visual words.

    Parameters
    ----------
    n_words : int
        Vocabulary size.
    burstiness : {"sqrt", "log", "none"}
        Applied to term counts on both the document and the query side.
    """

    def __init__(self, n_words: int, burstiness: str = "sqrt") -> None:
        if burstiness not in BURSTINESS:
            from .errors import UnknownOptionError
            raise UnknownOptionError("burstiness", burstiness, BURSTINESS)
        self.n_words = int(n_words)
        self.burstiness = burstiness
        self.segments: list[PostingSegment] = []
        self.norms = np.zeros(0, dtype=np.float32)
        self.alive = np.zeros(0, dtype=bool)
        self._tf_table = burst(np.arange(_TF_MAX + 1), burstiness).astype(np.float32)

    @property
    def n_docs(self) -> int:
        """Number of document slots (removed documents keep their slot until renumbering)."""
        return int(self.alive.shape[0])

    @property
    def n_postings(self) -> int:
        return sum(s.n_postings for s in self.segments)

    # ------------------------------------------------------------------------------- building
    def add(self, doc_offsets: np.ndarray, words: np.ndarray, counts: np.ndarray,
            idf: np.ndarray) -> np.ndarray:
        """Append documents given as a CSR batch of sparse bags of words.

        Parameters
        ----------
        doc_offsets : np.ndarray
            ``(n + 1,) int64``; document ``i``'s words are ``words[doc_offsets[i]:doc_offsets[i+1]]``.
        words : np.ndarray
            ``(m,) int`` word ids, distinct within each document.
        counts : np.ndarray
            ``(m,)`` positive term counts (capped at 255 when stored).
        idf : np.ndarray
            ``(n_words,) float32`` IDF used for the document norms.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` the new documents' ids.
        """
        doc_offsets = np.asarray(doc_offsets, dtype=np.int64)
        words = np.asarray(words, dtype=np.int64)
        n = doc_offsets.shape[0] - 1
        if n < 0 or doc_offsets[0] != 0 or doc_offsets[-1] != words.shape[0] or \
                counts.shape != words.shape or np.any(np.diff(doc_offsets) < 0):
            raise InvalidInputError("inconsistent CSR batch: offsets, words and counts disagree")
        if words.size and (words.min() < 0 or words.max() >= self.n_words):
            raise InvalidInputError(f"word ids must be in 0..{self.n_words - 1}")
        start = self.n_docs
        doc_of = np.repeat(np.arange(start, start + n, dtype=np.int64), np.diff(doc_offsets))
        tf = np.clip(np.rint(counts), 1, _TF_MAX).astype(np.uint8)
        order = np.argsort(words, kind="stable")  # stable: docs stay ascending within a word
        segment = PostingSegment(
            doc_start=start, n_docs=n,
            word_offsets=offsets_from_counts(np.bincount(words, minlength=self.n_words)),
            docs=doc_of[order].astype(np.uint32), tf=tf[order])
        self.segments.append(segment)
        contrib = (self._tf_table[tf] * idf[words]) ** 2
        norms = np.sqrt(np.bincount(doc_of - start, weights=contrib, minlength=n)).astype(np.float32)
        self.norms = np.concatenate([self.norms, norms])
        self.alive = np.concatenate([self.alive, np.ones(n, dtype=bool)])
        if len(self.segments) > 16:
            self.compact()
        return np.arange(start, start + n, dtype=np.int64)

    def remove(self, doc_ids: np.ndarray) -> None:
        """Mark documents as removed; their postings are dropped at the next :meth:`compact`."""
        ids = np.asarray(doc_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_docs):
            raise InvalidInputError(f"document ids must be in 0..{self.n_docs - 1}")
        if not self.alive.flags.writeable:
            self.alive = self.alive.copy()
        self.alive[ids] = False

    def compact(self) -> None:
        """Merge all segments into one, in O(P), dropping postings of removed documents."""
        if len(self.segments) <= 1 and (not self.segments or
                                        self.alive[self.segments[0].docs].all()):
            return
        kept_docs, kept_tf, kept_words = [], [], []
        for seg in self.segments:
            keep = self.alive[seg.docs]
            kept_docs.append(seg.docs[keep])
            kept_tf.append(seg.tf[keep])
            kept_words.append(seg.word_of_posting()[keep])
        per_word = [np.bincount(w, minlength=self.n_words) for w in kept_words]
        total = np.sum(per_word, axis=0)
        offsets = offsets_from_counts(total)
        docs = np.empty(int(total.sum()), dtype=np.uint32)
        tf = np.empty(docs.shape[0], dtype=np.uint8)
        filled = offsets[:-1].copy()  # where the next segment's postings for each word go
        for w, d, t, counts in zip(kept_words, kept_docs, kept_tf, per_word):
            seg_offsets = offsets_from_counts(counts)
            rank = np.arange(w.shape[0]) - seg_offsets[w]  # position within its word in this segment
            dest = filled[w] + rank
            docs[dest] = d
            tf[dest] = t
            filled += counts
        self.segments = [PostingSegment(0, self.n_docs, offsets, docs, tf)]

    def renumber(self, keep: np.ndarray) -> np.ndarray:
        """Drop removed document slots and renumber the rest in order.

        Parameters
        ----------
        keep : np.ndarray
            ``(n_docs,) bool`` which slots to keep (normally :attr:`alive`).

        Returns
        -------
        np.ndarray
            ``(n_docs,) int64`` new id of each old id (-1 for dropped ones).
        """
        keep = np.asarray(keep, dtype=bool)
        self.alive = self.alive & keep
        self.compact()
        new_id = np.full(self.n_docs, -1, dtype=np.int64)
        new_id[keep] = np.arange(int(keep.sum()))
        if self.segments:
            seg = self.segments[0]
            seg.docs = new_id[seg.docs].astype(np.uint32)
            seg.n_docs = int(keep.sum())
        self.norms = self.norms[keep]
        self.alive = np.ones(int(keep.sum()), dtype=bool)
        return new_id

    def document_frequencies(self) -> np.ndarray:
        """``(n_words,) int64`` number of live documents containing each word."""
        df = np.zeros(self.n_words, dtype=np.int64)
        for seg in self.segments:
            live = self.alive[seg.docs]
            df += np.bincount(seg.word_of_posting()[live], minlength=self.n_words)
        return df

    def reweight(self, idf: np.ndarray) -> None:
        """Recompute every document norm for a new IDF vector (O(P))."""
        sq = np.zeros(self.n_docs, dtype=np.float64)
        for seg in self.segments:
            contrib = (self._tf_table[seg.tf] * idf[seg.word_of_posting()]) ** 2
            sq += np.bincount(seg.docs, weights=contrib, minlength=self.n_docs)
        self.norms = np.sqrt(sq).astype(np.float32)

    # -------------------------------------------------------------------------------- scoring
    def scores(self, words: np.ndarray, weights: np.ndarray, idf: np.ndarray) -> np.ndarray:
        """Cosine scores of one query against every document.

        Parameters
        ----------
        words : np.ndarray
            ``(m,) int`` the query's distinct word ids.
        weights : np.ndarray
            ``(m,) float32`` the query's L2-normalised TF-IDF weights for those words
            (see :func:`vbow.weighting.tfidf`).
        idf : np.ndarray
            ``(n_words,) float32`` the IDF the document norms were computed with.

        Returns
        -------
        np.ndarray
            ``(n_docs,) float32`` cosine similarities; removed and empty documents score 0.
        """
        words = np.asarray(words, dtype=np.int64)
        total = np.zeros(self.n_docs, dtype=np.float64)
        for seg in self.segments:
            starts = seg.word_offsets[words]
            lengths = seg.word_offsets[words + 1] - starts
            positions = gather_ranges(starts, lengths)
            if positions.size == 0:
                continue
            contrib = self._tf_table[seg.tf[positions]] * np.repeat(weights * idf[words], lengths)
            total += np.bincount(seg.docs[positions], weights=contrib, minlength=self.n_docs)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(self.norms > 0, total / self.norms, 0.0)
        out[~self.alive] = 0.0
        return out.astype(np.float32)

    # ---------------------------------------------------------------------------- persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """One compacted segment's arrays (call :meth:`renumber` first to drop removed slots)."""
        self.compact()
        seg = self.segments[0] if self.segments else PostingSegment(
            0, 0, np.zeros(self.n_words + 1, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint8))
        return {"word_offsets": seg.word_offsets, "docs": seg.docs, "tf": seg.tf,
                "norms": self.norms}

    @classmethod
    def from_arrays(cls, n_words: int, burstiness: str, arrays: dict[str, np.ndarray]) -> "InvertedIndex":
        """Rebuild from :meth:`to_arrays` output (arrays may be memory-mapped)."""
        index = cls(n_words, burstiness)
        norms = arrays["norms"]
        offsets = arrays["word_offsets"]
        if offsets.shape != (n_words + 1,) or int(offsets[-1]) != arrays["docs"].shape[0] or \
                arrays["tf"].shape != arrays["docs"].shape:
            raise InvalidInputError("postings arrays are inconsistent with each other")
        index.segments = [PostingSegment(0, int(norms.shape[0]), offsets, arrays["docs"], arrays["tf"])]
        index.norms = norms
        index.alive = np.ones(norms.shape[0], dtype=bool)
        return index
