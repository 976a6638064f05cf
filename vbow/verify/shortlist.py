"""Geometric verification of a whole shortlist: correspondences, hypotheses and bounds for
every candidate in one vectorised pass, then one robust fit per candidate that can pass.

:meth:`vbow.verify.correspondences.QueryWords.pairs_with_many` pairs the query with every
candidate at once; :func:`vbow.verify.verification.verify_candidates` scores all candidates'
hypotheses together and fits only the candidates whose best hypothesis has enough support.
"""

from __future__ import annotations

import numpy as np

from vbow.verify.correspondences import QueryWords
from vbow.verify.verification import Verification, verify_candidates

__all__ = ["verify_shortlist"]


def verify_shortlist(query_kp: np.ndarray, matcher: QueryWords, db_offsets: np.ndarray,
                     db_words: np.ndarray, db_kp: np.ndarray, db_sizes: np.ndarray, *,
                     model: str = "homography", threshold: float = 6.0, min_inliers: int = 8,
                     seed: int = 0) -> dict[int, Verification]:
    """Verify ``n`` candidate images against one query.

    Parameters
    ----------
    query_kp : np.ndarray
        ``(nq, 4) float32`` query keypoints.
    matcher : QueryWords
        The query's prepared words.
    db_offsets, db_words, db_kp : np.ndarray
        The candidates' features in CSR form
        (:meth:`vbow.verify.keypoint_store.KeypointStore.gather`): ``(n + 1,) int64`` offsets,
        ``(F,) int`` words, ``(F, 4) float32`` keypoints.
    db_sizes : np.ndarray
        ``(n, 2) int`` width and height of each candidate image.
    model, threshold, min_inliers, seed
        As in :func:`vbow.verify.verification.verify_pair`.

    Returns
    -------
    dict of int to Verification
        By position in the shortlist, the candidates that verified (inliers > 0): what
        :func:`vbow.verify.verification.verify_pair` gives each of them.
    """
    pairs, pair_offsets = matcher.pairs_with_many(db_offsets, db_words)
    found = verify_candidates(query_kp, db_kp, db_offsets, pairs, pair_offsets, db_sizes,
                              model=model, threshold=threshold, min_inliers=min_inliers, seed=seed)
    return {i: v for i, v in enumerate(found) if v.inliers > 0}
