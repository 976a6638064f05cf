"""Tests of classification and "more like this" (vbow.apps.classify, vbow.apps.similar)."""

from __future__ import annotations

import numpy as np
import pytest

import vbow
from vbow.apps.classify import accuracy_coverage, classify
from vbow.apps.similar import more_like_this


def test_photos_get_their_products_category(sift_index, catalog):
    right = []
    for p in catalog.photos[::2]:
        c = classify(sift_index, p.image, min_confidence=0.0)
        right.append(c.label == catalog.categories[p.product])
    assert np.mean(right) >= 0.85


def test_unknown_products_and_blank_photos_abstain(sift_index, held_out):
    _, photos = held_out
    for p in photos:
        c = classify(sift_index, p.image)
        assert c.label is None and c.reason in ("no_verified_candidate", "weak_evidence")
    blank = classify(sift_index, np.zeros((200, 200, 3), np.uint8))
    assert (blank.label, blank.reason) == (None, "no_features")


def test_bad_arguments_raise_typed_errors(sift_index, catalog):
    with pytest.raises(vbow.InvalidInputError):
        classify(sift_index, catalog.photos[0].image, field="")
    with pytest.raises(vbow.InvalidInputError):
        classify(sift_index, catalog.photos[0].image, min_confidence=2.0)


def test_accuracy_coverage_curve():
    conf = np.array([0.9, 0.1, 0.5, 0.7])
    correct = np.array([True, False, False, True])
    curve = accuracy_coverage(conf, correct)
    np.testing.assert_allclose(curve["coverage"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve["accuracy"], [1.0, 1.0, 2 / 3, 0.5])


def test_more_like_this_leaves_out_the_item_and_its_instance(sift_index, catalog):
    key = catalog.names[0]
    out = more_like_this(sift_index, catalog.products[0], top_k=5, exclude=key)
    keys = [m.key for m in out]
    assert key not in keys and len(keys) == 5 and len(set(keys)) == 5
    assert all(k in sift_index for k in keys)
