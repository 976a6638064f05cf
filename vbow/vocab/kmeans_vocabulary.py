"""The vocabulary tree for float descriptors (RootSIFT/SIFT): k-means under the L2 distance.

The tree, its assignment and its IDF live in :class:`vbow.vocab.vocabulary.Vocabulary`; this
class adds the L2 distances and k-means clustering.
"""

from __future__ import annotations

import numpy as np

from vbow.vocab.clustering import kmeans_l2, sq_l2_distances
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["KMeansVocabulary"]


class KMeansVocabulary(Vocabulary):
    """Vocabulary tree for float descriptors (128-d RootSIFT/SIFT), trained with k-means.

    Both levels use k-means++ seeded Lloyd k-means (:func:`vbow.vocab.clustering.kmeans_l2`) with chunked
    float32 GEMMs. The coarse level is trained on a subsample of ``coarse_sample_per_cell`` points
    per cell, and the training sample itself is a bounded reservoir sample, so streams of
    millions of descriptors train in bounded memory and time.
    """

    kind = "kmeans"
    dim = 128
    dtype = np.dtype(np.float32)
    _argmin_top_k = 4

    def _prepare(self) -> None:
        self._norms_by_cell = None
        self._word_norms = np.einsum("ij,ij->i", self.words_, self.words_).astype(np.float32)
        self._coarse_norms = np.einsum("ij,ij->i", self.coarse_, self.coarse_).astype(np.float32)

    def _distances(self, x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        if centroids is getattr(self, "coarse_", None) and hasattr(self, "_coarse_norms"):
            return sq_l2_distances(x, centroids, self._coarse_norms)
        return sq_l2_distances(x, centroids)

    #: at most this many (descriptor, probed cell) pairs take the batched small-batch path
    small_pairs: int = 16384
    #: Split across threads from this many pairs on (400 descriptors at 2 probes). Two threads
    #: against one, 200 real queries cut to n descriptors, 10k sift bundle, same words:
    #: n = 495 x0.78, 925 x0.73; the Hamming vocabulary gains nothing (x0.99 at 994), so it
    #: never splits (``benchmarks/results/quantise_threads.md``)
    parallel_min_pairs: int | None = 800

    def _assign_pairs_small(self, x: np.ndarray, pair_desc: np.ndarray, pair_cell: np.ndarray,
                            k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Query-sized batches: one GEMM per probed cell and nothing else in the loop.

        The per-cell loop of the general path runs some twenty numpy calls per cell, which is
        most of a 1,000-descriptor query's quantisation. Here the loop only multiplies each
        cell's words with its pairs' descriptors (``words @ x.T``, the fast orientation for
        skinny products) into one ``(max_cell, P)`` block; scaling, the norms, padding and the
        ``k`` argmin passes then run once over all pairs, in the same order of operations as
        :meth:`_cell_distances`, so the distances and the chosen words are the same.
        """
        n_pairs = pair_cell.size
        if n_pairs > self.small_pairs or n_pairs == 0:
            return None
        counts = np.diff(self.cell_offsets_)
        width = int(counts.max())
        order = np.argsort(pair_cell, kind="stable")
        cells = pair_cell[order]
        xs_t = np.ascontiguousarray(x[pair_desc[order]].T)          # (dim, P) in cell order
        bounds = np.flatnonzero(np.diff(cells)) + 1
        starts = np.concatenate(([0], bounds)).tolist()
        ends = np.concatenate((bounds, [n_pairs])).tolist()
        block = np.zeros((width, n_pairs), dtype=np.float32)  # padding: finite, then +inf
        words, offsets = self.words_, self.cell_offsets_
        for s, e in zip(starts, ends):
            c = int(cells[s])
            w0, w1 = int(offsets[c]), int(offsets[c + 1])
            if w1 > w0:
                block[:w1 - w0, s:e] = np.dot(words[w0:w1], xs_t[:, s:e])
        d = np.ascontiguousarray(block.T)                            # (P, width)
        d *= -2.0
        d += np.einsum("ij,ij->i", x, x)[pair_desc[order]][:, None]
        d += self._padded_norms()[cells]                             # +inf past a cell's end
        np.maximum(d, 0.0, out=d)
        kk = min(k, width)
        top = np.empty((n_pairs, kk), np.int64)
        top_d = np.empty((n_pairs, kk), np.float32)
        r = np.arange(n_pairs)
        for j in range(kk):  # argmin passes: the lowest word id wins among equal distances
            top[:, j] = np.argmin(d, axis=1)
            top_d[:, j] = d[r, top[:, j]]
            if j + 1 < kk:
                d[r, top[:, j]] = np.inf
        real = np.isfinite(top_d)
        cand_w = np.full((n_pairs, k), -1, dtype=np.int32)
        cand_d = np.full((n_pairs, k), np.inf, dtype=np.float32)
        cand_w[order[:, None], np.arange(kk)[None, :]] = np.where(real, top + offsets[cells][:, None], -1)
        cand_d[order[:, None], np.arange(kk)[None, :]] = np.where(real, top_d, np.inf)
        return cand_w, cand_d

    def _padded_norms(self) -> np.ndarray:
        """``(n_cells, max_cell) float32`` squared word norms by cell, ``inf`` past each cell's
        words (built once per fitted or loaded vocabulary)."""
        padded = getattr(self, "_norms_by_cell", None)
        if padded is None:
            counts = np.diff(self.cell_offsets_)
            width = max(int(counts.max()) if counts.size else 1, 1)
            padded = np.full((counts.shape[0], width), np.inf, np.float32)
            padded[np.arange(width)[None, :] < counts[:, None]] = self._word_norms
            self._norms_by_cell = padded
        return padded

    def _cell_distances(self, x: np.ndarray, cell: int) -> np.ndarray:
        w0, w1 = int(self.cell_offsets_[cell]), int(self.cell_offsets_[cell + 1])
        if x.shape[0] > 256:
            return sq_l2_distances(x, self.words_[w0:w1], self._word_norms[w0:w1])
        # few rows (query time): words @ x.T with a contiguous x.T is several times faster in
        # OpenBLAS than x @ words.T for skinny products
        d = np.dot(self.words_[w0:w1], np.ascontiguousarray(x.T)).T
        d *= -2.0
        d += np.einsum("ij,ij->i", x, x)[:, None]
        d += self._word_norms[None, w0:w1]
        np.maximum(d, 0.0, out=d)
        return d

    def _cluster(self, x: np.ndarray, k: int, seed: int, coarse: bool) -> np.ndarray:
        return kmeans_l2(x, k, seed=seed, max_iter=25 if coarse else 15)
