"""Seeded clustering routines used to train vocabularies.

* :func:`kmeans_l2`: k-means++ seeding and Lloyd iterations under squared L2, float32 GEMMs.
* :func:`kmajority`: the Hamming-space analogue for packed binary descriptors: k-means++ seeding
  under Hamming distance, nearest-centroid assignment by Hamming distance, bitwise-majority
  centroids.

Both are deterministic for a given seed, process large inputs in chunks, and never leave an empty
cluster: an emptied cluster is re-seeded with the point farthest from its centroid.
"""

from __future__ import annotations

import numpy as np

from vbow.vocab.hamming import as_words64, bitwise_majority, hamming_distances

__all__ = ["sq_l2_distances", "kmeans_l2", "kmajority", "cluster_sums"]


def sq_l2_distances(x: np.ndarray, c: np.ndarray, c_norms: np.ndarray | None = None) -> np.ndarray:
    """``(n, k) float32`` squared Euclidean distances between rows of ``x`` and ``c``.

    Parameters
    ----------
    x : np.ndarray
        ``(n, d) float32``.
    c : np.ndarray
        ``(k, d) float32``.
    c_norms : np.ndarray, optional
        ``(k,) float32`` precomputed squared norms of ``c``.
    """
    if c_norms is None:
        c_norms = np.einsum("ij,ij->i", c, c)
    d = x @ c.T
    d *= -2.0
    d += np.einsum("ij,ij->i", x, x)[:, None]
    d += c_norms[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of rows and member counts: ``(k, d) float64`` and ``(k,) int64``."""
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    present = np.flatnonzero(counts)
    if present.size:
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[present]
        sums[present] = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
    return sums, counts


def _assign(dist_fn, x, centroids, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.empty(x.shape[0], dtype=np.int64)
    best = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], chunk):
        d = dist_fn(x[s:s + chunk], centroids)
        labels[s:s + chunk] = np.argmin(d, axis=1)
        best[s:s + chunk] = d[np.arange(d.shape[0]), labels[s:s + chunk]]
    return labels, best


def _kmeanspp(dist_to_one, pool_size: int, k: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``k`` k-means++ seeds in a pool; ``dist_to_one(i)`` gives distances to row i."""
    first = int(rng.integers(pool_size))
    seeds = [first]
    closest = dist_to_one(first).astype(np.float64)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: remaining seeds are duplicates
            nxt = int(rng.integers(pool_size))
        else:
            nxt = int(np.searchsorted(np.cumsum(closest), rng.random() * total, side="right"))
            nxt = min(nxt, pool_size - 1)
        seeds.append(nxt)
        np.minimum(closest, dist_to_one(nxt), out=closest)
    return seeds


def kmeans_l2(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 20, tol: float = 1e-4,
              seed_pool: int = 20000, chunk: int = 8192) -> np.ndarray:
    """k-means under squared L2.

    Parameters
    ----------
    x : np.ndarray
        ``(n, d) float32`` points.
    k : int
        Number of clusters (capped at ``n``).
    seed : int
        Random seed (k-means++ seeding on a pool of at most ``seed_pool`` points).
    max_iter : int
        Maximum Lloyd iterations.
    tol : float
        Stop when the mean squared distance improves by less than this fraction.

    Returns
    -------
    np.ndarray
        ``(k', d) float32`` centroids, ``k' = min(k, n)``.
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = min(int(k), n)
    pool = x if n <= seed_pool else x[np.sort(rng.choice(n, seed_pool, replace=False))]
    pool_norms = np.einsum("ij,ij->i", pool, pool)

    def dist_to_one(i: int) -> np.ndarray:
        d = pool_norms - 2.0 * (pool @ pool[i]) + pool_norms[i]
        return np.maximum(d, 0.0)

    centroids = pool[_kmeanspp(dist_to_one, pool.shape[0], k, rng)].copy()
    previous = np.inf
    for _ in range(max_iter):
        labels, best = _assign(sq_l2_distances, x, centroids, chunk)
        sums, counts = cluster_sums(x, labels, k)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if empty.size:
            far = np.argsort(-best, kind="stable")[:empty.size]
            centroids[empty[:far.size]] = x[far]
        inertia = float(best.mean())
        if empty.size == 0 and np.isfinite(previous) and previous - inertia <= tol * previous:
            break
        previous = inertia
    return centroids


def kmajority(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 15,
              seed_pool: int = 20000, chunk: int = 4096) -> np.ndarray:
    """k-majority clustering of packed binary descriptors under the Hamming distance.

    Parameters
    ----------
    x : np.ndarray
        ``(n, b) uint8`` packed bits.
    k : int
        Number of clusters (capped at ``n``).
    seed : int
        Random seed for k-means++ seeding.
    max_iter : int
        Maximum assignment/majority iterations (stops early when labels stop changing).

    Returns
    -------
    np.ndarray
        ``(k', b) uint8`` centroids (bitwise majorities of their members).
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    k = min(int(k), n)
    x64 = as_words64(x)
    pool_idx = np.arange(n) if n <= seed_pool else np.sort(rng.choice(n, seed_pool, replace=False))
    pool64 = x64[pool_idx]

    def dist_to_one(i: int) -> np.ndarray:
        return np.bitwise_count(pool64 ^ pool64[i]).sum(axis=1, dtype=np.int64)

    centroids = x[pool_idx[_kmeanspp(dist_to_one, pool64.shape[0], k, rng)]].copy()
    labels = None
    for _ in range(max_iter):
        new_labels, best = _assign(hamming_distances, x64, as_words64(centroids), chunk)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        centroids, counts = bitwise_majority(x, labels, k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-best, kind="stable")[:empty.size]
            centroids[empty[:far.size]] = x[far]
    return centroids
