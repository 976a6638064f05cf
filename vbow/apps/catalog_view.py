"""Read-only facts about the catalog images of an index that the applications need.

The applications (decision, detect, duplicates) need each catalog image's size in original
pixels, to draw its outline in a photo and to measure how much of it a match explains, and its
stored keypoints, to find the part of it that a match leaves unexplained. They read them through
the index's public read seam, :meth:`vbow.ImageIndex.reading`, under its read lock.
"""

from __future__ import annotations

import numpy as np

from vbow.errors import InvalidInputError
from vbow.index import ImageIndex
from vbow.query import SearchState

__all__ = ["catalog_size", "catalog_keypoints"]


def _slot(state: SearchState, key: str) -> int:
    if not isinstance(key, str):
        raise InvalidInputError(f"key must be a str, got {type(key).__name__}")
    try:
        return int(state.catalog.key_map(state.postings.alive)[key])
    except KeyError:
        n = int(np.count_nonzero(state.postings.alive))
        raise InvalidInputError(f"key {key!r} is not in the index ({n} images)") from None


def catalog_size(index: ImageIndex, key: str) -> tuple[float, float]:
    """``(width, height)`` of the catalog image ``key`` in original pixels.

    Parameters
    ----------
    index : ImageIndex
        A built index.
    key : str
        A key of ``index``.

    Returns
    -------
    tuple of float
        Width and height, the pixels ``Match.transform`` and ``Match.inlier_points`` use.
    """
    with index.reading() as plan:
        catalog = plan.state.catalog
        slot = _slot(plan.state, key)
        w, h = (float(v) for v in np.asarray(catalog.size[slot]))
        s = float(catalog.scale[slot])
    return w * s, h * s


def catalog_keypoints(index: ImageIndex, key: str) -> np.ndarray:
    """Stored keypoint positions of the catalog image ``key``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2) float32`` x, y in original pixels.
    """
    with index.reading() as plan:
        slot = _slot(plan.state, key)
        _, kp = plan.state.store.get(slot)
        scale = np.float32(plan.state.catalog.scale[slot])
    return (np.asarray(kp[:, :2], np.float32) * scale).astype(np.float32)
