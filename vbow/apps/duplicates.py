"""Duplicate and counterfeit listings: catalog images of the same photo or the same product.

:func:`find_duplicates` uses the index itself: every catalog image queries the rest (and, to
find mirrored copies, once more flipped left to right); the verified candidates that the decision
accepts (:mod:`vbow.apps.decision`) are pairs. Each pair is classified
(:func:`vbow.apps.edits.classify_pair`): an exact re-upload, an edited copy (crop, resize,
re-compression, watermark, text, colour shift, mirror, padding), a counterfeit (a compact block of
the print differs; the block is returned) or the same product in a different photo. Pairs are
joined into groups (connected components).

The cost is one search per image (two with ``mirror=True``), so time grows with the catalog as
search time does: about linearly, with each search sub-linear in the catalog.
"""

from __future__ import annotations

import logging
import time
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from vbow.describe.image_input import read_image
from vbow.errors import InvalidInputError
from vbow.index import ImageIndex
from vbow.progress import Progress
from vbow.apps.catalog_view import catalog_keypoints, catalog_size
from vbow.apps.decision import DecisionModel, decide
from vbow.apps.edits import classify_pair, contains_at_unit_scale
from vbow.apps.geometry import (MAX_SCALE_DISTORTION, clipped_area, hull_area, outline,
                                scale_distortion)

__all__ = ["DuplicatePair", "DuplicateReport", "find_duplicates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DuplicatePair:
    """Two catalog images that show the same photo or the same product.

    Attributes
    ----------
    a, b : str
        Keys; ``a`` is the listing that matched catalog image ``b``.
    kind : str
        One of :data:`vbow.apps.edits.PAIR_KINDS`.
    confidence : float
        The decision's confidence, in ``[0, 1]``.
    inliers : int
    transform : numpy.ndarray
        ``(3, 3) float64`` ``b`` pixels to ``a`` pixels.
    counterfeit : bool
        A verified same-photo match that leaves a compact part of ``b`` unexplained.
    unexplained : tuple of int or None
        ``(x0, y0, x1, y1)`` in ``b``'s pixels: the region a reviewer should look at.
    """

    a: str
    b: str
    kind: str
    confidence: float
    inliers: int
    transform: np.ndarray
    counterfeit: bool
    unexplained: tuple[int, int, int, int] | None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kind": self.kind,
                "confidence": round(float(self.confidence), 6), "inliers": int(self.inliers),
                "transform": np.asarray(self.transform).tolist(), "counterfeit": self.counterfeit,
                "unexplained": None if self.unexplained is None else list(self.unexplained)}


@dataclass(frozen=True)
class DuplicateReport:
    """What :func:`find_duplicates` found.

    Attributes
    ----------
    pairs : tuple of DuplicatePair
        One per unordered pair of keys (the more evident direction).
    groups : tuple of tuple of str
        Connected components of the pairs, each sorted, largest first.
    seconds : float
        Wall time.
    """

    pairs: tuple[DuplicatePair, ...]
    groups: tuple[tuple[str, ...], ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [p.to_dict() for p in self.pairs],
                "groups": [list(g) for g in self.groups], "seconds": round(self.seconds, 3)}


