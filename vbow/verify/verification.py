"""Geometric verification of a candidate from visual-word correspondences.

1. **Correspondences** come from shared visual words (no descriptor matching): every query feature
   is paired with the catalog image's features that carry one of its words. Words that occur more
   than ``max_fanout`` times in either image (repeated texture) are skipped: they only add noise.
2. **Hypotheses from single correspondences.** A pair of keypoints with scale and orientation
   fixes a similarity transform on its own (Philbin et al. 2007). Up to ``max_hypotheses`` such
   hypotheses are scored against all correspondences at once (vectorised), counting pairs whose
   position, scale ratio and rotation agree.
3. **Model fit.** The correspondences consistent with the best hypothesis (loose tolerance) are
   passed to a robust fit of the requested model: OpenCV's USAC MAGSAC++ for a homography, RANSAC
   for an affine or similarity transform. Inliers are counted one-to-one by location (features
   stacked on one point count once).

Determinism and threads: nothing here reads or writes process-global state. The hypothesis
subset comes from a numpy generator seeded per call, and OpenCV's robust fits used here draw
from random generators of their own with a fixed initial state (USAC's ``randomGeneratorState``
0; the classic RANSAC registrator's fixed-seed local RNG), not from ``cv::theRNG()``; so a
call's result depends only on its arguments, and concurrent calls give what serial calls give
(``tests/test_verification.py`` checks both, and that OpenCV's global RNG is left untouched).

The result's ``transform`` maps catalog-image coordinates to query coordinates (both in the
processed images' pixels; :class:`vbow.ImageIndex` converts to original pixels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vbow.search.csr import gather_ranges
from vbow.errors import UnknownOptionError

__all__ = ["Verification", "QueryWords", "word_correspondences", "verify_pair", "MODELS"]

logger = logging.getLogger(__name__)

Model = Literal["similarity", "affine", "homography"]
MODELS: tuple[str, ...] = ("similarity", "affine", "homography")
_MIN_POINTS = {"similarity": 2, "affine": 3, "homography": 4}
#: Inliers are counted once per square of this many (processed) pixels on each side.
_LOCATION_CELL = 2.0


@dataclass(frozen=True)
class Verification:
    """Outcome of verifying one candidate.

    Attributes
    ----------
    inliers : int
        One-to-one inlier correspondences of the fitted model (0 when verification failed).
    transform : np.ndarray or None
        ``(3, 3) float64`` catalog → query mapping, or None when no model was found.
    pairs : np.ndarray
        ``(inliers, 2) int64`` inlier correspondences as (query feature, catalog feature) indices.
    n_correspondences : int
        Tentative correspondences from shared words.
    """

    inliers: int
    transform: np.ndarray | None
    pairs: np.ndarray
    n_correspondences: int


_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)


class QueryWords:
    """A query's feature words, prepared once to find correspondences with many catalog images.

    Parameters
    ----------
    query_words : np.ndarray
        ``(nq,)`` or ``(nq, k) int`` word ids of the query's features (``k`` > 1 with multiple
        assignment; ``-1`` entries are ignored). The words of one row must be distinct, as
        :meth:`vbow.vocab.vocabulary.Vocabulary.quantise_multi` returns them.
    max_fanout : int
        Skip words that occur more than this many times in the query or in a catalog image.

    Notes
    -----
    The query's words are sorted once; each catalog image's words are then looked up in them,
    a few hundred binary searches per image instead of one per query word.
    """

    def __init__(self, query_words: np.ndarray, *, max_fanout: int = 5) -> None:
        qw = np.asarray(query_words, dtype=np.int64)
        if qw.ndim == 1:
            qw = qw[:, None]
        flat = qw.reshape(-1)
        slot = np.flatnonzero(flat >= 0)  # position in the flattened (nq, k) array
        words = flat[slot]
        _, inverse, counts = np.unique(words, return_inverse=True, return_counts=True)
        keep = counts[inverse] <= max_fanout  # drop bursty words on the query side
        slot, words = slot[keep], words[keep]
        order = np.argsort(words, kind="stable")
        self.sorted_words = words[order]
        self.slots = slot[order]
        self.k = qw.shape[1]
        self.max_fanout = int(max_fanout)

    def pairs_with(self, db_words: np.ndarray) -> np.ndarray:
        """``(m, 2) int64`` (query feature index, catalog feature index) pairs sharing a word,
        each pair once, ordered by query feature, then its word's assignment rank, then
        catalog feature; ``db_words`` is ``(nd,) int``."""
        dw = np.asarray(db_words, dtype=np.int64)
        if self.sorted_words.size == 0 or dw.size == 0:
            return _EMPTY_PAIRS
        d_order = np.argsort(dw, kind="stable")
        d_sorted = dw[d_order]
        fanout = np.searchsorted(d_sorted, dw, side="right") - np.searchsorted(d_sorted, dw, side="left")
        d_idx = np.flatnonzero(fanout <= self.max_fanout)  # drop bursty catalog words
        lo = np.searchsorted(self.sorted_words, dw[d_idx], side="left")
        lengths = np.searchsorted(self.sorted_words, dw[d_idx], side="right") - lo
        positions = gather_ranges(lo, lengths)
        if positions.size == 0:
            return _EMPTY_PAIRS
        slots = self.slots[positions]
        d = np.repeat(d_idx, lengths)
        order = np.lexsort((d, slots))
        # a descriptor's k assigned words are distinct, so every pair occurs once
        return np.stack([slots[order] // self.k, d[order]], axis=1)


def word_correspondences(query_words: np.ndarray, db_words: np.ndarray, *,
                         max_fanout: int = 5) -> np.ndarray:
    """Pairs of features that share a visual word, for one catalog image.

    ``query_words`` and ``max_fanout`` are as in :class:`QueryWords` (which prepares the query
    once to match it against many images); ``db_words`` is the ``(nd,) int`` word ids of the
    catalog image's features. Returns ``(m, 2) int64`` (query feature index, catalog feature
    index), each pair once.
    """
    return QueryWords(query_words, max_fanout=max_fanout).pairs_with(db_words)


def _similarity_hypotheses(q: np.ndarray, d: np.ndarray, hyp: np.ndarray, tol: float,
                           scale_tol: float, angle_tol: float) -> np.ndarray:
    """``(h, m) bool`` which correspondences agree with each single-pair similarity hypothesis."""
    ratio = np.log(np.maximum(q[:, 2], 1e-6) / np.maximum(d[:, 2], 1e-6))     # (m,)
    rot = np.deg2rad(q[:, 3] - d[:, 3])                                       # (m,)
    s = np.exp(ratio[hyp])[:, None]
    c, sn = np.cos(rot[hyp])[:, None], np.sin(rot[hyp])[:, None]
    dx = d[None, :, 0] - d[hyp, 0][:, None]
    dy = d[None, :, 1] - d[hyp, 1][:, None]
    px = q[hyp, 0][:, None] + s * (c * dx - sn * dy)
    py = q[hyp, 1][:, None] + s * (sn * dx + c * dy)
    close = (px - q[None, :, 0]) ** 2 + (py - q[None, :, 1]) ** 2 < tol * tol
    same_scale = np.abs(ratio[None, :] - ratio[hyp][:, None]) < scale_tol
    drot = np.abs(np.mod(rot[None, :] - rot[hyp][:, None] + np.pi, 2 * np.pi) - np.pi)
    return close & same_scale & (drot < angle_tol)


def _location_ids(xy: np.ndarray, cell: float) -> np.ndarray:
    """``(m,) int64`` one id per ``cell``-pixel square that each point falls in."""
    cells = np.floor(np.asarray(xy, np.float64) / cell).astype(np.int64)
    return cells[:, 0] * (1 << 24) + cells[:, 1]


def _one_to_one(q_loc: np.ndarray, d_loc: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices of masked pairs keeping each query and each catalog location at most once.

    Locations rather than feature indices: SIFT gives one feature per dominant orientation at
    the same point, and upscaled thumbnails stack features of several scales on one pixel;
    counting each of them would let a handful of points pose as many inliers.
    """
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return idx
    _, first_q = np.unique(q_loc[idx], return_index=True)
    idx = idx[np.sort(first_q)]
    _, first_d = np.unique(d_loc[idx], return_index=True)
    return idx[np.sort(first_d)]


