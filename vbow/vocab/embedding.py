"""Hamming embedding: a short binary signature of each local feature's residual to its word.

A visual word only says that two descriptors fall in the same Voronoi cell. Hamming embedding
(Jégou, Douze & Schmid 2008) adds where in the cell: the residual ``x - c_w`` of a descriptor to
its word's centroid is projected by a fixed random orthogonal ``(B, d)`` matrix ``P`` and each
of the ``B`` components is compared with a threshold learned *per word* on catalog-side
descriptors (the median of that component over the training descriptors of the word), giving a
``B``-bit signature (``B = 64`` here, one ``uint64``). Two features of one word are a likely
match when their signatures differ in few bits.

The same construction serves binary descriptors (ORB): the packed bits are unpacked to ``±1``
vectors, the word's binary centroid likewise, and the residual of the two is projected and
thresholded as above, so a signature summarises which of the descriptor's 256 bits disagree
with the word's majority, and where.

This module only makes the per-feature values; :mod:`vbow.search.embedding` holds the kernel
that turns Hamming distances into score weights, and :class:`vbow.search.inverted_index.InvertedIndex`
aggregates and stores one signature per posting (ASMK*, Tolias et al. 2013).
"""

from __future__ import annotations

import logging

import numpy as np

from vbow.errors import InvalidInputError, NotFittedError
from vbow.search.embedding import N_BITS, pack_signs

__all__ = ["HammingEmbedding", "pack_signs", "N_BITS"]

logger = logging.getLogger(__name__)

def _as_vectors(descriptors: np.ndarray) -> np.ndarray:
    """Float32 vectors: float descriptors as they are, packed bits as ``±1`` per bit."""
    if descriptors.dtype == np.uint8:
        bits = np.unpackbits(descriptors, axis=1).astype(np.float32)
        bits *= 2.0
        bits -= 1.0
        return bits
    return np.asarray(descriptors, dtype=np.float32)


