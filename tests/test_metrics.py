"""vbow.eval.metrics against independent formulas (and scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from vbow.eval.metrics import average_precision, ns_score, recall_at_k


def ap_reference(ranked: list[bool], n_relevant: int) -> float:
    """AP = (1/R) * sum over relevant ranks k of precision@k, written as a loop."""
    if n_relevant <= 0:
        return 0.0
    hits, total = 0, 0.0
    for k, rel in enumerate(ranked, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / n_relevant


@given(ranked=st.lists(st.booleans(), max_size=30), missed=st.integers(0, 5))
def test_average_precision_matches_the_definition(ranked, missed):
    n_relevant = sum(ranked) + missed
    assert average_precision(ranked, n_relevant) == pytest.approx(ap_reference(ranked, n_relevant))
    assert 0 <= average_precision(ranked, n_relevant) <= 1


@given(ranked=st.lists(st.booleans(), min_size=1, max_size=30))
def test_average_precision_matches_sklearn_when_everything_is_ranked(ranked):
    if not any(ranked):
        return
    scores = -np.arange(len(ranked), dtype=float)       # best first
    expected = average_precision_score(np.array(ranked, int), scores)
    assert average_precision(ranked, sum(ranked)) == pytest.approx(expected)


def test_average_precision_known_values():
    assert average_precision([True, False, True], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, True], 4) == pytest.approx(0.5 / 4)
    assert average_precision([], 3) == 0
    assert average_precision([True], 0) == 0
    assert average_precision(np.array([True, True, True]), 3) == 1


@given(ranked=st.lists(st.booleans(), max_size=12), k=st.integers(1, 12))
def test_recall_at_k(ranked, k):
    assert recall_at_k(ranked, k) == (1.0 if True in ranked[:k] else 0.0)


@given(ranked=st.lists(st.booleans(), max_size=12))
def test_ns_score_counts_relevant_in_top_four(ranked):
    assert ns_score(ranked) == sum(ranked[:4])
    assert 0 <= ns_score(ranked) <= 4


def test_ns_score_ukbench_example():
    # the query itself first, two more of its group of four in the top four
    assert ns_score([True, True, False, True, True]) == 3
    assert ns_score([True] * 10) == 4
