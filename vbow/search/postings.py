"""Postings: document id and term count packed in one ``uint32``, grouped by word in segments.

A posting packs the document id and its term count in one word::

    posting = doc << 2 | (min(tf, TF_CAP) - 1)        # TF_CAP = 4, doc < 2**30

so a word's postings are sorted by document, and the term count costs no extra byte. Counts are
capped at :data:`TF_CAP`: with the default ``sqrt`` burstiness a word seen 4 or more times in one
image counts 2, which is what burstiness control asks for anyway (the accuracy cost is measured
in ``benchmarks/results/scale.md``).

A segment (:class:`PostingSegment`) holds the postings of a contiguous range of documents in
CSR order by word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PostingSegment", "TF_CAP", "TF_BITS", "TF_MASK", "MAX_DOCS", "pack_postings",
           "unpack_postings"]

#: Term counts are stored capped at this value (2 bits).
TF_CAP = 4
#: Bits of a posting that hold the count code.
TF_BITS = 2
#: Mask of the count code.
TF_MASK = np.uint32((1 << TF_BITS) - 1)
#: Largest number of document slots one index can hold.
MAX_DOCS = 1 << (32 - TF_BITS)


def pack_postings(docs: np.ndarray, tf: np.ndarray) -> np.ndarray:
    """Pack document ids and term counts into ``uint32`` postings.

    Parameters
    ----------
    docs : np.ndarray
        ``(P,)`` integer document ids in ``0 .. MAX_DOCS - 1``.
    tf : np.ndarray
        ``(P,)`` term counts (rounded, clipped to ``1 .. TF_CAP``).

    Returns
    -------
    np.ndarray
        ``(P,) uint32`` postings.
    """
    code = (np.clip(np.rint(tf), 1, TF_CAP) - 1).astype(np.uint32)
    return (np.asarray(docs).astype(np.uint32) << np.uint32(TF_BITS)) | code


def unpack_postings(postings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_postings`: ``(P,) uint32`` docs and ``(P,) uint8`` counts."""
    postings = np.asarray(postings, dtype=np.uint32)
    return postings >> np.uint32(TF_BITS), ((postings & TF_MASK) + 1).astype(np.uint8)


@dataclass
class PostingSegment:
    """Postings of the documents ``doc_start .. doc_start + n_docs - 1``, grouped by word.

    Attributes
    ----------
    doc_start, n_docs : int
        The document id range this segment covers.
    word_offsets : np.ndarray
        ``(n_words + 1,) int64``; word ``w``'s postings are
        ``postings[word_offsets[w]:word_offsets[w+1]]``.
    postings : np.ndarray
        ``(P,) uint32`` packed postings (see :func:`pack_postings`), ascending within each word.
    signatures : np.ndarray or None
        ``(P,) uint64`` Hamming-embedding signature of each posting, or None without embedding.
    """

    doc_start: int
    n_docs: int
    word_offsets: np.ndarray
    postings: np.ndarray
    signatures: np.ndarray | None = None

    @property
    def n_postings(self) -> int:
        return int(self.postings.shape[0])

    @property
    def docs(self) -> np.ndarray:
        """``(P,) uint32`` document id of each posting."""
        return self.postings >> np.uint32(TF_BITS)

    @property
    def tf(self) -> np.ndarray:
        """``(P,) uint8`` (capped) term count of each posting."""
        return ((self.postings & TF_MASK) + 1).astype(np.uint8)

    def word_counts(self) -> np.ndarray:
        """``(n_words,) int64`` postings per word."""
        return np.diff(self.word_offsets)

    def word_of_posting(self) -> np.ndarray:
        """``(P,) int64`` the word of each posting."""
        return np.repeat(np.arange(self.word_offsets.shape[0] - 1), self.word_counts())
