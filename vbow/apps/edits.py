"""What kind of copy one image is of another, from the transform and the aligned pixels.

Given a verified match (a transform from catalog image ``b`` to image ``a``) and both images,
:func:`classify_pair` tells apart:

* geometry: ``same_product`` (a perspective or rotated view: a different photo), ``crop``
  (``a`` shows a window of ``b``), ``resize`` (all of ``b``, scaled), ``padding`` (all of ``b``,
  shrunk onto a larger canvas); ``mirror`` is told by the caller (found with a flipped query);
* pixels, when the geometry is the identity: ``exact`` (no pixel differs), ``recompress``
  (small differences everywhere), ``colour_shift`` (a global colour map explains the
  differences), ``watermark`` (sparse strokes over much of the image), ``text`` (an opaque band
  across the image), and ``counterfeit`` (a compact block of the print differs).

For every same-photo copy the region of ``b`` that ``a`` does not reproduce (after alignment and
the best global colour map) is returned, so a reviewer can look at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from vbow.apps.geometry import outline

__all__ = ["PAIR_KINDS", "PairKind", "classify_pair", "contains_at_unit_scale"]

#: Every kind :func:`classify_pair` returns.
PAIR_KINDS: Final[tuple[str, ...]] = ("exact", "crop", "resize", "recompress", "watermark", "text",
                                      "colour_shift", "mirror", "padding", "counterfeit",
                                      "same_product")

_MAX_SIDE: Final[int] = 400      # images are compared at most this large
_BIG: Final[float] = 40.0        # a pixel differs when some channel is off by more than this


@dataclass(frozen=True)
class PairKind:
    """The kind of copy, and the region of the catalog image it leaves unexplained.

    Attributes
    ----------
    kind : str
        One of :data:`PAIR_KINDS`.
    unexplained : tuple of int or None
        ``(x0, y0, x1, y1)`` in the catalog image's pixels: the bounding box of the largest
        compact region that differs, or None.
    unexplained_fraction : float
        Its area over the catalog image's area (0 when None).
    """

    kind: str
    unexplained: tuple[int, int, int, int] | None
    unexplained_fraction: float


def _similarity_parts(t: np.ndarray) -> tuple[float, float, float, float]:
    """Scale x, scale y, rotation (degrees) and perspective of a ``(3, 3)`` transform."""
    t = np.asarray(t, np.float64) / t[2, 2]
    a = t[:2, :2]
    sx, sy = float(np.hypot(a[0, 0], a[1, 0])), float(np.hypot(a[0, 1], a[1, 1]))
    rot = float(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    return sx, sy, rot, float(np.abs(t[2, :2]).max())


def _colour_fit(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``src`` mapped by the least-squares affine colour map onto ``dst`` (float32)."""
    def terms(c: np.ndarray) -> np.ndarray:  # (n, 3) -> (n, 10): 1, linear and quadratic
        c = c / 255.0
        q = c[:, [0, 0, 0, 1, 1, 2]] * c[:, [0, 1, 2, 1, 2, 2]]
        return np.c_[np.ones(len(c)), c, q]

    x = src[mask].astype(np.float64)
    y = dst[mask].astype(np.float64)
    if x.shape[0] < 32:
        return src.astype(np.float32)
    coef, *_ = np.linalg.lstsq(terms(x), y, rcond=None)            # (10, 3)
    flat = src.reshape(-1, 3).astype(np.float64)
    return (terms(flat) @ coef).reshape(src.shape).astype(np.float32)


