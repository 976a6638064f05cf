"""Geometric verification of a whole shortlist: correspondences for every candidate in one
vectorised pass, hypotheses and bounds in cache-sized blocks of candidates, then one robust fit
per candidate that can pass.

Only the words of the candidates are read in full; the geometry is decoded for the features
that share a word with the query.

:meth:`vbow.verify.correspondences.QueryWords.pairs_with_many` pairs the query with every
candidate at once; :func:`vbow.verify.verification.verify_candidates` scores the candidates'
hypotheses block by block and fits only the candidates whose best hypothesis has enough support.
"""

from __future__ import annotations

import numpy as np

from vbow.verify.correspondences import QueryWords
from vbow.verify.keypoint_store import KeypointStore
from vbow.verify.verification import BLOCK_CORRESPONDENCES, Verification, verify_candidates

__all__ = ["verify_shortlist"]


def verify_shortlist(query_kp: np.ndarray, matcher: QueryWords, store: KeypointStore,
                     image_ids: np.ndarray, db_sizes: np.ndarray, *, model: str = "homography",
                     threshold: float = 6.0, min_inliers: int = 8, seed: int = 0,
                     block_correspondences: int = BLOCK_CORRESPONDENCES) -> dict[int, Verification]:
    """Verify ``n`` catalog images of a store against one query.

    Parameters
    ----------
    query_kp : np.ndarray
        ``(nq, 4) float32`` query keypoints.
    matcher : QueryWords
        The query's prepared words.
    store : KeypointStore
        The catalog's words and geometry; only the geometry of features that share a word
        with the query is decoded.
    image_ids : np.ndarray
        ``(n,) int`` the candidates' ids in ``store``.
    db_sizes : np.ndarray
        ``(n, 2) int`` width and height of each candidate image.
    model, threshold, min_inliers, seed
        As in :func:`vbow.verify.verification.verify_pair`.
    block_correspondences : int
        Correspondences whose hypotheses are scored together at most
        (:func:`vbow.verify.verification.verify_candidates`); a speed setting only.

    Returns
    -------
    dict of int to Verification
        By position in ``image_ids``, the candidates that verified (inliers > 0): what
        :func:`vbow.verify.verification.verify_pair` gives each of them.
    """
    offsets, words, rows = store.gather_words(image_ids)
    pairs, pair_offsets = matcher.pairs_with_many(offsets, words)
    of_image = np.repeat(np.arange(offsets.size - 1), np.diff(pair_offsets))
    pair_db_kp = store.keypoints_at(rows[offsets[of_image] + pairs[:, 1]])
    found = verify_candidates(query_kp, pairs, pair_offsets, pair_db_kp, db_sizes, model=model,
                              threshold=threshold, min_inliers=min_inliers, seed=seed,
                              block_correspondences=block_correspondences)
    return {i: v for i, v in enumerate(found) if v.inliers > 0}
