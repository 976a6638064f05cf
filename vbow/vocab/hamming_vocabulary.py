"""The vocabulary tree for binary descriptors (ORB): k-majority under the Hamming distance.

The tree, its assignment and its IDF live in :class:`vbow.vocab.vocabulary.Vocabulary`; this
class adds Hamming distances and k-majority clustering (never float k-means on bits).
"""

from __future__ import annotations

import numpy as np

from vbow.vocab.clustering import kmajority
from vbow.vocab.hamming import as_words64, cell_distances, hamming_distances
from vbow.vocab.vocabulary import Vocabulary

__all__ = ["HammingVocabulary"]


class HammingVocabulary(Vocabulary):
    """Vocabulary tree for binary descriptors (ORB, 256 bits packed in 32 bytes).

    Clustering is k-majority: k-means++ seeding under the Hamming distance, then alternating
    nearest-centroid assignment by Hamming distance and bitwise-majority centroids. Empty
    clusters are re-seeded with the points farthest from their centroids.
    """

    kind = "hamming"
    dim = 32
    dtype = np.dtype(np.uint8)

    #: at most this many (descriptor, probed cell) pairs take the vectorised small-batch path
    small_pairs: int = 8192

    def _prepare(self) -> None:
        self._words64 = as_words64(self.words_)
        self._coarse64 = as_words64(self.coarse_)
        self._padded: np.ndarray | None = None

    def _padded_cells(self) -> np.ndarray:
        """``(w, n_cells, max_cell) uint64``: each cell's words as 64-bit columns, padded with
        all-ones words past the cell's end (built once, ~2 MB for 65,536 words)."""
        if self._padded is None:
            counts = np.diff(self.cell_offsets_)
            width = max(int(counts.max()) if counts.size else 1, 1)
            valid = np.arange(width)[None, :] < counts[:, None]
            n_cols = self._words64.shape[1]
            padded = np.full((n_cols, counts.shape[0], width), np.iinfo(np.uint64).max, np.uint64)
            for col in range(n_cols):
                padded[col][valid] = self._words64[:, col]  # words are grouped by cell, in order
            self._padded = padded
        return self._padded

    def _assign_pairs_small(self, x: np.ndarray, pair_desc: np.ndarray, pair_cell: np.ndarray,
                            k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Query-sized batches: every pair's distances to its cell's words in one
        ``(P, max_cell) uint16`` block (:func:`vbow.vocab.hamming.cell_distances`, computed
        in cache-sized blocks), then the ``k`` nearest words selected as the per-cell loop
        selects them, so the words are the same."""
        if pair_cell.size > self.small_pairs or pair_cell.size == 0:
            return None
        padded = self._padded_cells()
        counts = np.diff(self.cell_offsets_)[pair_cell]
        # float32, as the loop's distances: argpartition picks among tied distances by dtype
        d = cell_distances(padded, as_words64(x), pair_desc, pair_cell).astype(np.float32)
        width = d.shape[1]
        d[np.arange(width)[None, :] >= counts[:, None]] = np.inf  # padding is never a word
        kk = min(k, width)
        if kk == 1:
            top = np.argmin(d, axis=1)[:, None]
        elif kk < width:
            top = np.sort(np.argpartition(d, kk - 1, axis=1)[:, :kk], axis=1)
        else:
            top = np.broadcast_to(np.arange(width), (d.shape[0], width))
        top_d = np.take_along_axis(d, top, axis=1)
        cand_d = np.full((pair_cell.size, k), np.inf, dtype=np.float32)
        cand_w = np.full((pair_cell.size, k), -1, dtype=np.int32)
        real = np.isfinite(top_d)
        cand_d[:, :kk] = np.where(real, top_d, np.inf)
        cand_w[:, :kk] = np.where(real, top + self.cell_offsets_[pair_cell][:, None], -1)
        return cand_w, cand_d

    def _distances(self, x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        if centroids is getattr(self, "coarse_", None) and hasattr(self, "_coarse64"):
            return hamming_distances(x, self._coarse64).astype(np.float32)
        return hamming_distances(x, centroids).astype(np.float32)

    def _cell_distances(self, x: np.ndarray, cell: int) -> np.ndarray:
        w0, w1 = int(self.cell_offsets_[cell]), int(self.cell_offsets_[cell + 1])
        return hamming_distances(x, self._words64[w0:w1]).astype(np.float32)

    def _soft_scale(self, distances: np.ndarray) -> np.ndarray:
        return (2.0 * distances / (8 * self.dim)).astype(np.float32)

    def _cluster(self, x: np.ndarray, k: int, seed: int, coarse: bool) -> np.ndarray:
        return kmajority(x, k, seed=seed, max_iter=15 if coarse else 10)
