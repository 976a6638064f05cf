"""Every catalog product in one photo (shelf photos, brand logos), each with its outline.

:func:`detect` verifies repeatedly: it searches with the photo's features, accepts the best
candidate with the decision (:mod:`vbow.apps.decision`), maps the catalog image's border into
the photo, removes the photo's features inside that outline (the inliers and everything else
the product explains), and searches again with the rest, up to ``max_objects`` products or until
no candidate is accepted.

For a shelf photo the decision's ``inlier_ratio`` counts only the features inside the candidate's
outline, so a product is judged on its own region, not on the whole shelf.

Brand and logo recognition is the same call on an index of logo images: each detection is a
logo, with its outline in the photo.

Examples
--------
>>> detections = detect(index, "shelf.jpg", max_objects=10)
>>> [(d.key, round(d.confidence, 2)) for d in detections]
>>> logos = detect(logo_index, "poster.jpg")
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from vbow.describe.extraction import ImageDescription
from vbow.describe.features import LocalFeatures
from vbow.errors import InvalidInputError
from vbow.index import ImageIndex
from vbow.apps.catalog_view import catalog_size
from vbow.apps.decision import DecisionModel, match_evidence
from vbow.apps.geometry import (MAX_SCALE_DISTORTION, clipped_area, inside, outline,
                                 scale_distortion)

__all__ = ["Detection", "detect", "detect_features"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """One product found in a photo.

    Attributes
    ----------
    key : str
        Catalog key of the product.
    outline : numpy.ndarray
        ``(4, 2) float64`` the catalog image's corners in the photo (original pixels):
        top-left, top-right, bottom-right, bottom-left of the catalog image.
    confidence : float
        The decision's confidence, in ``[0, 1]``.
    inliers : int
        Verified correspondences.
    transform : numpy.ndarray
        ``(3, 3) float64`` catalog pixels to photo pixels.
    metadata : dict
        The catalog image's metadata.
    """

    key: str
    outline: np.ndarray
    confidence: float
    inliers: int
    transform: np.ndarray
    metadata: dict

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "outline": np.round(self.outline, 2).tolist(),
                "confidence": round(float(self.confidence), 6), "inliers": int(self.inliers),
                "transform": self.transform.tolist(), "metadata": dict(self.metadata)}


def _subset(query: ImageDescription, keep: np.ndarray) -> ImageDescription:
    f = query.features
    return dataclasses.replace(query, features=LocalFeatures(f.keypoints[keep], f.descriptors[keep],
                                                        f.image_size))


def detect_features(index: ImageIndex, query: ImageDescription, *, max_objects: int = 10,
                    top_k: int = 5, model: DecisionModel | None = None,
                    min_features: int = 12, min_area: float = 0.005,
                    **search_options: Any) -> list[Detection]:
    """:func:`detect` for an already described photo (see :meth:`ImageIndex.describe`).

    ``min_features`` is the fewest photo features a candidate's outline must hold, and
    ``min_area`` the smallest share of the photo its visible outline must cover.
    """
    if isinstance(max_objects, bool) or not isinstance(max_objects, (int, np.integer)) \
            or int(max_objects) < 1:
        raise InvalidInputError(f"max_objects must be an int >= 1, got {max_objects!r}")
    model = DecisionModel.default() if model is None else model
    kp = query.features.keypoints
    xy = kp[:, :2].astype(np.float64) * float(query.scale)   # (n, 2) original pixels
    w, h = query.features.image_size
    photo_size = (float(w) * query.scale, float(h) * query.scale)
    active = np.ones(len(kp), bool)
    found: list[Detection] = []
    while len(found) < int(max_objects) and int(active.sum()) >= min_features:
        ids = np.flatnonzero(active)
        result = index.search_features(_subset(query, ids), top_k, rerank=True, **search_options)
        best: tuple[float, Any, np.ndarray] | None = None
        for m in result.matches:
            if not m.verified or m.transform is None:
                continue
            size = catalog_size(index, m.key)
            poly = outline(m.transform, size)
            if not np.all(np.isfinite(poly)) or \
                    scale_distortion(m.transform, size) > MAX_SCALE_DISTORTION:
                continue  # no flat product is seen like that: a look-alike part of another
            n_region = int(inside(xy[ids], poly).sum())
            # a product must hold its own features: a degenerate or tiny outline around a
            # handful of points would otherwise give an inlier ratio near 1
            if n_region < min_features or clipped_area(poly, *photo_size) < \
                    min_area * photo_size[0] * photo_size[1]:
                continue
            e = match_evidence(m, n_query_features=max(n_region, m.inliers),
                               photo_size=photo_size, catalog_size=size)
            c = float(model.confidence(e.vector())[0])
            if best is None or c > best[0]:
                best = (c, m, poly)
        if best is None or best[0] < model.threshold:
            break
        c, m, poly = best
        found.append(Detection(m.key, poly, c, int(m.inliers), np.asarray(m.transform),
                               dict(m.metadata)))
        explained = ids[inside(xy[ids], poly)]
        # the inliers are explained even where the outline is slightly off
        q_inl = np.asarray(m.inlier_points, np.float64)[:, :2]
        if q_inl.size:
            d2 = ((xy[ids][:, None, :] - q_inl[None, :, :]) ** 2).sum(-1).min(1)
            explained = np.union1d(explained, ids[d2 < 1e-6])
        if explained.size == 0:
            break
        active[explained] = False
        logger.debug("detected %s (confidence %.3f, %d inliers); %d features left", m.key, c,
                     m.inliers, int(active.sum()))
    return found


def detect(index: ImageIndex, image: Any, *, max_objects: int = 10, top_k: int = 5,
           model: DecisionModel | None = None, **search_options: Any) -> list[Detection]:
    """Find every catalog product in one photo, each with its outline.

    Parameters
    ----------
    index : ImageIndex
        A built index (of products, or of logos for brand recognition).
    image : image input
        A path, encoded bytes, an array or a PIL image (see :meth:`ImageIndex.describe`).
    max_objects : int, default 10
        Cap on the number of detections (and of verification rounds).
    top_k : int, default 5
        Candidates looked at per round.
    model : DecisionModel, optional
        Decides whether a candidate is present (default :meth:`DecisionModel.default`).
    **search_options
        Passed to :meth:`ImageIndex.search_features` (``where``, ``shortlist``).

    Returns
    -------
    list of Detection
        In the order found (most evident first).
    """
    return detect_features(index, index.describe(image), max_objects=max_objects, top_k=top_k,
                           model=model, **search_options)
