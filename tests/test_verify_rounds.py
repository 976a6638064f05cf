"""Verification in rounds with an early stop (:mod:`vbow.verify.rounds`) and its use by search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import vbow
from vbow.errors import InvalidInputError
from vbow.verify.rounds import EarlyStop, verify_in_rounds
from vbow.verify.verification import Verification

_NO_PAIRS = np.zeros((0, 2), np.int64)


def _fake_verifier(inliers: list[int]):
    """``verify(lo, hi)`` over candidates with the given inlier counts, and its call log."""
    calls: list[tuple[int, int]] = []

    def verify(lo: int, hi: int) -> dict[int, Verification]:
        calls.append((lo, hi))
        return {i: Verification(inliers[i], np.eye(3), _NO_PAIRS, inliers[i])
                for i in range(lo, hi) if inliers[i] > 0}
    return verify, calls


def _clear(prefix: list[int], rule: EarlyStop) -> bool:
    """The rule as its docstring states it, on a plain list."""
    ranked = sorted(prefix, reverse=True) + [0]
    return bool(prefix) and ranked[0] >= rule.inliers and ranked[0] >= rule.ratio * ranked[1]


@given(inliers=st.lists(st.integers(0, 60) | st.just(0), max_size=120),
       first_round=st.integers(1, 40), need=st.integers(1, 40),
       ratio=st.sampled_from([1.0, 1.5, 2.0, 3.5]))
@example(inliers=[0, 0, 0, 20, 0], first_round=4, need=15, ratio=1.5)  # stops one short of the end
@example(inliers=[0, 0, 20, 0, 0], first_round=2, need=15, ratio=1.5)  # a winner after round 1
def test_the_first_round_alone_is_verified_only_when_it_has_a_clear_winner(
        inliers, first_round, need, ratio):
    rule = EarlyStop(need, ratio, first_round)
    verify, calls = _fake_verifier(inliers)
    found, n_verified = verify_in_rounds(len(inliers), verify, rule)
    n = len(inliers)
    # the reference: the rule is checked once, on the first round, when a rest remains
    stops = n > first_round and _clear(inliers[:first_round], rule)
    assert n_verified == (first_round if stops else n)
    # at most two calls: the first round, then the whole rest in one batch
    expected_calls = [] if n == 0 else [(0, n)] if n <= first_round else \
        [(0, first_round)] if stops else [(0, first_round), (first_round, n)]
    assert calls == expected_calls
    assert {i: v.inliers for i, v in found.items()} == \
        {i: inliers[i] for i in range(n_verified) if inliers[i] > 0}


@given(inliers=st.lists(st.integers(0, 60), max_size=80))
def test_without_a_rule_one_call_verifies_everything(inliers):
    verify, calls = _fake_verifier(inliers)
    found, n_verified = verify_in_rounds(len(inliers), verify, None)
    assert n_verified == len(inliers)
    assert calls == ([(0, len(inliers))] if inliers else [])
    assert sorted(found) == [i for i, k in enumerate(inliers) if k > 0]


def test_a_shortlist_of_one_round_is_one_batch():
    verify, calls = _fake_verifier([50, 0, 0, 0])
    _, n_verified = verify_in_rounds(4, verify, EarlyStop(1, 1.0, 4))
    assert (n_verified, calls) == (4, [(0, 4)])


@pytest.mark.parametrize("counts, clear", [
    ([], False), ([14], False), ([15], True), ([0, 15, 10], True), ([15, 11], False),
    ([30, 20], True), ([30, 21], False), ([16, 16], False)])
def test_the_clear_winner_rule(counts, clear):
    assert EarlyStop(15, 1.5, 10).clear_winner(np.array(counts, np.int64)) is clear


@pytest.mark.parametrize("bad", [dict(inliers=0), dict(ratio=0.9), dict(ratio=float("nan")),
                                 dict(first_round=0)])
def test_a_rule_out_of_range_is_refused(bad):
    args = {"inliers": 15, "ratio": 1.5, "first_round": 32, **bad}
    with pytest.raises(InvalidInputError):
        EarlyStop(**args)


@pytest.mark.parametrize("bad", [dict(early_stop_inliers=0), dict(early_stop_ratio=0.5),
                                 dict(early_stop_round=0), dict(early_stop_inliers=2.5)])
def test_early_stop_settings_out_of_range_are_refused(bad):
    with pytest.raises(InvalidInputError, match="early_stop"):
        vbow.get_config("sift", **bad)


def test_disabled_early_stop_has_no_rule():
    assert vbow.get_config("sift", early_stop_inliers=None).early_stop() is None
    assert vbow.get_config("sift").early_stop() == EarlyStop(15, 1.5, 32)


# ------------------------------------------------------------------- through the search
@pytest.fixture(scope="module")
def stopping_index(index_bundle):
    """The session index with a first round of 2 candidates and a rule every clear match
    meets."""
    index = vbow.ImageIndex.load(index_bundle)
    index.config = index.config.replace(early_stop_inliers=8, early_stop_ratio=2.0,
                                        early_stop_round=2, shortlist=12)
    return index


def test_early_stop_verifies_fewer_with_the_same_verdicts(stopping_index, catalog):
    stopped_early = 0
    n = len(catalog.names)
    for photo in catalog.photos:
        q = stopping_index.describe(photo.image)
        early = stopping_index.search_features(q, top_k=n)
        full = stopping_index.search_features(q, top_k=n, verify_all=True)
        assert full.n_verified == n
        assert 1 <= early.n_verified <= n
        stopped_early += early.n_verified < n
        # a candidate verified in a round gets what the one batch gives it
        full_inliers = {m.key: m.inliers for m in full}
        for m in early:
            if m.verified:
                assert m.inliers == full_inliers[m.key]
        assert sum(m.verified for m in early) <= early.n_verified
    assert stopped_early >= len(catalog.photos) // 2


def test_without_the_rule_search_equals_verify_all(stopping_index, index_bundle, catalog):
    off = vbow.ImageIndex.load(index_bundle)
    off.config = stopping_index.config.replace(early_stop_inliers=None)
    for photo in catalog.photos[:6]:
        q = off.describe(photo.image)
        a = stopping_index.search_features(q, top_k=5, verify_all=True)
        b = off.search_features(q, top_k=5)
        assert [(m.key, m.score, m.inliers) for m in a] == [(m.key, m.score, m.inliers) for m in b]
        assert a.n_verified == b.n_verified


def test_verify_all_must_be_a_bool(stopping_index, catalog):
    with pytest.raises(InvalidInputError, match="verify_all"):
        stopping_index.search(catalog.photos[0].image, verify_all="yes")


def test_results_report_how_many_were_verified(sift_index, catalog):
    r = sift_index.search(catalog.photos[0].image, top_k=3, shortlist=5)
    assert r.n_verified == 5 and r.to_dict()["n_verified"] == 5
    assert sift_index.search(catalog.photos[0].image, top_k=3, rerank=False).n_verified == 0
