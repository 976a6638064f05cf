"""Accumulating a query's postings into per-document scores, on one thread or several.

:func:`accumulate_ranges` scores the postings of some of a query's words (their ranges in one
:class:`~vbow.search.postings.PostingSegment`) into a ``(n_docs,) float32`` vector.
:func:`accumulate_parallel` splits the words into contiguous groups of about equal postings and
accumulates each group on its own thread of a shared pool, then sums the groups' vectors.

The heavy steps (reading the postings, Hamming distances, the weights, the sparse
matrix-vector product or ``np.bincount``) are compiled numpy and scipy loops that release the
GIL, so threads can overlap them; the Python loop over a query's words holds it, and the steps
are bound by memory bandwidth, so the gain is partial and a query is split only when it reads
at least :data:`PARALLEL_MIN_POSTINGS` postings. ``benchmarks/results/scale.md`` and
``scale_he.md`` time one and two threads side by side. The sum of the
groups' vectors is the same sum in another order: results agree with one thread to float32
rounding, and rankings agree except between documents whose scores tie to that rounding.

Large queries are accumulated in blocks of about :data:`BLOCK_POSTINGS` postings: each block's
postings, weights and document ids (12 bytes a posting) stay in a core's cache between the
steps, and are added into one ``(n_docs,) float32`` vector in place, so only the postings
themselves and the accumulator cross the memory bus. Whole-query arrays made every step a pass
through main memory. At a million images, 7.9M postings a query, blocks score in 0.67 of the
time of the whole-query form on one thread, with the same scores
(``benchmarks/results/accumulate.md``); with Hamming embedding, which keeps about 5 % of the
postings it reads, they change nothing measurable.
The in-place product is scipy's compiled ``csc_matvec`` kernel, the one behind its public
``csc_array @ x``, which adds into a given vector; the public product allocates a new
``(n_docs,)`` result per call, which would cost more than a block. ``csc_matvec`` lives in the
private ``scipy.sparse._sparsetools`` module, with the same signature from scipy 1.13 (vbow's
oldest) to today; it is checked on a small product at first use, and should a scipy release move
or change it, numpy's public ``np.add.at`` takes its place, with the same sums at about 1.29x the
scoring time (``accumulate.md``, same run).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from vbow.concurrency import run_split, usable_cores
from vbow.search.postings import TF_BITS, PostingSegment, burst_weights

__all__ = ["accumulate_ranges", "accumulate_parallel", "split_ranges", "split_long_ranges",
           "PARALLEL_MIN_POSTINGS", "SPARSE_MIN_POSTINGS", "BLOCK_POSTINGS", "SCIPY_KERNEL"]

#: queries reading at least this many postings (of one segment) accumulate them in blocks,
#: added in place into one vector, instead of one ``np.bincount`` of the whole query
SPARSE_MIN_POSTINGS = 1 << 18
#: postings per block of the blocked accumulation (a range longer than this is cut into pieces).
#: At 1M images, one thread, score ms (mean of 40 queries): 2^16 44, 2^18 39, 2^20 41 (one-off)
BLOCK_POSTINGS = 1 << 18
#: add the blocks into the accumulator with scipy's compiled kernel where the installed scipy
#: has it (looked up on first use, so importing vbow does not import scipy); False always uses
#: numpy's ``np.add.at``, the fallback (tests and benchmarks set it)
SCIPY_KERNEL = True
#: a query's postings in one segment are split across threads only from this many on. At 1M
#: images (7.9M postings), blocked, search without re-ranking on two threads against one:
#: sift p50 x0.77, p95 x0.85 (scale.md), sift-he p50 x0.85, p95 x0.79 (scale_he.md); the
#: score step alone, sift, x0.64 (accumulate.md). Before blocking, a one-off run with a 1M
#: threshold at 100k images (1.7M postings) was x1.10 slower (the per-word Python loops
#: contend for the GIL)
PARALLEL_MIN_POSTINGS = 1 << 22

@functools.cache
def _in_place_kernel() -> Callable | None:
    """scipy's compiled ``csc_matvec`` (``y += A @ x`` for a CSC matrix ``A``), or None where the
    installed scipy lacks it or it does not give the expected sums on a small product."""
    try:
        from scipy.sparse._sparsetools import csc_matvec
        out = np.ones(3, np.float32)
        # columns [rows 0, 2] and [row 2] with values 1, 2 and 4, times x = (1, 10)
        csc_matvec(3, 2, np.array([0, 2, 3], np.int32), np.array([0, 2, 2], np.int32),
                   np.array([1, 2, 4], np.float32), np.array([1, 10], np.float32), out)
    except Exception:  # noqa: BLE001 - any failure means: use the numpy fallback
        return None
    return csc_matvec if np.array_equal(out, [2, 1, 43]) else None



def accumulate_ranges(seg: PostingSegment, starts: np.ndarray, lengths: np.ndarray,
                      word_weight: np.ndarray, n_docs: int, burstiness: str, *,
                      signatures: np.ndarray | None = None, kernel: np.ndarray | None = None,
                      max_distance: int = -1) -> np.ndarray:
    """Sum of ``word_weight * burst(tf) [* kernel(hamming)]`` over the ranges' postings, per document.

    Parameters
    ----------
    seg : PostingSegment
        The segment the ranges index.
    starts, lengths : np.ndarray
        ``(m,) int64`` the ranges of the query's words in ``seg`` (every length > 0).
    word_weight : np.ndarray
        ``(m,) float32`` the query weight times the IDF of each range's word.
    n_docs : int
        Length of the result (document ids of ``seg`` are below it).
    burstiness : str
        Applied to the stored term counts (see :func:`vbow.search.postings.burst_weights`).
    signatures : np.ndarray, optional
        ``(m,) uint64`` the query's Hamming-embedding signature of each range's word; with it,
        only postings within ``max_distance`` are read, each weighted by ``kernel[distance]``.
    kernel : np.ndarray, optional
        ``(65,) float32`` the selective kernel (with ``signatures``).
    max_distance : int
        The largest distance where ``kernel`` is positive (with ``signatures``).

    Returns
    -------
    np.ndarray
        ``(n_docs,) float32`` unnormalised scores.
    """
    n = int(np.sum(lengths))
    if n < SPARSE_MIN_POSTINGS:
        docs, tf_weight, kept = _weighted_postings(seg, starts, lengths, burstiness, signatures,
                                                   kernel, max_distance)
        weight = tf_weight * np.repeat(word_weight.astype(np.float64), kept)
        return np.bincount(docs, weights=weight, minlength=n_docs).astype(np.float32)
    out = np.zeros(n_docs, np.float32)
    starts, lengths, word_weight, signatures = split_long_ranges(
        starts, lengths, BLOCK_POSTINGS, word_weight.astype(np.float32), signatures)
    for block in split_ranges(lengths, -(-n // BLOCK_POSTINGS)):
        _accumulate_block(seg, starts[block], lengths[block], word_weight[block], burstiness,
                          None if signatures is None else signatures[block], kernel,
                          max_distance, out)
    return out


def _weighted_postings(seg: PostingSegment, starts: np.ndarray, lengths: np.ndarray,
                       burstiness: str, signatures: np.ndarray | None, kernel: np.ndarray | None,
                       max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The document ids ``(k,) int32`` and term weights ``(k,) float32`` of the ranges' postings
    (with ``signatures``, only those within ``max_distance``, weighted by the kernel), and how
    many were kept of each range, ``(m,) int64``."""
    if signatures is not None:
        # the selective kernel drops most postings: only those within the Hamming threshold
        # are read, weighted and accumulated
        h = seg.hamming_distances(starts, lengths, signatures)
        post, h, lengths = seg.postings_within(starts, lengths, h, max_distance)
        tf_weight = burst_weights(post, burstiness)
        tf_weight *= kernel[h]
    else:
        post = seg.read(starts, lengths)
        tf_weight = burst_weights(post, burstiness)
    docs = (post >> np.uint32(TF_BITS)).view(np.int32)  # doc < 2**30: the same bits
    return docs, tf_weight, lengths