def _largest_blob(mask: np.ndarray) -> tuple[tuple[int, int, int, int] | None, float, float]:
    """Bounding box, area fraction and fill density of the largest closed blob of ``mask``."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return None, 0.0, 0.0
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[k])
    fill = float(mask[y:y + h, x:x + w].mean())
    return (x, y, x + w, y + h), area / float(mask.size), fill


def contains_at_unit_scale(a_shape: tuple[int, ...], b_shape: tuple[int, ...],
                           transform: np.ndarray) -> bool:
    """True when catalog image ``b`` lies wholly inside image ``a`` at its own scale.

    Then the pair is read the other way round: ``b`` is a crop of ``a``, not ``a`` a padded
    copy of ``b`` (a padded copy is shrunk onto its new canvas, see :func:`classify_pair`).
    Without this, which of two verified directions of one pair wins would decide the kind.

    Parameters
    ----------
    a_shape, b_shape : tuple of int
        ``(h, w, ...)`` shapes of the two images.
    transform : numpy.ndarray
        ``(3, 3)`` float map from ``b`` pixels to ``a`` pixels.
    """
    t = np.asarray(transform, np.float64)
    t = t / t[2, 2]
    sx, sy, rot, persp = _similarity_parts(t)
    hb, wb = b_shape[:2]
    if not (_near_similarity(sx, sy, rot, persp, (wb, hb)) and abs(sx - 1) < 0.01
            and abs(sy - 1) < 0.01):
        return False
    return _b_inside_a(t, a_shape, (wb, hb)) and tuple(a_shape[:2]) != (hb, wb)


def _near_similarity(sx: float, sy: float, rot: float, persp: float,
                     b_size: tuple[int, int]) -> bool:
    """Equal scales, a multiple of 180° and next to no perspective: the same photo, edited."""
    return (persp < 2e-4 * 320.0 / max(b_size) and abs(sx / sy - 1) < 0.03
            and min(abs(rot), abs(abs(rot) - 180)) < 1.5)


def _b_inside_a(t: np.ndarray, a_shape: tuple[int, ...], b_size: tuple[int, int]) -> bool:
    """Every corner of ``b`` (``(w, h)``) maps inside ``a`` (2 px slack)."""
    ha, wa = a_shape[:2]
    corners = outline(t, b_size)
    return bool(np.all((corners >= -2) & (corners <= [wa + 2, ha + 2])))


def classify_pair(a: np.ndarray, b: np.ndarray, transform: np.ndarray, *,
                  mirrored: bool = False) -> PairKind:
    """Classify image ``a`` as a copy of catalog image ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(h, w, 3) uint8`` BGR images (``a`` the listing, ``b`` the catalog image).
    transform : numpy.ndarray
        ``(3, 3)`` float map from ``b`` pixels to ``a`` pixels (a verified match's transform).
    mirrored : bool
        ``a`` matched only once flipped left to right (``transform`` already includes the flip).

    Returns
    -------
    PairKind
    """
    ha, wa = a.shape[:2]
    hb, wb = b.shape[:2]
    t = np.asarray(transform, np.float64)
    t = t / t[2, 2]
    sx, sy, rot, persp = _similarity_parts(t)
    if mirrored:
        flip = np.array([[-1, 0, wa], [0, 1, 0], [0, 0, 1]], np.float64)
        sx, sy, rot, persp = _similarity_parts(flip @ t)
    if not _near_similarity(sx, sy, rot, persp, (wb, hb)):
        return PairKind("same_product", None, 0.0)

    # compare in b's frame: warp a back onto b, at most _MAX_SIDE px
    k = min(1.0, _MAX_SIDE / max(hb, wb))
    size = (max(8, int(round(wb * k))), max(8, int(round(hb * k))))
    down = np.diag([k, k, 1.0])
    inv = np.linalg.inv(t)
    a_in_b = cv2.warpPerspective(a, down @ inv, size, flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    cover = cv2.warpPerspective(np.full((ha, wa), 255, np.uint8), down @ inv, size,
                                flags=cv2.INTER_NEAREST) > 0
    b_small = cv2.resize(b, size, interpolation=cv2.INTER_AREA) if k < 1 else b
    covered = float(cover.mean())
    corners_b = outline(t, (wb, hb))
    inside_a = _b_inside_a(t, a.shape, (wb, hb))
    identity = (abs(sx - 1) < 0.01 and abs(sy - 1) < 0.01 and np.abs(t[:2, 2]).max() < 1.5
                and (ha, wa) == (hb, wb))

    inner = cover.copy()
    inner = cv2.erode(inner.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # compare slightly blurred pixels, so JPEG ringing does not count as an edit
    a_s = cv2.GaussianBlur(a_in_b, (0, 0), 1.2).astype(np.float32)
    b_s = cv2.GaussianBlur(b_small, (0, 0), 1.2).astype(np.float32)
    raw = np.abs(a_s - b_s).max(-1)
    fitted = _colour_fit(a_s, b_s, inner)
    res = np.abs(fitted - b_s).max(-1)
    # refit without the pixels the first map leaves far off (an overlay must not bend the map)
    fitted = _colour_fit(a_s, b_s, inner & (res <= _BIG))
    # a pixel is explained when the identity or the global colour map reproduces it
    res = np.minimum(np.abs(fitted - b_s).max(-1), raw)
    big = (res > _BIG) & inner
    box, frac, fill = _largest_blob(big)
    unexplained = None
    if box is not None and frac > 0.005:
        x0, y0, x1, y1 = box
        unexplained = (int(x0 / k), int(y0 / k), int(np.ceil(x1 / k)), int(np.ceil(y1 / k)))
    u_frac = frac if unexplained is not None else 0.0

    def kind_of(default: str) -> PairKind:
        return PairKind(default, unexplained, u_frac)

    if mirrored:
        return kind_of("mirror")
    if not identity:
        if covered < 0.97:
            return kind_of("crop")
        if inside_a and (corners_b.min(0) > [0.03 * wa, 0.03 * ha]).any():
            return kind_of("padding")
        return kind_of("resize")
    if a.shape == b.shape and np.array_equal(a, b):
        return PairKind("exact", None, 0.0)
    raw_mean = float(raw[inner].mean()) if inner.any() else 0.0
    res_mean = float(res[inner].mean()) if inner.any() else 0.0
    if raw_mean > 8.0 and res_mean < 0.5 * raw_mean and frac < 0.03:
        return kind_of("colour_shift")
    if unexplained is not None and frac > 0.02:
        x0, y0, x1, y1 = box
        band = ((x1 - x0) > 0.75 * size[0] and (y1 - y0) < 0.35 * size[1]
                and (y0 <= 0.02 * size[1] or y1 >= 0.98 * size[1]))
        if band:
            return kind_of("text")
        if fill < 0.35:
            return kind_of("watermark")
        return kind_of("counterfeit")
    if raw_mean > 8.0 and res_mean < 0.5 * raw_mean:
        return kind_of("colour_shift")
    if float(big.mean()) > 0.01:
        return kind_of("watermark")
    return kind_of("recompress")