def _groups(keys: list[str], pairs: list[DuplicatePair]) -> tuple[tuple[str, ...], ...]:
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for p in pairs:
        ra, rb = root(p.a), root(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comp: dict[str, list[str]] = {}
    for p in pairs:
        for k in (p.a, p.b):
            comp.setdefault(root(k), [])
    for k in keys:
        r = root(k)
        if r in comp:
            comp[r].append(k)
    out = [tuple(sorted(set(v))) for v in comp.values()]
    return tuple(sorted(out, key=lambda g: (-len(g), g)))


def _catalog_inliers(match: Any) -> np.ndarray:
    """``(n, 2) float64`` catalog-side pixels of a verified match's inliers."""
    return np.asarray(match.inlier_points, np.float64).reshape(-1, 4)[:, 2:]


def find_duplicates(index: ImageIndex, images: Mapping[str, Any], *, mirror: bool = True,
                    top_k: int = 10, model: DecisionModel | None = None,
                    counterfeit_fraction: float = 0.02, min_coverage: float = 0.25,
                    progress: bool | None = None) -> DuplicateReport:
    """Group catalog images that show the same product photo or the same product.

    Parameters
    ----------
    index : ImageIndex
        The built index of the catalog.
    images : mapping of str to image input
        ``key -> image`` (path, bytes or BGR array) for the catalog images to check; keys must
        be in ``index``. The pixels are needed to tell edits apart (the index keeps none).
    mirror : bool, default True
        Also query with each image flipped, to find mirrored copies (twice the searches).
    top_k : int, default 10
        Candidates per query.
    model : DecisionModel, optional
        Accepts a candidate as a duplicate (default :meth:`DecisionModel.default`).
    counterfeit_fraction : float, default 0.02
        Smallest unexplained share of the catalog image that flags a counterfeit.
    min_coverage : float, default 0.25
        Smallest share of the matched image's textured part (the hull of its stored features)
        that the inliers' hull must cover (a shared brand bar or badge verifies, but covers
        little of either image, and is no duplicate), and smallest share of the querying image
        that the matched image's outline must cover.

    Returns
    -------
    DuplicateReport
    """
    if not isinstance(images, Mapping):
        raise InvalidInputError(f"images must be a mapping key -> image, got "
                                f"{type(images).__name__}")
    missing = [k for k in images if k not in index]
    if missing:
        raise InvalidInputError(f"{len(missing)} keys are not in the index, e.g. {missing[:3]}")
    t0 = time.perf_counter()
    keys = list(images)
    best: dict[tuple[str, str], DuplicatePair] = {}
    pixels: dict[str, np.ndarray] = {}

    def load(k: str) -> np.ndarray:
        if k not in pixels:
            img = images[k]
            pixels[k] = img if isinstance(img, np.ndarray) else read_image(img)
        return pixels[k]

    feature_hulls: dict[str, float] = {}

    def textured_coverage(match: Any) -> float:
        """The inliers' hull over the hull of all the matched image's stored features: the
        share of its textured part that the match explains. A product shot on a plain
        background has features on the product only, so its whole area is the wrong unit."""
        if match.key not in feature_hulls:
            feature_hulls[match.key] = hull_area(catalog_keypoints(index, match.key))
        whole = feature_hulls[match.key]
        return min(1.0, hull_area(_catalog_inliers(match)) / whole) if whole > 0 else 0.0

    with Progress(len(keys), "duplicates", progress) as bar:
        for key in keys:
            img = load(key)
            variants = [(False, img)] + ([(True, np.ascontiguousarray(img[:, ::-1]))]
                                         if mirror else [])
            for flipped, view in variants:
                q = index.describe(view, name=key)
                # every copy, not only a clear winner: the listing itself always is one
                res = index.search_features(q, top_k + 1, rerank=True, verify_all=True)
                w, h = q.features.image_size
                for m in res.matches:
                    if m.key == key or not m.verified:
                        continue
                    d = decide(type(res)(res.query, (m,)), n_query_features=len(q.features),
                               photo_size=(w * q.scale, h * q.scale),
                               catalog_size_of=lambda k: catalog_size(index, k), model=model)
                    if not d.accepted or textured_coverage(m) < min_coverage:
                        continue
                    # the other listing must show it large too: a whole catalog image mapped
                    # into a sliver of this one is a degenerate fit, not a copy
                    size = catalog_size(index, m.key)
                    shown = clipped_area(outline(m.transform, size), w * q.scale, h * q.scale)
                    if shown < min_coverage * (w * q.scale) * (h * q.scale) or \
                            scale_distortion(m.transform, size, _catalog_inliers(m)) > \
                            MAX_SCALE_DISTORTION:
                        continue
                    t = np.asarray(m.transform, np.float64)
                    if flipped:  # map b into the unflipped listing
                        t = np.array([[-1, 0, img.shape[1]], [0, 1, 0], [0, 0, 1]], float) @ t
                    pair_key = (min(key, m.key), max(key, m.key))
                    old = best.get(pair_key)
                    if old is not None and (old.inliers >= m.inliers or (flipped and
                                                                         old.kind != "mirror")):
                        continue
                    best[pair_key] = DuplicatePair(key, m.key, "mirror" if flipped else "",
                                                   d.confidence, int(m.inliers), t, False, None)
            bar.update()
    pairs = []
    for p in best.values():
        if p.kind != "mirror" and contains_at_unit_scale(load(p.a).shape, load(p.b).shape,
                                                         p.transform):
            p = dataclasses.replace(p, a=p.b, b=p.a, transform=np.linalg.inv(p.transform))
        kind = classify_pair(load(p.a), load(p.b), p.transform, mirrored=p.kind == "mirror")
        counterfeit = (kind.kind == "counterfeit"
                       or (kind.kind not in ("same_product", "text", "watermark")
                           and kind.unexplained_fraction >= counterfeit_fraction
                           and kind.kind != "exact"))
        pairs.append(DuplicatePair(p.a, p.b, kind.kind, p.confidence, p.inliers, p.transform,
                                   bool(counterfeit), kind.unexplained))
    pairs.sort(key=lambda p: (p.a, p.b))
    seconds = time.perf_counter() - t0
    logger.info("duplicates: %d pairs among %d images in %.1f s", len(pairs), len(keys), seconds)
    return DuplicateReport(tuple(pairs), _groups(keys, pairs), seconds)
