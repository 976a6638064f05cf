"""Geometric verification of candidates from visual-word correspondences.

1. **Correspondences** come from shared visual words (no descriptor matching), for a whole
   shortlist at once (:mod:`vbow.verify.correspondences`): every query feature is paired with the
   catalog image's features that carry one of its words. Words that occur more than
   ``max_fanout`` times in either image (repeated texture) are skipped: they only add noise.
2. **Hypotheses from single correspondences.** A pair of keypoints with scale and orientation
   fixes a similarity transform on its own (Philbin et al. 2007). Up to ``max_hypotheses`` such
   hypotheses per candidate are scored against its correspondences, counting pairs whose
   position, scale ratio and rotation agree; the candidates are scored together in blocks, and
   comparisons that cannot matter are skipped exactly (:mod:`vbow.verify.hypotheses`).
3. **Model fit** (:func:`fit_consistent`). The correspondences consistent with the best
   hypothesis (loose tolerance) are passed to a robust fit of the requested model: OpenCV's USAC
   MAGSAC++ for a homography, RANSAC for an affine or similarity transform. Inliers are counted
   one-to-one by location (features stacked on one point count once). Only candidates whose
   best hypothesis has enough support get here, one OpenCV call each.

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

from vbow.errors import InvalidInputError, UnknownOptionError
from vbow.verify.correspondences import QueryWords, word_correspondences
from vbow.verify.hypotheses import (ScaleRotationBins, best_hypotheses, hypothesis_subsets,
                                    segment_medians)

__all__ = ["Verification", "QueryWords", "word_correspondences", "verify_pair", "MODELS",
           "verify_candidates", "minimum_support", "fit_consistent", "BLOCK_CORRESPONDENCES"]

logger = logging.getLogger(__name__)

Model = Literal["similarity", "affine", "homography"]
MODELS: tuple[str, ...] = ("similarity", "affine", "homography")
_MIN_POINTS = {"similarity": 2, "affine": 3, "homography": 4}
#: Inliers are counted once per square of this many (processed) pixels on each side.
_LOCATION_CELL = 2.0
#: A candidate's hypotheses share a position tolerance in chunks of this many.
_TOLERANCE_CHUNK = 64
#: :func:`verify_candidates` scores candidates in blocks of at most this many correspondences
#: (a candidate with more is a block of its own), so that a block's per-correspondence arrays
#: stay in a core's cache; a long shortlist in one block was measurably slower per candidate
#: (``benchmarks/results/verify.md``).
BLOCK_CORRESPONDENCES = 4096


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
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return verify_candidates(query_kp, pairs, np.array([0, pairs.shape[0]], np.int64),
                             db_kp[pairs[:, 1]], np.array([db_size]),
                             model=model, threshold=threshold,
                             hypothesis_tolerance=hypothesis_tolerance,
                             max_hypotheses=max_hypotheses, min_inliers=min_inliers, seed=seed)[0]


def verify_candidates(query_kp: np.ndarray, pairs: np.ndarray, pair_offsets: np.ndarray,
                      pair_db_kp: np.ndarray, db_sizes: np.ndarray, *,
                      model: str = "homography", threshold: float = 6.0,
                      hypothesis_tolerance: float = 0.08, max_hypotheses: int = 200,
                      min_inliers: int = 8, seed: int = 0,
                      block_correspondences: int = BLOCK_CORRESPONDENCES) -> list[Verification]:
    """:func:`verify_pair` for ``n`` candidate images at once, with the same results.

    The hypotheses of consecutive candidates are scored together in blocks of at most
    ``block_correspondences`` correspondences (a candidate with more is a block of its own;
    :mod:`vbow.verify.hypotheses`); only the candidates whose best hypothesis has enough
    support reach the robust fit, one OpenCV call each. A candidate's result depends only on
    its own correspondences, so the block size changes the speed, never the results.

    Parameters
    ----------
    query_kp : np.ndarray
        ``(nq, 4) float32`` query keypoints.
    pairs, pair_offsets : np.ndarray
        ``(M, 2) int`` correspondences (query feature, catalog feature within its image),
        candidate by candidate, and their ``(n + 1,) int64`` offsets
        (:meth:`QueryWords.pairs_with_many`).
    pair_db_kp : np.ndarray
        ``(M, 4) float32`` the catalog keypoint of each correspondence.
    db_sizes : np.ndarray
        ``(n, 2) int`` width and height of each candidate.
    model, threshold, hypothesis_tolerance, max_hypotheses, min_inliers, seed
        As in :func:`verify_pair`, for every candidate.
    block_correspondences : int
        Correspondences scored together at most (``>= 1``), unless one candidate has more.

    Returns
    -------
    list of Verification
        One per candidate, in order.
    """
    if model not in MODELS:
        raise UnknownOptionError("geometric model", model, MODELS)
    if int(block_correspondences) < 1:
        raise InvalidInputError(f"block_correspondences must be >= 1; got {block_correspondences}")
    pair_offsets = np.asarray(pair_offsets, np.int64)
    sizes = np.asarray(db_sizes).reshape(-1, 2)
    out: list[Verification] = []
    for lo, hi in _blocks(pair_offsets, int(block_correspondences)):
        first, last = int(pair_offsets[lo]), int(pair_offsets[hi])
        out += _verify_block(query_kp, pairs[first:last], pair_offsets[lo:hi + 1] - first,
                             pair_db_kp[first:last], sizes[lo:hi], model, threshold,
                             hypothesis_tolerance, max_hypotheses, min_inliers, seed)
    return out


def _blocks(pair_offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` runs of consecutive candidates, each with at most ``limit``
    correspondences in all or a single candidate, covering ``0..n``."""
    n = pair_offsets.size - 1
    runs, lo = [], 0
    while lo < n:
        hi = int(np.searchsorted(pair_offsets, pair_offsets[lo] + limit, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        runs.append((lo, hi))
        lo = hi
    return runs


def _verify_block(query_kp: np.ndarray, pairs: np.ndarray, pair_offsets: np.ndarray,
                  pair_db_kp: np.ndarray, db_sizes: np.ndarray, model: str, threshold: float,
                  hypothesis_tolerance: float, max_hypotheses: int, min_inliers: int,
                  seed: int) -> list[Verification]:
    """:func:`verify_candidates` for one block (offsets rebased to the block's pairs;
    ``db_sizes`` an ``(n, 2)`` array)."""
    n = pair_offsets.size - 1
    cand_of_pair = np.repeat(np.arange(n, dtype=np.int64), np.diff(pair_offsets))
    q = query_kp[pairs[:, 0]].astype(np.float64)
    d = np.asarray(pair_db_kp).astype(np.float64)
    ratio = np.log(np.maximum(q[:, 2], 1e-6) / np.maximum(d[:, 2], 1e-6))
    rotation = np.deg2rad(q[:, 3] - d[:, 3])
    need = minimum_support(model, min_inliers)
    hyp, hyp_cand = hypothesis_subsets(pair_offsets, need, max_hypotheses, seed)
    # position tolerance grows with the hypothesis scale (catalog pixels mapped to query
    # pixels): the median over chunks of 64 hypotheses of a candidate, at least `threshold`
    longer_side = np.max(db_sizes.astype(np.float64), axis=1)
    first = np.searchsorted(hyp_cand, hyp_cand, side="left")
    chunk = hyp_cand * (max_hypotheses // _TOLERANCE_CHUNK + 2) + \
        (np.arange(hyp.size) - first) // _TOLERANCE_CHUNK
    scale_of_hyp = q[hyp, 2] / np.maximum(d[hyp, 2], 1e-6)
    tol = np.maximum(threshold, segment_medians(
        (hypothesis_tolerance * longer_side[hyp_cand]) * scale_of_hyp, chunk))
    bins = ScaleRotationBins(cand_of_pair, ratio, rotation)
    supporters = best_hypotheses(q, d, ratio, rotation, bins, hyp, hyp_cand, tol, n, need)
    out = []
    for c in range(n):
        lo, hi = int(pair_offsets[c]), int(pair_offsets[c + 1])
        if supporters[c] is None:
            out.append(Verification(0, None, _EMPTY_PAIRS, hi - lo))
            continue
        consistent = np.zeros(hi - lo, bool)
        consistent[supporters[c] - lo] = True
        w, h = (int(x) for x in db_sizes[c])
        out.append(fit_consistent(q[lo:hi], d[lo:hi], pairs[lo:hi], consistent, (w, h), model,
                                  threshold, min_inliers))
    return out


def minimum_support(model: str, min_inliers: int) -> int:
    """Fewest consistent correspondences a candidate needs to be fitted with ``model``."""
    return max(_MIN_POINTS[model], int(min_inliers))


def fit_consistent(q: np.ndarray, d: np.ndarray, pairs: np.ndarray, candidate: np.ndarray,
                   db_size: tuple[int, int], model: str, threshold: float,
                   min_inliers: int) -> Verification:
    """Robust fit on the correspondences consistent with the best hypothesis, then one-to-one
    inliers among all of them (step 3 of the module docstring).

    Parameters
    ----------
    q, d : np.ndarray
        ``(m, 4) float64`` query and catalog keypoints of each correspondence.
    pairs : np.ndarray
        ``(m, 2) int64`` the correspondences (reported back for the inliers).
    candidate : np.ndarray
        ``(m,) bool`` the correspondences the model is fitted on.
    db_size, model, threshold, min_inliers
        As in :func:`verify_pair`.

    Returns
    -------
    Verification
    """
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