def _plausible(transform: np.ndarray, db_size: tuple[int, int]) -> bool:
    """Reject degenerate fits: collapsed, mirrored, or wildly distorted catalog outlines."""
    if transform is None or not np.all(np.isfinite(transform)):
        return False
    w, h = db_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    homog = np.c_[corners, np.ones(4)] @ transform.T
    if np.any(homog[:, 2] <= 1e-9):
        return False  # the outline crosses the horizon
    pts = homog[:, :2] / homog[:, 2:3]
    edges = np.roll(pts, -1, axis=0) - pts
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not np.all(cross > 0):
        return False  # not convex, twisted, or mirrored (local features are not mirror-invariant)
    area_ratio = abs(0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])) / max(w * h, 1)
    return 1e-4 < area_ratio < 1e4


def verify_pair(query_kp: np.ndarray, db_kp: np.ndarray, pairs: np.ndarray, *,
                db_size: tuple[int, int], model: str = "homography", threshold: float = 6.0,
                hypothesis_tolerance: float = 0.08, max_hypotheses: int = 200,
                min_inliers: int = 8, seed: int = 0) -> Verification:
    """Fit a geometric model to word correspondences and count its inliers.

    Parameters
    ----------
    query_kp, db_kp : np.ndarray
        ``(nq, 4)`` and ``(nd, 4) float32`` keypoints (x, y, size, angle°).
    pairs : np.ndarray
        ``(m, 2) int`` correspondences from :func:`word_correspondences`.
    db_size : tuple of int
        ``(width, height)`` of the catalog image (for the plausibility check of the outline).
    model : {"similarity", "affine", "homography"}
        The transform to fit.
    threshold : float
        Inlier reprojection error in query pixels.
    hypothesis_tolerance : float
        Position tolerance of single-pair hypotheses, as a fraction of the catalog image's
        longer side, scaled by the hypothesis' scale.
    max_hypotheses : int
        Single-pair hypotheses tried (a seeded random subset when there are more pairs).
    min_inliers : int
        Fewer inliers than this report 0 inliers and no transform.
    seed : int
        Seed for the hypothesis subset (OpenCV's robust fits are deterministic on their own;
        see the module docstring).

    Returns
    -------
    Verification
    """
    if model not in MODELS:
        raise UnknownOptionError("geometric model", model, MODELS)
    m = int(pairs.shape[0])
    fail = Verification(0, None, _EMPTY_PAIRS, m)
    if m < max(_MIN_POINTS[model], min_inliers):
        return fail
    q = query_kp[pairs[:, 0]].astype(np.float64)
    d = db_kp[pairs[:, 1]].astype(np.float64)
    hyp = _hypothesis_subset(m, max_hypotheses, seed)
    # position tolerance grows with the hypothesis scale (catalog pixels mapped to query pixels)
    scale_of_hyp = q[hyp, 2] / np.maximum(d[hyp, 2], 1e-6)
    base_tol = hypothesis_tolerance * max(db_size)
    agree = np.zeros((hyp.size, m), dtype=bool)
    for lo in range(0, hyp.size, 64):
        sl = slice(lo, lo + 64)
        tol = max(threshold, float(np.median(base_tol * scale_of_hyp[sl])))
        agree[sl] = _similarity_hypotheses(q, d, hyp[sl], tol, np.log(2.0), np.deg2rad(30.0))
    support = agree.sum(axis=1)
    best = int(np.argmax(support))
    candidate = agree[best]
    if int(candidate.sum()) < max(_MIN_POINTS[model], min_inliers):
        return fail
    return _fit_consistent(q, d, pairs, candidate, db_size, model, threshold, min_inliers)


