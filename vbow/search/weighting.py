"""Term weighting for bags of visual words: burstiness, TF-IDF and normalisation.

A bag of words is kept sparse as ``(words, tf)``: the distinct word ids of an image and their
(possibly soft) term frequencies. The vector used for scoring is

    v_w = burst(tf_w) * idf_w,   then L2-normalised,

so the score between two images is the cosine of their vectors. ``burst`` tames repeated words
("burstiness", Jégou et al. 2009): with ``"sqrt"`` a word seen 9 times counts 3, not 9.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vbow.errors import UnknownOptionError

__all__ = ["BURSTINESS", "burst", "bag_of_words", "tfidf"]

Burstiness = Literal["sqrt", "log", "none"]
BURSTINESS: tuple[str, ...] = ("sqrt", "log", "none")


def burst(tf: np.ndarray, mode: str) -> np.ndarray:
    """Apply the burstiness function ``mode`` to term frequencies (float32 result)."""
    tf = np.asarray(tf, dtype=np.float32)
    if mode == "sqrt":
        return np.sqrt(tf)
    if mode == "log":
        return np.log1p(tf)
    if mode == "none":
        return tf
    raise UnknownOptionError("burstiness", mode, BURSTINESS)


def bag_of_words(words: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of word ids.

    Parameters
    ----------
    words : np.ndarray
        ``(n,)`` or ``(n, k)`` integer word ids; negative ids (no word) are ignored.
    weights : np.ndarray, optional
        Same shape as ``words``: a soft weight per assignment (default 1).

    Returns
    -------
    unique_words : np.ndarray
        ``(m,) int32`` distinct word ids, ascending.
    tf : np.ndarray
        ``(m,) float32`` summed weights (counts when unweighted).
    """
    words = np.asarray(words).reshape(-1)
    w = np.ones(words.shape, np.float32) if weights is None else np.asarray(weights, np.float32).reshape(-1)
    keep = words >= 0
    words, w = words[keep], w[keep]
    if words.size == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    uniq, inverse = np.unique(words, return_inverse=True)
    tf = np.bincount(inverse, weights=w).astype(np.float32)
    return uniq.astype(np.int32), tf


def tfidf(words: np.ndarray, tf: np.ndarray, idf: np.ndarray, burstiness: str = "sqrt") -> np.ndarray:
    """L2-normalised TF-IDF weights of a sparse bag of words.

    Parameters
    ----------
    words : np.ndarray
        ``(m,) int`` distinct word ids.
    tf : np.ndarray
        ``(m,) float32`` term frequencies.
    idf : np.ndarray
        ``(n_words,) float32``.
    burstiness : {"sqrt", "log", "none"}
        See :func:`burst`.

    Returns
    -------
    np.ndarray
        ``(m,) float32`` weights with unit L2 norm (all zeros for an empty or all-zero bag).
    """
    v = burst(tf, burstiness) * idf[words]
    norm = float(np.sqrt(np.dot(v, v)))
    return (v / norm).astype(np.float32) if norm > 0 else np.zeros_like(v, dtype=np.float32)
