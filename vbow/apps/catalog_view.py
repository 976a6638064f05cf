"""Read-only facts about the catalog images of an index that the applications need.

The applications (decision, detect, duplicates) need each catalog image's size in original
pixels, to draw its outline in a photo and to measure how much of it a match explains, and its
stored keypoints, to find the part of it that a match leaves unexplained. ``ImageIndex`` has no
public accessor for these yet, so this module is the one place that reads them; when the index
grows public accessors (``image_size(key)``, ``stored_keypoints(key)``), only this module changes.
"""

from __future__ import annotations

import numpy as np

from vbow.errors import InvalidInputError
from vbow.index import ImageIndex

__all__ = ["catalog_size", "catalog_keypoints"]


def _doc(index: ImageIndex, key: str) -> int:
    if not isinstance(key, str):
        raise InvalidInputError(f"key must be a str, got {type(key).__name__}")
    try:
        return int(index._key_map()[key])
    except KeyError:
        raise InvalidInputError(f"key {key!r} is not in the index ({len(index)} images)") from None


def _per_image(index: ImageIndex) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` processed sizes and ``(n,)`` scales, wherever this version keeps them."""
    catalog = getattr(index, "_catalog", None)
    if catalog is not None:
        return catalog.size, catalog.scale
    return index._size, index._scale


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
    public = getattr(index, "image_size", None)
    if callable(public):
        w, h = public(key)
        return float(w), float(h)
    doc = _doc(index, key)
    sizes, scales = _per_image(index)
    w, h = (float(v) for v in np.asarray(sizes[doc]))
    s = float(scales[doc])
    return w * s, h * s


def catalog_keypoints(index: ImageIndex, key: str) -> np.ndarray:
    """Stored keypoint positions of the catalog image ``key``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2) float32`` x, y in original pixels.
    """
    public = getattr(index, "stored_keypoints", None)
    if callable(public):
        return np.asarray(public(key), np.float32)[:, :2]
    doc = _doc(index, key)
    _, kp = index._store.get(doc)
    _, scales = _per_image(index)
    return (np.asarray(kp[:, :2], np.float32) * np.float32(scales[doc])).astype(np.float32)