def _hypothesis_subset(m: int, max_hypotheses: int, seed: int) -> np.ndarray:
    """``(h,) int64`` the correspondences tried as single-pair hypotheses (all, or a seeded
    sorted subset of ``max_hypotheses``)."""
    if m <= max_hypotheses:
        return np.arange(m)
    return np.sort(np.random.default_rng(seed).choice(m, max_hypotheses, replace=False))


def _fit_consistent(q: np.ndarray, d: np.ndarray, pairs: np.ndarray, candidate: np.ndarray,
                    db_size: tuple[int, int], model: str, threshold: float,
                    min_inliers: int) -> Verification:
    """Robust fit on the correspondences ``candidate`` (``(m,) bool``) consistent with the best
    hypothesis, then one-to-one inliers among all ``m`` correspondences (``q``, ``d``: ``(m, 4)
    float64`` keypoints of each pair)."""
    m = int(pairs.shape[0])
    fail = Verification(0, None, _EMPTY_PAIRS, m)
    src = d[candidate, :2].astype(np.float32)
    dst = q[candidate, :2].astype(np.float32)
    if model == "homography" and src.shape[0] >= 5:
        transform, _ = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000,
                                          confidence=0.999)
    elif model in ("homography", "affine"):
        affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC,
                                         ransacReprojThreshold=threshold, maxIters=2000)
        transform = None if affine is None else np.vstack([affine, [0, 0, 1]])
    else:
        affine, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                ransacReprojThreshold=threshold, maxIters=2000)
        transform = None if affine is None else np.vstack([affine, [0, 0, 1]])
    if transform is None or not _plausible(transform, db_size):
        return fail
    # inliers among all correspondences, one-to-one
    proj = np.c_[d[:, :2], np.ones(m)] @ transform.T
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.hypot(proj[:, 0] / proj[:, 2] - q[:, 0], proj[:, 1] / proj[:, 2] - q[:, 1])
    inlier_idx = _one_to_one(_location_ids(q[:, :2], _LOCATION_CELL),
                             _location_ids(d[:, :2], _LOCATION_CELL),
                             np.nan_to_num(err, nan=np.inf) < threshold)
    if inlier_idx.size < min_inliers:
        return fail
    return Verification(int(inlier_idx.size), transform.astype(np.float64), pairs[inlier_idx], m)
