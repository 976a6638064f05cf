"""Plane geometry of a verified match: outlines, hull areas, covered fractions, IoU.

All points are ``float`` pixel coordinates ``(x, y)``; a transform is the ``(3, 3)`` map of
:attr:`vbow.Match.transform` (catalog pixels to photo pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["outline", "hull_area", "polygon_area", "clipped_area", "polygon_iou", "inside",
           "scale_distortion", "MAX_SCALE_DISTORTION"]

#: Largest :func:`scale_distortion` of a plausible view of a flat product: 16 is a far edge
#: 2.5 times as far from the camera as the near one. Chosen from one measurement on synthetic
#: shelves (not a benchmark): true detections 1.0-1.3, a false fit onto a look-alike part 41.
MAX_SCALE_DISTORTION = 16.0


def _corners(size: tuple[float, float]) -> np.ndarray:
    """``(4, 3) float64`` homogeneous corners of a ``(width, height)`` image, clockwise from
    the top left."""
    w, h = float(size[0]), float(size[1])
    return np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64)


def outline(transform: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """The catalog image's border mapped into the photo.

    Parameters
    ----------
    transform : numpy.ndarray
        ``(3, 3)`` float homography, catalog pixels to photo pixels.
    size : tuple of float
        ``(width, height)`` of the catalog image.

    Returns
    -------
    numpy.ndarray
        ``(4, 2) float64`` corners (top-left, top-right, bottom-right, bottom-left) in the
        photo; ``nan`` where a corner maps to infinity.
    """
    p = _corners(size) @ np.asarray(transform, np.float64).T
    z = p[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(z) > 1e-12, p[:, :2] / z, np.nan)
    return out


def scale_distortion(transform: np.ndarray, size: tuple[float, float],
                     points: np.ndarray | None = None) -> float:
    """How unevenly a homography scales the catalog image: the largest over the smallest
    local area scale at its four corners, or at ``points`` (1 for an affine map, ``inf`` when
    degenerate).

    Parameters
    ----------
    transform : numpy.ndarray
        ``(3, 3)`` float homography, catalog pixels to photo pixels.
    size : tuple of float
        ``(width, height)`` of the catalog image.
    points : numpy.ndarray, optional
        ``(n, 2)`` float catalog pixels to measure at instead of the corners, e.g. the
        inliers: the part of the image that the fit explains. A fit to an object that fills
        a small part of a wide view is extrapolated at the image's corners, and can look
        distorted there while being a plain perspective view where the object is.

    Returns
    -------
    float
        ``>= 1``; the local area scale of a homography ``H`` at ``p`` is
        ``|det H| / (h3 · p)^3``.
    """
    t = np.asarray(transform, np.float64)
    if not np.all(np.isfinite(t)) or t[2, 2] == 0:
        return float("inf")
    t = t / t[2, 2]
    if points is None:
        at = _corners(size)
    else:
        xy = np.asarray(points, np.float64).reshape(-1, 2)
        if len(xy) == 0:
            return float("inf")
        at = np.c_[xy, np.ones(len(xy))]
    depth = at @ t[2]
    local = np.abs(np.linalg.det(t) / depth ** 3)
    if not np.all(np.isfinite(local)) or local.min() <= 0 or np.any(depth <= 0):
        return float("inf")
    return float(local.max() / local.min())


def polygon_area(poly: np.ndarray) -> float:
    """Absolute shoelace area of a simple polygon ``(n, 2)``; 0 for fewer than 3 or nan points."""
    p = np.asarray(poly, np.float64)
    if p.shape[0] < 3 or not np.all(np.isfinite(p)):
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of ``(n, 2)`` points (0 for fewer than 3)."""
    p = np.asarray(points, np.float32).reshape(-1, 2)
    if p.shape[0] < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(p)))


def _convex_intersection(a: np.ndarray, b: np.ndarray) -> float:
    pa = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 1, 2))
    pb = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 1, 2))
    area, _ = cv2.intersectConvexConvex(pa, pb)
    return max(float(area), 0.0)


def clipped_area(poly: np.ndarray, width: float, height: float) -> float:
    """Area of the convex hull of ``poly`` inside the frame ``[0, width] x [0, height]``."""
    p = np.asarray(poly, np.float64)
    if p.shape[0] < 3 or not np.all(np.isfinite(p)):
        return 0.0
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    return _convex_intersection(p, frame)


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the convex hulls of two polygons, in ``[0, 1]``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return 0.0
    area_a, area_b = hull_area(a), hull_area(b)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter = _convex_intersection(a, b)
    return float(inter / max(area_a + area_b - inter, 1e-12))


def inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """``(n,) bool``: which of ``(n, 2)`` points lie inside (or on) the convex hull of ``poly``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    p = np.asarray(poly, np.float64)
    if pts.shape[0] == 0 or p.shape[0] < 3 or not np.all(np.isfinite(p)):
        return np.zeros(pts.shape[0], bool)
    hull = cv2.convexHull(p.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    nxt = np.roll(hull, -1, axis=0)
    edge = nxt - hull                                         # (k, 2)
    rel = pts[:, None, :] - hull[None, :, :]                  # (n, k, 2)
    cross = edge[None, :, 0] * rel[..., 1] - edge[None, :, 1] * rel[..., 0]
    signed = float(np.sum(hull[:, 0] * nxt[:, 1] - nxt[:, 0] * hull[:, 1]))
    orientation = 1.0 if signed >= 0 else -1.0               # inside = same side of every edge
    return np.all(cross * orientation >= -1e-9, axis=1)
