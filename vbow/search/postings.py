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

from vbow.search.csr import gather_ranges

__all__ = ["PostingSegment", "TF_CAP", "TF_BITS", "TF_MASK", "MAX_DOCS", "pack_postings",
           "unpack_postings", "burst_weights"]

#: Term counts are stored capped at this value (2 bits).
TF_CAP = 4
#: Bits of a posting that hold the count code.
TF_BITS = 2
#: Mask of the count code.
TF_MASK = np.uint32((1 << TF_BITS) - 1)
#: Largest number of document slots one index can hold.
MAX_DOCS = 1 << (32 - TF_BITS)
#: Up to this many ranges (a query's words) are read slice by slice, in place; more are gathered
#: through one position array.
_SLICED_RANGES = 4096


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


def burst_weights(postings: np.ndarray, burstiness: str) -> np.ndarray:
    """Burst weight of the count code in the low bits of packed postings.

    numpy only, and without an index array: the low byte is cast to ``uint8``, masked to the
    code, ``code + 1`` is written as float32 and the burstiness function applied in place.
    Measured side by side at 8M postings on a loaded 2-core machine: 1.27x the time of the
    former 256-entry ``cv2.LUT`` for this step alone (64 vs 51 ms), within noise for a whole
    8M-posting query (ratio 0.92-1.06); a table lookup by fancy indexing was 1.36x slower end
    to end (it casts the codes to int64 positions). ``sqrt`` and ``none`` are exact, so the
    weights equal the former table's bit for bit.

    Parameters
    ----------
    postings : np.ndarray
        ``(P,) uint32`` packed postings (see :func:`pack_postings`).
    burstiness : str
        ``"sqrt"``, ``"log"`` (``log1p``) or ``"none"`` (see :mod:`vbow.search.weighting`).

    Returns
    -------
    np.ndarray
        ``(P,) float32`` weight of each posting's (capped) term count.
    """
    code = np.asarray(postings).astype(np.uint8)
    mask = int(TF_MASK)
    if mask < 0xFF:
        np.bitwise_and(code, np.uint8(mask), out=code)
    if mask + 1 > TF_CAP:  # a wider tf field (scale bench emulation): codes past the cap
        np.minimum(code, np.uint8(TF_CAP - 1), out=code)
    w = np.add(code, np.float32(1.0), dtype=np.float32)  # cast in buffered chunks: one pass
    if burstiness == "sqrt":
        np.sqrt(w, out=w)
    elif burstiness == "log":
        np.log1p(w, out=w)
    return w


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

    def read(self, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``(sum(lengths),) uint32`` the postings of the ranges ``[starts[i], starts[i] +
        lengths[i])`` (``(m,) int64`` each, e.g. of a query's words, non-empty), concatenated
        in order."""
        flat = self.postings.view(np.ndarray)  # plain view: slicing a np.memmap is slow
        if starts.size <= _SLICED_RANGES:  # contiguous slices: memcpy speed, no int64 position array
            return np.concatenate([flat[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist())])
        return flat[gather_ranges(starts, lengths)]

    def hamming_distances(self, starts: np.ndarray, lengths: np.ndarray,
                          query_signatures: np.ndarray) -> np.ndarray:
        """Hamming distance of every posting in the ranges to the signature it is read for.

        Parameters
        ----------
        starts, lengths : np.ndarray
            ``(m,) int64`` ranges into :attr:`signatures`, as in :meth:`read` (non-empty).
        query_signatures : np.ndarray
            ``(m,) uint64`` the query signature each range is compared with.

        Returns
        -------
        np.ndarray
            ``(sum(lengths),) uint8`` distances in ``0..64``, in :meth:`read`'s order.

        Notes
        -----
        For up to 4,096 ranges (a query's words), each range is compared where it lies, into
        one reused buffer: the signatures are never concatenated and the query's are never
        repeated per posting, which saves three passes over 8 bytes per posting
        (``benchmarks/results/he_scoring.md`` times both forms).
        """
        sig_flat = self.signatures.view(np.ndarray)
        total = int(lengths.sum())
        if starts.size > _SLICED_RANGES:
            sig = sig_flat[gather_ranges(starts, lengths)]
            np.bitwise_xor(sig, np.repeat(np.asarray(query_signatures, np.uint64), lengths), out=sig)
            return np.bitwise_count(sig)
        out = np.empty(total, np.uint8)
        buffer = np.empty(int(lengths.max()) if lengths.size else 0, np.uint64)
        at = 0
        for s, k, q in zip(starts.tolist(), lengths.tolist(),
                           np.asarray(query_signatures, np.uint64).tolist()):
            xor = buffer[:k]
            np.bitwise_xor(sig_flat[s:s + k], np.uint64(q), out=xor)
            np.bitwise_count(xor, out=out[at:at + k])
            at += k
        return out

    def postings_within(self, starts: np.ndarray, lengths: np.ndarray, distances: np.ndarray,
                        max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings of the ranges whose Hamming distance is at most ``max_distance``.

        Parameters
        ----------
        starts, lengths : np.ndarray
            ``(m,) int64`` ranges, as in :meth:`read`.
        distances : np.ndarray
            ``(sum(lengths),) uint8`` from :meth:`hamming_distances` for the same ranges.
        max_distance : int
            Largest distance kept.

        Returns
        -------
        postings : np.ndarray
            ``(k,) uint32`` the kept postings, in :meth:`read`'s order; only these are read.
        distances : np.ndarray
            ``(k,) uint8`` their distances.
        counts : np.ndarray
            ``(m,) int64`` how many were kept of each range.
        """
        kept = np.flatnonzero(distances <= max_distance)
        first = np.cumsum(lengths) - lengths
        range_of = np.searchsorted(first, kept, side="right") - 1
        postings = self.postings.view(np.ndarray)[starts[range_of] + (kept - first[range_of])]
        return postings, distances[kept], np.bincount(range_of, minlength=lengths.size).astype(np.int64)
