"""Pictures of results: a query photo beside its match, with verified correspondences drawn."""

from __future__ import annotations

import cv2
import numpy as np

from vbow.describe.image_input import ImageInput, read_image
from vbow.results import Match

__all__ = ["draw_match", "project_outline"]


def project_outline(transform: np.ndarray, width: float, height: float) -> np.ndarray:
    """Corners of a ``width`` x ``height`` catalog image mapped by ``transform``: ``(4, 2) float64``."""
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float64)
    p = corners @ np.asarray(transform, np.float64).T
    return p[:, :2] / p[:, 2:3]


def draw_match(query: ImageInput, catalog: ImageInput, match: Match, *, max_lines: int = 80,
               height: int = 480) -> np.ndarray:
    """Side-by-side picture of a query and a catalog image.

    The catalog image is on the left, the query on the right; inlier correspondences are joined by
    lines, and the catalog image's outline mapped by the fitted transform is drawn on the query.

    Parameters
    ----------
    query, catalog : image input
        The query photo and the matched catalog image, as given to vbow (full resolution).
    match : Match
        A match returned by :meth:`vbow.ImageIndex.search` for this query.
    max_lines : int
        At most this many correspondence lines (an even subset).
    height : int
        Height of the output picture in pixels.

    Returns
    -------
    np.ndarray
        ``(height, w, 3) uint8`` BGR picture.
    """
    q = read_image(query, max_side=None)
    c = read_image(catalog, max_side=None)
    sq, sc = height / q.shape[0], height / c.shape[0]
    qs = cv2.resize(q, (max(1, round(q.shape[1] * sq)), height), interpolation=cv2.INTER_AREA)
    cs = cv2.resize(c, (max(1, round(c.shape[1] * sc)), height), interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([cs, qs], axis=1)
    off = cs.shape[1]
    pts = match.inlier_points
    if pts.shape[0]:
        step = max(1, pts.shape[0] // max_lines)
        for qx, qy, cx, cy in pts[::step]:
            a = (int(round(cx * sc)), int(round(cy * sc)))
            b = (int(round(qx * sq)) + off, int(round(qy * sq)))
            cv2.line(canvas, a, b, (0, 255, 0), 1, cv2.LINE_AA)
            cv2.circle(canvas, a, 3, (0, 200, 255), -1, cv2.LINE_AA)
            cv2.circle(canvas, b, 3, (0, 200, 255), -1, cv2.LINE_AA)
    if match.transform is not None:
        outline = project_outline(match.transform, c.shape[1], c.shape[0]) * sq
        outline[:, 0] += off
        cv2.polylines(canvas, [np.round(outline).astype(np.int32)], True, (255, 0, 255), 3, cv2.LINE_AA)
    label = f"{match.key}  score {match.score:.2f}  inliers {match.inliers}"
    (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    cv2.rectangle(canvas, (4, 24 - text_h - 4), (12 + text_w, 24 + baseline + 2), (0, 0, 0), -1)
    cv2.putText(canvas, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