class HammingEmbedding:
    """Per-feature binary signatures of residuals to visual words.

    Parameters
    ----------
    random_state : int
        Seed of the random orthogonal projection.

    Attributes
    ----------
    projection_ : np.ndarray
        ``(64, d) float32`` rows of a random orthogonal matrix (``d`` = 128 for SIFT, 256 for
        unpacked ORB bits).
    thresholds_ : np.ndarray
        ``(n_words, 64) float16`` per-word medians of the projected residuals of the training
        descriptors (0 for a word no training descriptor fell in), rounded to float16 (8 MB for
        65,536 words), so that a saved and reloaded embedding gives the same signatures.
    """

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = int(random_state)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "thresholds_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("this HammingEmbedding is not fitted; call fit() first")

    # ---------------------------------------------------------------------------------- fitting
    def fit(self, centroids: np.ndarray, descriptors: np.ndarray, words: np.ndarray, *,
            max_samples: int = 2_000_000) -> "HammingEmbedding":
        """Draw the projection and learn the per-word thresholds.

        Parameters
        ----------
        centroids : np.ndarray
            ``(n_words, d) float32`` or ``(n_words, b) uint8`` word centroids
            (:attr:`vbow.vocab.vocabulary.Vocabulary.words_`).
        descriptors : np.ndarray
            ``(n, d)`` catalog-side training descriptors of the centroids' dtype.
        words : np.ndarray
            ``(n,) int`` word of each descriptor (hard assignment).
        max_samples : int
            At most this many descriptors are used (a seeded uniform subset).

        Returns
        -------
        HammingEmbedding
            ``self``, fitted.
        """
        words = np.asarray(words, dtype=np.int64).reshape(-1)
        if descriptors.shape[0] != words.shape[0]:
            raise InvalidInputError(f"got {descriptors.shape[0]} descriptors but {words.shape[0]} words")
        if descriptors.dtype != centroids.dtype or descriptors.shape[1:] != centroids.shape[1:]:
            raise InvalidInputError(
                f"descriptors {descriptors.shape[1:]} {descriptors.dtype} do not match the "
                f"centroids {centroids.shape[1:]} {centroids.dtype}")
        n_words = int(centroids.shape[0])
        if words.size and (int(words.min()) < 0 or int(words.max()) >= n_words):
            raise InvalidInputError(f"word ids must be in 0..{n_words - 1}")
        rng = np.random.default_rng(self.random_state)
        dim = _as_vectors(centroids[:1]).shape[1]
        if dim < N_BITS:
            raise InvalidInputError(f"descriptors need at least {N_BITS} dimensions; got {dim}")
        q, _ = np.linalg.qr(rng.standard_normal((dim, N_BITS)))
        self.projection_ = np.ascontiguousarray(q.T, dtype=np.float32)
        thresholds = np.zeros((n_words, N_BITS), dtype=np.float32)
        if words.size > max_samples:
            keep = np.sort(rng.choice(words.size, max_samples, replace=False))
            descriptors, words = descriptors[keep], words[keep]
        if words.size:
            z = self._project(centroids, descriptors, words)
            order = np.argsort(words, kind="stable")
            w_sorted = words[order]
            starts = np.flatnonzero(np.r_[True, w_sorted[1:] != w_sorted[:-1]])
            counts = np.diff(np.r_[starts, w_sorted.size])
            z = z[order]
            # per-word medians, batched by group size (no Python loop per word)
            for size in np.unique(counts).tolist():
                which = np.flatnonzero(counts == size)
                rows = starts[which][:, None] + np.arange(size)[None, :]
                thresholds[w_sorted[starts[which]]] = np.median(z[rows], axis=1)
        self.thresholds_ = thresholds.astype(np.float16)
        logger.info("Hamming embedding: thresholds of %d words from %d descriptors",
                    int(np.unique(words).size), int(words.size))
        return self

    # ------------------------------------------------------------------------------ projecting
    def _project(self, centroids: np.ndarray, descriptors: np.ndarray, words: np.ndarray,
                 chunk: int = 65536) -> np.ndarray:
        """``(n, 64) float32`` projected residuals ``P (x - c_w)`` (not centred)."""
        out = np.empty((words.shape[0], N_BITS), dtype=np.float32)
        for s in range(0, words.shape[0], chunk):
            x = _as_vectors(descriptors[s:s + chunk]) - _as_vectors(centroids[words[s:s + chunk]])
            np.dot(x, self.projection_.T, out=out[s:s + chunk])
        return out

    def residuals(self, centroids: np.ndarray, descriptors: np.ndarray,
                  words: np.ndarray) -> np.ndarray:
        """Centred projected residuals ``P (x - c_w) - t_w``, whose signs are the signature.

        Parameters
        ----------
        centroids : np.ndarray
            The word centroids the embedding was fitted with.
        descriptors : np.ndarray
            ``(n, d)`` descriptors.
        words : np.ndarray
            ``(n,)`` or ``(n, k) int`` words of each descriptor (``k`` > 1 with multiple
            assignment; ``-1`` entries give zero rows).

        Returns
        -------
        np.ndarray
            ``(n, 64)`` or ``(n, k, 64) float32``.
        """
        self._check_fitted()
        w = np.asarray(words, dtype=np.int64)
        multi = w.ndim == 2
        w2 = w if multi else w[:, None]
        if w2.shape[0] != descriptors.shape[0]:
            raise InvalidInputError(f"got {descriptors.shape[0]} descriptors but {w2.shape[0]} word rows")
        if w2.size and int(w2.max()) >= self.thresholds_.shape[0]:
            raise InvalidInputError(f"word ids must be below {self.thresholds_.shape[0]}")
        k = w2.shape[1]
        flat = w2.reshape(-1)
        valid = flat >= 0
        rows = np.repeat(np.arange(w2.shape[0]), k)[valid]
        out = np.zeros((flat.size, N_BITS), dtype=np.float32)
        if rows.size:
            z = self._project(centroids, descriptors[rows], flat[valid])
            z -= self.thresholds_[flat[valid]]
            out[valid] = z
        return out.reshape(w2.shape[0], k, N_BITS) if multi else out

    def signatures(self, centroids: np.ndarray, descriptors: np.ndarray,
                   words: np.ndarray) -> np.ndarray:
        """``(n,) uint64`` signature of each descriptor for its (hard) word ``(n,) int``."""
        return pack_signs(self.residuals(centroids, descriptors, np.asarray(words).reshape(-1)))

    # ----------------------------------------------------------------------------- persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The learned state as plain arrays (for bundles)."""
        self._check_fitted()
        return {"projection": self.projection_, "thresholds": self.thresholds_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], random_state: int = 0) -> "HammingEmbedding":
        """Rebuild from :meth:`to_arrays` output (arrays may be memory-mapped)."""
        he = cls(random_state)
        he.projection_ = np.asarray(arrays["projection"], dtype=np.float32)
        he.thresholds_ = np.asarray(arrays["thresholds"])
        if he.projection_.ndim != 2 or he.projection_.shape[0] != N_BITS or \
                he.thresholds_.ndim != 2 or he.thresholds_.shape[1] != N_BITS:
            raise InvalidInputError("Hamming embedding arrays are inconsistent with each other")
        if he.thresholds_.dtype != np.float16:
            he.thresholds_ = he.thresholds_.astype(np.float16)
        return he
