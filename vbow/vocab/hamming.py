"""Hamming distances between packed binary descriptors, and bitwise-majority centroids."""

from __future__ import annotations

import numpy as np

__all__ = ["as_words64", "hamming_distances", "cell_distances", "bitwise_majority"]


def as_words64(packed: np.ndarray) -> np.ndarray:
    """View ``(n, b) uint8`` packed bits as ``(n, ceil(b/8)) uint64`` words (zero padded).

    Parameters
    ----------
    packed : np.ndarray
        ``(n, b) uint8``; ``b`` need not be a multiple of 8.

    Returns
    -------
    np.ndarray
        ``(n, ceil(b / 8)) uint64``, a contiguous copy only when padding is needed.
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n, b = packed.shape
    if b % 8:
        padded = np.zeros((n, b + 8 - b % 8), dtype=np.uint8)
        padded[:, :b] = packed
        packed = padded
    return packed.view(np.uint64)


def hamming_distances(a: np.ndarray, b: np.ndarray, *, chunk: int = 2048) -> np.ndarray:
    """All-pairs Hamming distances between two sets of packed binary descriptors.

    Parameters
    ----------
    a : np.ndarray
        ``(n, b) uint8`` packed bits (or ``(n, w) uint64`` from :func:`as_words64`).
    b : np.ndarray
        ``(m, b) uint8`` packed bits (or ``(m, w) uint64``).
    chunk : int
        Rows of ``a`` processed at once, bounding the ``(chunk, m, w)`` temporary.

    Returns
    -------
    np.ndarray
        ``(n, m) uint16`` distances (number of differing bits).
    """
    wa = a if a.dtype == np.uint64 else as_words64(a)
    wb = b if b.dtype == np.uint64 else as_words64(b)
    out = np.empty((wa.shape[0], wb.shape[0]), dtype=np.uint16)
    if wa.shape[1] == 0:
        out[:] = 0
        return out
    # one 64-bit column at a time: summing over a short trailing axis is several times slower
    cols_b = [np.ascontiguousarray(wb[:, k]) for k in range(wb.shape[1])]
    for start in range(0, wa.shape[0], chunk):
        block = wa[start:start + chunk]
        acc = out[start:start + chunk]
        acc[:] = np.bitwise_count(block[:, 0, None] ^ cols_b[0][None, :])
        for k in range(1, wa.shape[1]):
            acc += np.bitwise_count(block[:, k, None] ^ cols_b[k][None, :])
    return out


def cell_distances(cells: np.ndarray, queries: np.ndarray, pair_query: np.ndarray,
                   pair_cell: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Hamming distances of query descriptors to every word of one cell each.

    Parameters
    ----------
    cells : np.ndarray
        ``(w, n_cells, width) uint64``: column ``j`` of each cell's words (``width`` slots per
        cell; slots past a cell's words hold anything, and their distances mean nothing).
    queries : np.ndarray
        ``(n, w) uint64`` packed query descriptors (:func:`as_words64`).
    pair_query, pair_cell : np.ndarray
        ``(P,) int`` pairs: query ``pair_query[i]`` against the words of cell ``pair_cell[i]``.
    chunk : int
        Pairs per block: the ``(chunk, width)`` temporaries are reused and stay in cache.

    Returns
    -------
    np.ndarray
        ``(P, width) uint16`` distances.
    """
    n_cols, _, width = cells.shape
    n_pairs = int(pair_cell.shape[0])
    out = np.zeros((n_pairs, width), np.uint16)
    block = np.empty((min(chunk, n_pairs), width), np.uint64)
    counts = np.empty((min(chunk, n_pairs), width), np.uint8)
    q = queries[pair_query]
    for s in range(0, n_pairs, chunk):
        e = min(n_pairs, s + chunk)
        b, c = block[:e - s], counts[:e - s]
        for col in range(n_cols):
            np.take(cells[col], pair_cell[s:e], axis=0, out=b)
            np.bitwise_xor(b, q[s:e, col, None], out=b)
            np.bitwise_count(b, out=c)
            np.add(out[s:e], c, out=out[s:e])
    return out


def bitwise_majority(packed: np.ndarray, labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster bitwise majority (the Hamming-space centroid, as in DBoW2's k-majority).

    Parameters
    ----------
    packed : np.ndarray
        ``(n, b) uint8`` packed bits.
    labels : np.ndarray
        ``(n,)`` integer cluster of each row, in ``0..n_clusters-1``.
    n_clusters : int
        Number of clusters.

    Returns
    -------
    centroids : np.ndarray
        ``(n_clusters, b) uint8``; a bit is set where more than half the members have it set
        (ties round down). Empty clusters get all-zero centroids.
    counts : np.ndarray
        ``(n_clusters,) int64`` members per cluster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_clusters).astype(np.int64)
    order = np.argsort(labels, kind="stable")
    bits = np.unpackbits(packed[order], axis=1).astype(np.int32)
    sums = np.zeros((n_clusters, bits.shape[1]), dtype=np.int64)
    present = np.flatnonzero(counts)
    if present.size:
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[present]
        sums[present] = np.add.reduceat(bits, starts, axis=0)
    majority = (2 * sums > counts[:, None]).astype(np.uint8)
    return np.packbits(majority, axis=1), counts
