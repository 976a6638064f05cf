"""Selective match kernel on Hamming-embedding signatures (numpy only).

Each posting of the inverted file may carry one 64-bit signature: the signs of the summed,
centred projected residuals of the image's features in that word (:mod:`vbow.vocab.embedding`).
Summing before binarising is ASMK*'s aggregation (Tolias, Avrithis & Jégou 2013): the features
of one image that fall in one word (repeated texture, burstiness) vote once, with one signature.
A query is aggregated the same way per word (with multiple assignment, every
(feature, word) pair contributes its residual to that word, weighted by its soft weight).

The score of a (query word, posting) pair is its TF-IDF product times the selective kernel of
the Hamming distance ``h`` between the two signatures::

    K(h) = (1 - 2 h / 64) ** alpha   if h <= threshold, else 0

(``u = 1 - 2h/64`` is the signatures' normalised similarity in [-1, 1]; ``alpha`` sharpens it,
``threshold`` drops pairs that only share a word.) ``K(0) = 1``, so an image's self-similarity
and its TF-IDF norm are unchanged, and with a kernel of ones the score is the plain cosine.
"""

from __future__ import annotations

import numpy as np

from vbow.errors import InvalidInputError
from vbow.search.csr import gather_ranges

__all__ = ["N_BITS", "selective_kernel", "aggregate_query", "kernel_weights", "pack_signs", "signs_of",
           "majority_signatures", "summed_signatures"]

#: Signature length in bits.
N_BITS = 64


