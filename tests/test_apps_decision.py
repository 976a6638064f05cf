"""Tests of the decision (vbow.apps.decision): a match, or none, with exact synthetic truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.apps.decision import (EVIDENCE_NAMES, REASONS, Decision, DecisionModel, decide,
                                match_evidence, search_decided)
from vbow.errors import InvalidInputError
from vbow.results import Match, SearchResult


def _match(key: str, inliers: int, points: np.ndarray, transform: np.ndarray | None) -> Match:
    return Match(key, float(inliers), 0.1, 0.1, inliers, transform,
                 np.asarray(points, np.float32), {}, 0)


def test_evidence_of_a_known_geometry():
    # catalog 100 x 100 placed by a pure translation (+50, +20) in a 400 x 300 photo; the 4
    # inliers span the catalog square [0, 50]^2: a quarter of the catalog image and a quarter
    # of its visible outline
    t = np.array([[1, 0, 50], [0, 1, 20], [0, 0, 1]], np.float64)
    cat = np.array([[0, 0], [50, 0], [50, 50], [0, 50]], np.float64)
    pts = np.c_[cat + [50, 20], cat]
    e = match_evidence(_match("A", 4, pts, t), n_query_features=40, photo_size=(400, 300),
                       catalog_size=(100, 100))
    assert e.inliers == 4
    assert e.inlier_ratio == pytest.approx(0.1)
    assert e.photo_coverage == pytest.approx(0.25)
    assert e.catalog_coverage == pytest.approx(0.25)
    assert e.vector()[0] == pytest.approx(np.log(5.0))


def test_evidence_counts_only_the_visible_part_of_the_outline():
    # the catalog image hangs half outside the photo (x from -50 to 50): only 50 x 100 is
    # visible, and inliers covering that visible half cover the whole visible outline
    t = np.array([[1, 0, -50], [0, 1, 0], [0, 0, 1]], np.float64)
    q = np.array([[0, 0], [50, 0], [50, 100], [0, 100]], np.float64)
    pts = np.c_[q, q + [50, 0]]
    e = match_evidence(_match("A", 4, pts, t), n_query_features=4, photo_size=(200, 200),
                       catalog_size=(100, 100))
    assert e.photo_coverage == pytest.approx(1.0)
    assert e.catalog_coverage == pytest.approx(0.5)


def test_unverified_match_has_no_evidence():
    assert match_evidence(_match("A", 0, np.zeros((0, 4)), None), n_query_features=10,
                          photo_size=(10, 10), catalog_size=(10, 10)) is None


@given(st.integers(0, 2**31 - 1), st.sampled_from([0.01, 0.05, 0.2]))
def test_fit_threshold_meets_the_false_accept_rate_on_the_negatives(seed, max_far):
    rng = np.random.default_rng(seed)
    pos = rng.normal([4.0, 0.2, 0.6, 0.5], 0.5, size=(80, 4))
    neg = rng.normal([2.5, 0.03, 0.3, 0.2], 0.5, size=(120, 4))
    m = DecisionModel.fit(pos, neg, max_far=max_far, negatives_unverified=30)
    conf = m.confidence(neg)
    assert np.all((conf >= 0) & (conf <= 1))
    assert int((conf >= m.threshold).sum()) <= int(np.floor(max_far * 150))
    # more inliers never lower the confidence when the fitted weight is positive
    if m.weights[0] > 0:
        more = neg.copy()
        more[:, 0] += 1.0
        assert np.all(m.confidence(more) >= conf - 1e-12)


def test_fit_separates_well_separated_classes():
    rng = np.random.default_rng(0)
    pos = rng.normal([5.0, 0.3, 0.7, 0.6], 0.1, size=(50, 4))
    neg = rng.normal([2.0, 0.02, 0.2, 0.1], 0.1, size=(50, 4))
    m = DecisionModel.fit(pos, neg)
    assert m.confidence(pos).min() > 0.9 and m.confidence(neg).max() < 0.1


def test_model_round_trips_through_json_and_rejects_bad_values():
    m = DecisionModel.default()
    again = DecisionModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    with pytest.raises(InvalidInputError):
        DecisionModel.from_dict({"weights": [1, 2]})
    with pytest.raises(InvalidInputError):
        DecisionModel((1.0,) * 3, 0.0, (0.0,) * 4, (1.0,) * 4, 0.5)
    with pytest.raises(InvalidInputError):
        DecisionModel((1.0,) * 4, 0.0, (0.0,) * 4, (1.0,) * 4, 1.5)
    with pytest.raises(InvalidInputError):
        DecisionModel.fit(np.zeros((1, 4)), np.zeros((5, 4)))
    assert len(EVIDENCE_NAMES) == 4 and set(REASONS) >= {"accepted", "no_features"}


def test_no_features_and_no_verified_candidate_are_none_with_a_reason():
    empty = SearchResult("q", ())
    d = decide(empty, n_query_features=0, photo_size=(10, 10), catalog_size_of=lambda k: (1, 1))
    assert (d.key, d.reason, d.confidence) == (None, "no_features", 0.0)
    unverified = SearchResult("q", (_match("A", 0, np.zeros((0, 4)), None),))
    d = decide(unverified, n_query_features=50, photo_size=(10, 10),
               catalog_size_of=lambda k: (1, 1))
    assert (d.key, d.reason, d.confidence) == (None, "no_verified_candidate", 0.0)


def test_black_image_is_none(sift_index):
    r = search_decided(sift_index, np.zeros((480, 640, 3), np.uint8))
    assert r.decision.key is None and r.decision.reason == "no_features"
    assert r.to_dict()["decision"]["accepted"] is False


def test_catalog_photos_are_accepted_and_unknown_products_rejected(sift_index, catalog,
                                                                   held_out):
    _, unknown_photos = held_out
    accepted_right = [search_decided(sift_index, p.image).decision.key == catalog.names[p.product]
                      for p in catalog.photos[::3]]
    assert np.mean(accepted_right) >= 0.85
    for p in unknown_photos:
        d = search_decided(sift_index, p.image).decision
        assert d.key is None and d.reason in ("no_verified_candidate", "weak_evidence")


def test_the_decision_is_in_the_result_json(sift_index, catalog):
    p = catalog.photos[0]
    out = search_decided(sift_index, p.image).to_dict()
    assert out["decision"]["key"] == catalog.names[p.product]
    assert 0.0 <= out["decision"]["confidence"] <= 1.0
    assert out["decision"]["evidence"]["inliers"] == out["results"][0]["inliers"] or \
        out["decision"]["evidence"]["key"] != out["results"][0]["key"]


def test_decision_dataclass_json():
    d = Decision(None, 0.0, "no_features", None, 0.5)
    assert not d.accepted and json.dumps(d.to_dict())
