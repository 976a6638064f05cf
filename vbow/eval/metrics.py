"""Retrieval metrics: N-S score, recall@k and average precision."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["average_precision", "recall_at_k", "ns_score"]


def average_precision(ranked_relevant: Sequence[bool] | np.ndarray, n_relevant: int) -> float:
    """Average precision of one ranked list.

    Parameters
    ----------
    ranked_relevant : array-like of bool
        ``(n,)`` whether each returned item (best first) is relevant.
    n_relevant : int
        Relevant items in the whole collection (those not returned count as missed).

    Returns
    -------
    float
        AP in [0, 1]; 0 when ``n_relevant`` is 0.
    """
    rel = np.asarray(ranked_relevant, dtype=bool)
    if n_relevant <= 0:
        return 0.0
    hits = np.cumsum(rel)
    precision_at_hits = hits[rel] / (np.flatnonzero(rel) + 1)
    return float(precision_at_hits.sum() / n_relevant)


def recall_at_k(ranked_relevant: Sequence[bool] | np.ndarray, k: int = 1) -> float:
    """1.0 if any of the first ``k`` items is relevant, else 0.0."""
    return float(np.any(np.asarray(ranked_relevant, dtype=bool)[:k]))


def ns_score(ranked_relevant_with_query: Sequence[bool] | np.ndarray) -> int:
    """UKBench N-S score of one query: relevant items among the top 4, the query itself counted."""
    return int(np.sum(np.asarray(ranked_relevant_with_query, dtype=bool)[:4]))
