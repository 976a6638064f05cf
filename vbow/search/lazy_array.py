"""Deferred arrays: a shape, a dtype and a function that fills an output buffer.

The index's data structures describe large arrays assembled from parts (postings segments,
keypoint blocks) as :class:`LazyArray` objects, so a writer (e.g. :func:`vbow.persist.bundle.save_bundle`)
can fill a memory-mapped output file part by part and the whole array never exists in memory.
numpy only.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["LazyArray"]

class LazyArray:
    """An array :func:`save_bundle` writes by letting ``fill`` write into the memory-mapped
    output file, so a large array assembled from parts never exists whole in memory.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array.
    dtype : np.dtype
        Its dtype (stored little-endian).
    fill : callable
        ``fill(out)`` writes every element of ``out``, a writable ``shape``/``dtype`` array.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype,
                 fill: Callable[[np.ndarray], Any]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.fill = fill

    def materialize(self) -> np.ndarray:
        """The whole array in memory."""
        out = np.empty(self.shape, self.dtype)
        self.fill(out)
        return out

    @classmethod
    def concatenate(cls, parts: Sequence[np.ndarray]) -> "LazyArray":
        """The concatenation of ``parts`` along axis 0, written part by part."""
        parts = list(parts)
        shape = (sum(p.shape[0] for p in parts),) + tuple(parts[0].shape[1:])

        def fill(out: np.ndarray) -> None:
            at = 0
            for p in parts:
                out[at:at + p.shape[0]] = p
                at += p.shape[0]
        return cls(shape, parts[0].dtype, fill)
