"""Visual vocabularies: a two-level tree of words with multi-probe assignment.

Both vocabularies share one structure (a vocabulary tree of depth two, as in Nistér & Stewénius
2006): ``B1`` coarse cells, each split into up to ``B2`` words, so a 65,536-word vocabulary costs
about 256 + 256·probes distance computations per descriptor instead of 65,536. Assignment probes
the ``probes`` nearest coarse cells, which recovers most of the accuracy a flat vocabulary has.

* :class:`~vbow.vocab.kmeans_vocabulary.KMeansVocabulary` clusters float descriptors (RootSIFT)
  with mini-batch k-means at the coarse level and k-means inside each cell, under the L2 distance.
* :class:`~vbow.vocab.hamming_vocabulary.HammingVocabulary` clusters packed binary descriptors
  (ORB) with k-majority: Hamming distance assignment and bitwise-majority centroids (never
  float k-means on bits).

Training is seeded (``random_state``) and deterministic. Words that no training descriptor is
assigned to are removed after training, so no word is empty.

The vocabulary also owns the IDF weights (:meth:`Vocabulary.fit_idf`), learned from training
images, so adding an image to an index never rewrites other entries (the DBoW design).
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Sequence

import numpy as np

from vbow.concurrency import run_split, usable_cores
from vbow.errors import InvalidInputError, NotFittedError
from vbow.progress import Progress
from vbow.vocab.embedding import HammingEmbedding
from vbow.vocab.sampling import DescriptorSampler

__all__ = ["Vocabulary", "split_at_cells"]

logger = logging.getLogger(__name__)


def split_at_cells(sorted_cells: np.ndarray, parts: int) -> list[slice]:
    """Cut a sorted run of cell ids into up to ``parts`` groups of about equal length, each cut
    on a boundary between two cells.

    Parameters
    ----------
    sorted_cells : np.ndarray
        ``(P,) int`` cell ids, ascending.
    parts : int
        Groups wanted (>= 1).

    Returns
    -------
    list of slice
        Non-empty, contiguous, in order, covering ``0..P``; no cell's run is cut, so there are
        fewer than ``parts`` groups when some runs are long (one group for a single cell).
    """
    n = int(sorted_cells.shape[0])
    if n == 0:
        return []
    parts = max(1, int(parts))
    targets = (np.arange(1, parts) * n) // parts
    cuts = np.searchsorted(sorted_cells, sorted_cells[targets], side="left")
    bounds = np.unique(np.concatenate(([0], cuts, [n])))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class Vocabulary:
    """Two-level vocabulary tree; see the module docstring. Use a concrete subclass.

    Parameters
    ----------
    n_words : int
        Target number of words (the tree has ``ceil(sqrt(n_words))`` branches per level). Fewer
        words are made when the training sample is too small to fill them
        (``min_points_per_word``).
    probes : int
        Coarse cells searched per descriptor at assignment (1 = plain tree descent).
    min_points_per_word : int
        A cell of ``m`` training descriptors is split into at most ``m // min_points_per_word``
        words.
    random_state : int
        Seed for every random choice in training.
    coarse_sample_per_cell : int
        The coarse level is clustered on at most this many sampled descriptors per coarse cell;
        the words inside each cell are then learned from every sampled descriptor in the cell.

    Attributes
    ----------
    coarse_ : np.ndarray
        ``(B1, d)`` coarse centroids.
    words_ : np.ndarray
        ``(n_words_, d)`` word centroids, grouped by coarse cell.
    cell_offsets_ : np.ndarray
        ``(B1 + 1,) int64``; the words of cell ``c`` are ``words_[cell_offsets_[c]:cell_offsets_[c+1]]``.
    idf_ : np.ndarray
        ``(n_words_,) float32`` inverse document frequencies (see :meth:`fit_idf`).
    """

    kind: str = ""
    dim: int = 0
    dtype: np.dtype = np.dtype(np.float32)
    #: the k nearest words of a cell are found by k argmin passes when k is at most this
    #: (faster than argpartition on small blocks); 0 keeps argpartition. Both give the same
    #: words unless distances tie exactly at the k-th place, so a vocabulary whose distances
    #: tie often (Hamming) keeps argpartition, as its small-batch path does.
    _argmin_top_k: int = 0
    #: most (descriptor, probed cell) pairs the small-batch path (``_assign_pairs_small``)
    #: takes; the base class has none
    small_pairs: int = 0
    #: a query-sized batch is split across threads (``quantise_multi``'s ``threads``) only
    #: from this many (descriptor, probed cell) pairs on; None never splits it
    parallel_min_pairs: int | None = None
    #: training descriptors the Hamming-embedding thresholds are learned from (a seeded subset)
    embedding_samples: int = 250_000

    def __init__(self, n_words: int = 65536, *, probes: int = 2, min_points_per_word: int = 4,
                 random_state: int = 0, coarse_sample_per_cell: int = 256) -> None:
        if int(n_words) < 2:
            raise InvalidInputError(f"n_words must be >= 2; got {n_words}")
        if int(probes) < 1:
            raise InvalidInputError(f"probes must be >= 1; got {probes}")
        if int(min_points_per_word) < 1:
            raise InvalidInputError(f"min_points_per_word must be >= 1; got {min_points_per_word}")
        self.n_words = int(n_words)
        self.probes = int(probes)
        self.min_points_per_word = int(min_points_per_word)
        self.random_state = int(random_state)
        self.coarse_sample_per_cell = int(coarse_sample_per_cell)

    # ----------------------------------------------------------------------------------- params
    def get_params(self) -> dict:
        """Constructor parameters (saved in manifests)."""
        return {"n_words": self.n_words, "probes": self.probes,
                "min_points_per_word": self.min_points_per_word,
                "random_state": self.random_state,
                "coarse_sample_per_cell": self.coarse_sample_per_cell}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "words_")

    @property
    def n_words_(self) -> int:
        """Number of words actually made by :meth:`fit`."""
        self._check_fitted()
        return int(self.words_.shape[0])

    def _check_fitted(self) -> None:
        if not hasattr(self, "words_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit() first")

    # ----------------------------------------------------------------------- metric (subclass)
    def _distances(self, x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """``(n, k)`` distances (float32 squared L2, or Hamming bits) from rows of x to centroids."""
        raise NotImplementedError

    def _cluster(self, x: np.ndarray, k: int, seed: int, coarse: bool) -> np.ndarray:
        """Cluster ``x`` into at most ``k`` centroids; returns ``(k', d)`` centroids."""
        raise NotImplementedError

    def _soft_scale(self, distances: np.ndarray) -> np.ndarray:
        """Map distances to the squared-L2-on-unit-vectors scale used for soft weights."""
        return distances.astype(np.float32)

    # ----------------------------------------------------------------------------- validation
    def check_descriptors(self, descriptors: np.ndarray, what: str = "descriptors") -> np.ndarray:
        """Validate a ``(n, dim)`` array of this vocabulary's descriptor dtype and return it."""
        if not isinstance(descriptors, np.ndarray):
            raise InvalidInputError(f"{what} must be a numpy array; got {type(descriptors).__name__}")
        if descriptors.ndim != 2 or descriptors.shape[1] != self.dim or descriptors.dtype != self.dtype:
            raise InvalidInputError(
                f"{what} must be (n, {self.dim}) {self.dtype}; got {descriptors.shape} "
                f"{descriptors.dtype}")
        return descriptors

    # ------------------------------------------------------------------------------- training
    def fit(self, descriptors: np.ndarray | Sequence[np.ndarray], *,
            max_samples: int = 1_000_000, progress: bool | None = None) -> "Vocabulary":
        """Learn the word tree from descriptors.

        Parameters
        ----------
        descriptors : np.ndarray or sequence of np.ndarray
            ``(n, dim)`` descriptors, or a sequence of per-image ``(n_i, dim)`` arrays. At most
            ``max_samples`` rows are used (a seeded uniform sample, see :class:`DescriptorSampler`).
        max_samples : int
            Cap on the training sample.
        progress : bool or None
            Show a bar over the coarse cells being clustered (None: see
            :func:`vbow.progress.progress_enabled`).

        Returns
        -------
        Vocabulary
            ``self``, fitted.
        """
        batches = [descriptors] if isinstance(descriptors, np.ndarray) else list(descriptors)
        sampler = DescriptorSampler(max_samples, self.random_state)
        for batch in batches:
            sampler.add(self.check_descriptors(batch))
        if sampler.seen == 0:
            raise InvalidInputError("cannot fit a vocabulary on zero descriptors")
        x = sampler.sample()
        rng = np.random.default_rng(self.random_state)
        branching = max(2, math.ceil(math.sqrt(self.n_words)))
        b1 = max(1, min(branching, x.shape[0] // max(1, self.min_points_per_word)))
        logger.info("training %s: %d descriptors, up to %d x %d words", type(self).__name__,
                    x.shape[0], b1, branching)
        coarse_seed = int(rng.integers(2**31))
        coarse_cap = self.coarse_sample_per_cell * b1
        coarse_x = x if x.shape[0] <= coarse_cap else \
            x[np.sort(rng.choice(x.shape[0], coarse_cap, replace=False))]
        coarse = self._cluster(coarse_x, b1, coarse_seed, True)
        labels = self._nearest(x, coarse)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=coarse.shape[0])
        bounds = np.concatenate(([0], np.cumsum(counts)))
        words, offsets = [], [0]
        seeds = rng.integers(2**31, size=coarse.shape[0])
        bar = Progress(coarse.shape[0], "vocabulary", progress)
        for c in range(coarse.shape[0]):
            members = x[order[bounds[c]:bounds[c + 1]]]
            k = min(branching, members.shape[0] // self.min_points_per_word)
            if members.shape[0] == 0:
                cell_words = members
            elif k <= 1:
                cell_words = coarse[c:c + 1]
            else:
                cell_words = self._cluster(members, k, int(seeds[c]), False)
            words.append(cell_words)
            offsets.append(offsets[-1] + cell_words.shape[0])
            bar.update()
        bar.close()
        self.coarse_ = np.ascontiguousarray(coarse)
        self.words_ = np.ascontiguousarray(np.concatenate(words, axis=0))
        self.cell_offsets_ = np.asarray(offsets, dtype=np.int64)
        self._prepare()
        labels = self._drop_empty_words(x)
        # Hamming embedding of the residuals, thresholds from this (catalog-side) sample
        self.embedding_ = HammingEmbedding(self.random_state).fit(
            self.words_, x, labels, max_samples=self.embedding_samples)
        self.idf_ = np.ones(self.n_words_, dtype=np.float32)
        self.n_training_images_ = 0
        logger.info("vocabulary has %d words in %d cells", self.n_words_, self.coarse_.shape[0])
        return self

    def _drop_empty_words(self, x: np.ndarray) -> np.ndarray:
        """Remove words no training descriptor falls in; returns ``(n,) int64`` the training
        descriptors' words after the removal (a removed word was nobody's nearest, so each
        descriptor keeps its word, renumbered)."""
        labels = self.quantise(x).astype(np.int64)
        used = np.bincount(labels, minlength=self.n_words_) > 0
        if used.all():
            return labels
        cell_of_word = np.repeat(np.arange(self.coarse_.shape[0]), np.diff(self.cell_offsets_))
        self.words_ = np.ascontiguousarray(self.words_[used])
        counts = np.bincount(cell_of_word[used], minlength=self.coarse_.shape[0])
        self.cell_offsets_ = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._prepare()
        logger.info("dropped %d empty words", int((~used).sum()))
        return (np.cumsum(used) - 1)[labels]

    # ------------------------------------------------------------------------ Hamming embedding
    @property
    def has_embedding(self) -> bool:
        """True when the vocabulary carries Hamming-embedding thresholds (fitted by :meth:`fit`;
        a vocabulary loaded from a bundle written before them has none)."""
        return getattr(self, "embedding_", None) is not None

    def _require_embedding(self) -> HammingEmbedding:
        if not self.has_embedding:
            raise NotFittedError("this vocabulary has no Hamming embedding (it was saved before "
                                 "vbow learned one); train a new vocabulary to use it")
        return self.embedding_

    def signatures(self, descriptors: np.ndarray, words: np.ndarray) -> np.ndarray:
        """``(n,) uint64`` Hamming-embedding signature of each descriptor for its word.

        ``descriptors`` is ``(n, dim)`` of this vocabulary's dtype, ``words`` ``(n,) int``
        (normally :meth:`quantise` of them); see :mod:`vbow.vocab.embedding`.
        """
        self.check_descriptors(descriptors)
        return self._require_embedding().signatures(self.words_, descriptors, words)

    def embedding_residuals(self, descriptors: np.ndarray, words: np.ndarray) -> np.ndarray:
        """``(n, k, 64) float32`` centred projected residuals of each descriptor to each of its
        ``(n, k)`` words (``-1``: zero rows), for query signatures
        (:func:`vbow.search.embedding.aggregate_query`)."""
        self.check_descriptors(descriptors)
        return self._require_embedding().residuals(self.words_, descriptors, words)

    def fit_idf(self, word_lists: Iterable[np.ndarray]) -> "Vocabulary":
        """Learn IDF weights ``log(N / n_w)`` from the words of ``N`` training images.

        Parameters
        ----------
        word_lists : iterable of np.ndarray
            One integer array of word ids per training image (any multiplicity).

        Returns
        -------
        Vocabulary
            ``self``; ``idf_`` is set. A word seen in no training image is treated as seen in
            half of one, so its IDF is ``log(2 N)``, the largest.
        """
        self._check_fitted()
        df = np.zeros(self.n_words_, dtype=np.int64)
        n_images = 0
        for words in word_lists:
            df[np.unique(np.asarray(words, dtype=np.int64))] += 1
            n_images += 1
        if n_images == 0:
            raise InvalidInputError("fit_idf needs at least one image")
        self.idf_ = np.log(n_images / np.maximum(df, 0.5)).astype(np.float32)
        np.maximum(self.idf_, 0.0, out=self.idf_)
        self.n_training_images_ = n_images
        return self

    # ----------------------------------------------------------------------------- assignment
    def _prepare(self) -> None:
        """Derived arrays for fast assignment (recomputed after fit or load)."""

    def _nearest(self, x: np.ndarray, centroids: np.ndarray, chunk: int = 16384) -> np.ndarray:
        out = np.empty(x.shape[0], dtype=np.int64)
        for s in range(0, x.shape[0], chunk):
            out[s:s + chunk] = np.argmin(self._distances(x[s:s + chunk], centroids), axis=1)
        return out

    def quantise(self, descriptors: np.ndarray) -> np.ndarray:
        """Assign each descriptor to its nearest word (approximately, by probing the tree).

        Parameters
        ----------
        descriptors : np.ndarray
            ``(n, dim)`` descriptors of this vocabulary's dtype.

        Returns
        -------
        np.ndarray
            ``(n,) int32`` word ids in ``0..n_words_-1``.
        """
        words, _ = self.quantise_multi(descriptors, 1)
        return words[:, 0]

    def quantise_multi(self, descriptors: np.ndarray, k: int = 3, *, sigma: float = 0.1,
                       chunk: int = 65536, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Multiple assignment: the ``k`` nearest words of each descriptor, with soft weights.

        Parameters
        ----------
        descriptors : np.ndarray
            ``(n, dim)`` descriptors of this vocabulary's dtype.
        k : int
            Words per descriptor.
        sigma : float
            Soft-assignment bandwidth: weight ``exp(-(d_j - d_1) / (2 sigma^2))`` where ``d`` is the
            squared L2 distance between unit descriptors (Hamming distances are mapped to the same
            scale as ``2 * bits / n_bits``).
        chunk : int
            Descriptors assigned per batch.
        threads : int
            Threads for a query-sized batch (at most ``small_pairs`` descriptor-cell pairs, at
            least :attr:`parallel_min_pairs`): its pairs are split between threads at cell
            boundaries, so every cell's distances come from the same products as on one thread
            and the words and weights are identical. Capped at the process's usable cores.

        Returns
        -------
        words : np.ndarray
            ``(n, k) int32`` word ids, nearest first; ``-1`` where fewer than ``k`` words were
            reachable.
        weights : np.ndarray
            ``(n, k) float32`` soft weights, 1 for the nearest word, 0 where ``words == -1``.
        """
        self._check_fitted()
        self.check_descriptors(descriptors)
        if int(k) < 1:
            raise InvalidInputError(f"k must be >= 1; got {k}")
        n = descriptors.shape[0]
        words = np.full((n, k), -1, dtype=np.int32)
        dists = np.full((n, k), np.inf, dtype=np.float32)
        threads = max(1, min(int(threads), usable_cores()))
        for s in range(0, n, chunk):
            w, d = self._assign_chunk(descriptors[s:s + chunk], int(k), threads)
            words[s:s + chunk], dists[s:s + chunk] = w, d
        weights = np.zeros((n, k), dtype=np.float32)
        valid = words >= 0
        if n:
            scaled = self._soft_scale(np.where(valid, dists, 0))
            rel = scaled - scaled[:, :1]
            weights = np.where(valid, np.exp(-rel / (2.0 * sigma * sigma)), 0).astype(np.float32)
        return words, weights

    def _assign_chunk(self, x: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        n_cells = self.coarse_.shape[0]
        p = min(self.probes, n_cells)
        if p < n_cells:
            cells = np.empty((n, p), dtype=np.int64)
            # rows in blocks whose coarse distances fit a core's cache (the passes below
            # would otherwise stream a (n, n_cells) array through main memory several times)
            step = max(1, self._coarse_block_floats // n_cells)
            for s in range(0, n, step):
                cells[s:s + step] = self._probed_cells(x[s:s + step], p)
        else:
            cells = np.broadcast_to(np.arange(n_cells), (n, n_cells))
        pair_desc = np.repeat(np.arange(n), p)
        pair_cell = cells.reshape(-1)
        small = self._assign_pairs_split(x, pair_desc, pair_cell, k, threads)
        if small is not None:
            cand_w, cand_d = small
            return self._best_of_probes(cand_w.reshape(n, p * k), cand_d.reshape(n, p * k), k)
        order = np.argsort(pair_cell, kind="stable")
        sorted_cells = pair_cell[order]
        bounds = np.flatnonzero(np.diff(sorted_cells)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [order.size]))
        cand_w = np.full((n * p, k), -1, dtype=np.int32)
        cand_d = np.full((n * p, k), np.inf, dtype=np.float32)
        for s, e in zip(starts.tolist(), ends.tolist()):
            c = int(sorted_cells[s])
            w0, w1 = int(self.cell_offsets_[c]), int(self.cell_offsets_[c + 1])
            if w1 == w0:
                continue
            rows = order[s:e]
            d = self._cell_distances(x[pair_desc[rows]], c)
            kk = min(k, w1 - w0)
            if kk == 1 or (kk < w1 - w0 and kk <= self._argmin_top_k):
                # a few argmin passes beat argpartition on these small blocks
                top = np.empty((rows.size, kk), np.int64)
                top_d = np.empty((rows.size, kk), np.float32)
                r = np.arange(rows.size)
                for j in range(kk):
                    top[:, j] = np.argmin(d, axis=1)
                    top_d[:, j] = d[r, top[:, j]]
                    if j + 1 < kk:
                        d[r, top[:, j]] = np.inf
            else:  # sorted ids: among equal distances the lowest word id wins, as with argmin
                top = np.broadcast_to(np.arange(w1 - w0), (rows.size, w1 - w0)) if kk == w1 - w0 \
                    else np.sort(np.argpartition(d, kk - 1, axis=1)[:, :kk], axis=1)
                top_d = np.take_along_axis(d, top, axis=1)
            cand_w[rows, :kk] = top + w0
            cand_d[rows, :kk] = top_d
        return self._best_of_probes(cand_w.reshape(n, p * k), cand_d.reshape(n, p * k), k)

    #: coarse distances are computed for blocks of rows of at most this many distances (1 MiB of
    #: float32). Quantising 65,051 catalog descriptors (sift, 65,536 words) took 0.87 of the
    #: time of one (65,051 x 256) block, with the same words (one-off, Intel Xeon)
    _coarse_block_floats = 1 << 18

    def _probed_cells(self, x: np.ndarray, p: int) -> np.ndarray:
        """``(n, p) int64`` the ``p`` nearest coarse cells of each row of ``x`` (``p`` below the
        number of cells): up to 4 by argmin passes, nearest first, the lowest cell id winning
        among equal distances; beyond 4 by ``argpartition``, in no particular order."""
        coarse_d = self._distances(x, self.coarse_)
        if p > 4:
            return np.argpartition(coarse_d, p - 1, axis=1)[:, :p]
        # a few argmin passes are much faster than argpartition over every coarse cell
        cells = np.empty((x.shape[0], p), dtype=np.int64)
        rows = np.arange(x.shape[0])
        for j in range(p):
            cells[:, j] = np.argmin(coarse_d, axis=1)
            coarse_d[rows, cells[:, j]] = np.inf
        return cells

    @staticmethod
    def _best_of_probes(cand_w: np.ndarray, cand_d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest of each row's candidates (probe order breaks ties)."""
        best = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cand_w, best, axis=1), np.take_along_axis(cand_d, best, axis=1)

    def _assign_pairs_split(self, x: np.ndarray, pair_desc: np.ndarray, pair_cell: np.ndarray,
                            k: int, threads: int) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`_assign_pairs_small`, with the pairs split across up to ``threads`` threads
        of the shared pool when there are at least :attr:`parallel_min_pairs` of them.

        The split falls on cell boundaries (:func:`split_at_cells`): each cell's words are
        compared with the same pairs, in the same products, as on one thread. The calling
        thread takes the first group.
        """
        n = pair_cell.size
        least = self.parallel_min_pairs
        if threads <= 1 or least is None or n < least or n > self.small_pairs:
            return self._assign_pairs_small(x, pair_desc, pair_cell, k)
        order = np.argsort(pair_cell, kind="stable")
        groups = [order[g] for g in split_at_cells(pair_cell[order], threads)]
        if len(groups) < 2:
            return self._assign_pairs_small(x, pair_desc, pair_cell, k)
        # every group is smaller than the whole, which the small-batch path takes
        parts = run_split(lambda g: self._assign_pairs_small(x, pair_desc[g], pair_cell[g], k),
                          groups)
        cand_w = np.empty((n, k), np.int32)
        cand_d = np.empty((n, k), np.float32)
        for g, (w, d) in zip(groups, parts):
            cand_w[g], cand_d[g] = w, d
        return cand_w, cand_d

    def _assign_pairs_small(self, x: np.ndarray, pair_desc: np.ndarray, pair_cell: np.ndarray,
                            k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Optional fast path for few (descriptor, cell) pairs; None uses the per-cell loop.

        Returns ``(P, k) int32`` words and ``(P, k) float32`` distances per pair, with the same
        tie-breaking as the loop (lowest word id among equal distances, nearest first).
        """
        return None

    def _cell_distances(self, x: np.ndarray, cell: int) -> np.ndarray:
        w0, w1 = int(self.cell_offsets_[cell]), int(self.cell_offsets_[cell + 1])
        return self._distances(x, self.words_[w0:w1])

    def same_as(self, other: "Vocabulary") -> bool:
        """True when ``other`` is the same kind of vocabulary with equal learned arrays (words,
        IDF and Hamming-embedding state alike), so that their word ids and weights agree."""
        mine, theirs = self.to_arrays(), other.to_arrays()
        return type(self) is type(other) and mine.keys() == theirs.keys() and all(
            np.array_equal(mine[k], theirs[k]) for k in mine)

    # ---------------------------------------------------------------------------- persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The learned state as plain arrays (for bundles)."""
        self._check_fitted()
        out = {"coarse": self.coarse_, "words": self.words_, "cell_offsets": self.cell_offsets_,
               "idf": self.idf_}
        if self.has_embedding:
            out.update({f"he_{k}": v for k, v in self.embedding_.to_arrays().items()})
        return out

    def state_params(self) -> dict:
        """Learned scalars that belong in a manifest."""
        return {"kind": self.kind, "n_training_images": int(getattr(self, "n_training_images_", 0))}

    @classmethod
    def from_arrays(cls, params: dict, state: dict, arrays: dict[str, np.ndarray]) -> "Vocabulary":
        """Rebuild a fitted vocabulary from :meth:`get_params`, :meth:`state_params` and arrays."""
        vocab = cls(**params)
        vocab.coarse_ = np.asarray(arrays["coarse"])  # plain views: np.memmap slicing is slow
        vocab.words_ = np.asarray(arrays["words"])
        vocab.cell_offsets_ = np.asarray(arrays["cell_offsets"], dtype=np.int64)
        vocab.idf_ = arrays["idf"]
        vocab.n_training_images_ = int(state.get("n_training_images", 0))
        vocab.embedding_ = None
        if "he_projection" in arrays and "he_thresholds" in arrays:
            vocab.embedding_ = HammingEmbedding.from_arrays(
                {"projection": arrays["he_projection"], "thresholds": arrays["he_thresholds"]},
                vocab.random_state)
            if vocab.embedding_.thresholds_.shape[0] != np.shape(arrays["words"])[0]:
                raise InvalidInputError("Hamming-embedding thresholds do not match the words")
        if vocab.coarse_.ndim != 2 or vocab.coarse_.shape[1] != cls.dim or \
                vocab.words_.shape[1:] != (cls.dim,) or \
                vocab.cell_offsets_.shape != (vocab.coarse_.shape[0] + 1,) or \
                int(vocab.cell_offsets_[-1]) != vocab.words_.shape[0] or \
                vocab.idf_.shape != (vocab.words_.shape[0],):
            raise InvalidInputError("vocabulary arrays are inconsistent with each other")
        vocab._prepare()
        return vocab
