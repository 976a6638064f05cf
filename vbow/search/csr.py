"""Small vectorised helpers for CSR-style (offsets + flat values) arrays."""

from __future__ import annotations

import numpy as np

__all__ = ["gather_ranges", "offsets_from_counts", "group_by_key"]


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """``(n + 1,) int64`` offsets from ``(n,)`` run lengths."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + l)`` for every (start, length) pair, without a Python loop.

    Parameters
    ----------
    starts, lengths : np.ndarray
        ``(m,)`` integer arrays.

    Returns
    -------
    np.ndarray
        ``(lengths.sum(),) int64`` flat positions.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.asarray(starts, dtype=np.int64) - (np.cumsum(lengths) - lengths)
    return np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)


def group_by_key(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order that groups rows by key, and the ``(n_keys + 1,)`` offsets of each group."""
    order = np.argsort(keys, kind="stable")
    return order, offsets_from_counts(np.bincount(keys, minlength=n_keys))