def _accumulate_block(seg: PostingSegment, starts: np.ndarray, lengths: np.ndarray,
                      word_weight: np.ndarray, burstiness: str, signatures: np.ndarray | None,
                      kernel: np.ndarray | None, max_distance: int, out: np.ndarray) -> None:
    """Add one block's ``word_weight * burst(tf) [* kernel]`` terms into ``(n_docs,) float32``
    ``out`` in place (``word_weight`` ``(m,) float32``)."""
    docs, tf_weight, kept = _weighted_postings(seg, starts, lengths, burstiness, signatures,
                                               kernel, max_distance)
    if docs.size == 0:
        return
    kernel_fn = _in_place_kernel() if SCIPY_KERNEL else None
    if kernel_fn is not None:
        # the block as a (docs x ranges) CSC matrix; out += matrix @ word_weight
        indptr = np.zeros(kept.size + 1, np.int32)
        np.cumsum(kept, out=indptr[1:])
        kernel_fn(out.shape[0], kept.size, indptr, docs, tf_weight, word_weight, out)
    else:
        tf_weight *= np.repeat(word_weight, kept)
        np.add.at(out, docs, tf_weight)


def split_long_ranges(starts: np.ndarray, lengths: np.ndarray, longest: int,
                      *per_range: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    """Cut every range longer than ``longest`` into consecutive pieces of at most ``longest``.

    Parameters
    ----------
    starts, lengths : np.ndarray
        ``(m,) int64`` ranges (lengths > 0).
    longest : int
        Largest piece (>= 1).
    *per_range : np.ndarray or None
        ``(m,)`` arrays with one value per range (e.g. its word weight), repeated for each
        piece; None passes through.

    Returns
    -------
    tuple
        ``(starts, lengths, *per_range)`` of the ``(k,)`` pieces, in order; the pieces of one
        range cover it exactly. The inputs are returned unchanged when no range is too long.
    """
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    pieces = -(-lengths // longest)
    if not np.any(pieces > 1):
        return (starts, lengths, *per_range)
    which = np.repeat(np.arange(lengths.size), pieces)
    first_piece = np.cumsum(pieces) - pieces
    k = np.arange(which.size) - first_piece[which]        # piece number within its range
    new_starts = starts[which] + k * longest
    new_lengths = np.minimum(lengths[which] - k * longest, longest)
    return (new_starts, new_lengths, *(None if a is None else a[which] for a in per_range))


def split_ranges(lengths: np.ndarray, parts: int) -> list[slice]:
    """Cut ``(m,)`` range lengths into at most ``parts`` contiguous groups of about equal sums.

    Returns the groups as slices into the ranges, in order, none empty; one slice for
    ``parts <= 1`` or a single range.
    """
    m = int(np.shape(lengths)[0])
    parts = max(1, min(int(parts), m))
    if parts == 1:
        return [slice(0, m)]
    ends = np.cumsum(lengths, dtype=np.int64)
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, parts) / parts, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.minimum(cuts, m), [m])))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def accumulate_parallel(seg: PostingSegment, starts: np.ndarray, lengths: np.ndarray,
                        word_weight: np.ndarray, n_docs: int, burstiness: str, threads: int, *,
                        signatures: np.ndarray | None = None, kernel: np.ndarray | None = None,
                        max_distance: int = -1) -> np.ndarray:
    """:func:`accumulate_ranges` with the ranges split across up to ``threads`` threads.

    Below :data:`PARALLEL_MIN_POSTINGS` postings, or with ``threads <= 1``, the ranges are
    accumulated on the calling thread. Otherwise each group of :func:`split_ranges` runs on the
    shared pool and the ``(n_docs,) float32`` results are summed in group order.
    """
    total = int(np.sum(lengths))
    threads = min(int(threads), usable_cores())
    if threads <= 1 or total < PARALLEL_MIN_POSTINGS:
        return accumulate_ranges(seg, starts, lengths, word_weight, n_docs, burstiness,
                                 signatures=signatures, kernel=kernel, max_distance=max_distance)
    groups = split_ranges(lengths, threads)

    def run(g: slice) -> np.ndarray:
        return accumulate_ranges(seg, starts[g], lengths[g], word_weight[g], n_docs, burstiness,
                                 signatures=None if signatures is None else signatures[g],
                                 kernel=kernel, max_distance=max_distance)

    first, *rest = run_split(run, groups)  # the calling thread takes the first group itself
    for part in rest:
        first += part
    return first