def pack_signs(values: np.ndarray) -> np.ndarray:
    """``(n, 64)`` real values → ``(n,) uint64``, bit ``j`` set where ``values[:, j] > 0``
    (little-endian bit order, as :func:`vbow.vocab.embedding.pack_signs`)."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != N_BITS:
        raise InvalidInputError(f"signature values must be (n, {N_BITS}); got {values.shape}")
    packed = np.packbits(values > 0, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").reshape(-1).astype(np.uint64, copy=False)


def signs_of(signatures: np.ndarray | None) -> np.ndarray | None:
    """``(F,) uint64`` signatures → ``(F, 64) float32`` with ``+1`` for a set bit, ``-1`` else.

    Indexing aggregates features stored as signatures this way: the sign of the sum of these
    rows over a posting's features is the bitwise majority (a tie leaves the bit unset), the
    binary counterpart of summing residuals. None passes through.
    """
    if signatures is None:
        return None
    sig = np.ascontiguousarray(np.asarray(signatures, dtype="<u8"))
    bits = np.unpackbits(sig.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    out = bits.astype(np.float32)
    out *= 2.0
    out -= 1.0
    return out


def majority_signatures(sorted_signatures: np.ndarray, firsts: np.ndarray,
                         tf: np.ndarray) -> np.ndarray:
    """``(P,) uint64`` bitwise majority of each run of ``(F,) uint64`` signatures (run ``p``
    starts at ``firsts[p]`` and has ``tf[p]`` members); a tie leaves the bit unset."""
    out = sorted_signatures[firsts].copy()  # a run of one is its own majority
    multi = np.flatnonzero(tf > 1)
    for s in range(0, multi.shape[0], 1 << 16):  # bounded (features, 64) bit temporaries
        runs = multi[s:s + (1 << 16)]
        counts = tf[runs]
        members = gather_ranges(firsts[runs], counts)
        sig = np.ascontiguousarray(sorted_signatures[members].astype("<u8"))
        bits = np.unpackbits(sig.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        ones = np.add.reduceat(bits.astype(np.int32), np.cumsum(counts) - counts, axis=0)
        packed = np.packbits(2 * ones > counts[:, None], axis=1, bitorder="little")
        out[runs] = np.ascontiguousarray(packed).view("<u8").reshape(-1)
    return out


def summed_signatures(embedding: np.ndarray, order: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """``(P,) uint64`` signs of the summed ``(F, 64)`` ``embedding`` rows of each run: rows
    ``order[firsts[p]:firsts[p + 1]]`` (the last run ends at ``order``'s end); summed in
    bounded chunks of runs."""
    out = np.zeros(firsts.shape[0], dtype=np.uint64)
    for s in range(0, firsts.shape[0], 1 << 18):  # bounded (chunk, 64) temporaries
        e = min(s + (1 << 18), firsts.shape[0])
        lo, hi = int(firsts[s]), int(firsts[e]) if e < firsts.shape[0] else order.shape[0]
        part = np.asarray(embedding[order[lo:hi]], dtype=np.float32)
        out[s:e] = pack_signs(np.add.reduceat(part, firsts[s:e] - lo, axis=0))
    return out


def selective_kernel(threshold: int = 24, alpha: float = 3.0) -> np.ndarray:
    """``(65,) float32`` kernel value for each Hamming distance 0..64 (see the module docstring).

    Parameters
    ----------
    threshold : int
        Largest Hamming distance (bits, 0..64) that still scores.
    alpha : float
        Exponent of the normalised similarity (ASMK uses 3).
    """
    if not 0 <= int(threshold) <= N_BITS:
        raise InvalidInputError(f"the Hamming threshold must be in 0..{N_BITS}; got {threshold}")
    if not alpha > 0:
        raise InvalidInputError(f"the kernel exponent must be > 0; got {alpha}")
    h = np.arange(N_BITS + 1, dtype=np.float64)
    u = np.maximum(1.0 - 2.0 * h / N_BITS, 0.0)
    k = np.where(h <= int(threshold), u ** float(alpha), 0.0)
    return k.astype(np.float32)


def aggregate_query(words: np.ndarray, weights: np.ndarray, residuals: np.ndarray,
                    distinct: np.ndarray) -> np.ndarray:
    """One signature per distinct query word: signs of the weighted sums of its residuals.

    Parameters
    ----------
    words : np.ndarray
        ``(n, k) int`` words of the query's features (``-1`` = none).
    weights : np.ndarray
        ``(n, k) float32`` soft assignment weights.
    residuals : np.ndarray
        ``(n, k, 64) float32`` centred projected residuals
        (:meth:`vbow.vocab.embedding.HammingEmbedding.residuals`).
    distinct : np.ndarray
        ``(m,) int`` the query's distinct words, ascending (as
        :func:`vbow.search.weighting.bag_of_words` returns them).

    Returns
    -------
    np.ndarray
        ``(m,) uint64`` signatures, aligned with ``distinct``.
    """
    w = np.asarray(words).reshape(-1)
    valid = w >= 0
    if residuals.shape[:2] != np.shape(words) or residuals.shape[2:] != (N_BITS,):
        raise InvalidInputError(f"residuals must be {np.shape(words) + (N_BITS,)}; got {residuals.shape}")
    pos = np.searchsorted(distinct, w[valid])
    if pos.size and (int(pos.max()) >= distinct.size or
                     not np.array_equal(distinct[np.minimum(pos, distinct.size - 1)], w[valid])):
        raise InvalidInputError("the query's words must all be among the distinct words")
    r = residuals.reshape(-1, N_BITS)[valid] * np.asarray(weights, np.float32).reshape(-1)[valid, None]
    # one bincount over (word, bit) cells: compiled, and in the features' order as np.add.at
    # would sum (which numpy runs one element at a time)
    cells = (pos[:, None] * N_BITS + np.arange(N_BITS)).reshape(-1)
    sums = np.bincount(cells, weights=r.reshape(-1), minlength=distinct.size * N_BITS)
    return pack_signs(sums.reshape(distinct.size, N_BITS))


def kernel_weights(posting_signatures: np.ndarray, query_signatures: np.ndarray,
                   kernel: np.ndarray) -> np.ndarray:
    """``(P,) float32`` kernel value of each posting against its query word's signature.

    Parameters
    ----------
    posting_signatures, query_signatures : np.ndarray
        ``(P,) uint64`` each: a posting's signature and the signature of the query word it was
        read for.
    kernel : np.ndarray
        ``(65,) float32`` from :func:`selective_kernel`.
    """
    h = np.bitwise_count(np.bitwise_xor(posting_signatures, query_signatures))
    return kernel[h]
