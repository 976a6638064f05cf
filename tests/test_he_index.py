"""ImageIndex with Hamming embedding (Config.hamming_embedding): built, searched, saved, loaded
and extended, against the same index without it and against its own copies."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import N_PRODUCTS, SIFT_SETTINGS

import vbow
from vbow.errors import InvalidInputError


@pytest.fixture(scope="module")
def he_pair(catalog):
    """The same catalog indexed with and without Hamming embedding (same vocabulary)."""
    he = vbow.ImageIndex("sift", hamming_embedding=True, **SIFT_SETTINGS)
    he.build(catalog.products, keys=catalog.names)
    feats = [he.describe(p) for p in catalog.products]
    plain = vbow.ImageIndex("sift", **SIFT_SETTINGS)
    plain.vocabulary = he.vocabulary
    plain._clear()
    plain.add_features(feats, catalog.names)
    return he, plain


def _assert_same_first_stage(expected, index, photos):
    """Both indexes give every photo the same first-stage word scores, key by key."""
    for photo in photos:
        q = expected.describe(photo.image)
        a = expected.search_features(q, N_PRODUCTS, rerank=False)
        b = index.search_features(q, N_PRODUCTS, rerank=False)
        assert {m.key: round(m.bow_score, 5) for m in a.matches} == \
            {m.key: round(m.bow_score, 5) for m in b.matches}


def test_he_search_finds_the_products_and_scores_at_most_the_plain_cosine(he_pair, catalog):
    he, plain = he_pair
    found = 0
    for photo in catalog.photos:
        q = he.describe(photo.image)
        a = he.search_features(q, top_k=N_PRODUCTS, rerank=False)
        b = plain.search_features(q, top_k=N_PRODUCTS, rerank=False)
        found += a.best.key == catalog.names[photo.product]
        bow_he = {m.key: m.bow_score for m in a.matches}
        bow_plain = {m.key: m.bow_score for m in b.matches}
        # the kernel is at most 1: no image scores more than its plain cosine
        assert all(bow_he[k] <= bow_plain[k] + 1e-6 for k in bow_he)
    assert found >= 0.8 * len(catalog.photos)
    # and it is selective: somewhere the scores differ
    q = he.describe(catalog.photos[0].image)
    assert not np.allclose([m.bow_score for m in he.search_features(q, 5, rerank=False).matches],
                           [m.bow_score for m in plain.search_features(q, 5, rerank=False).matches])


def test_he_index_round_trips_through_a_bundle(he_pair, catalog, tmp_path):
    he, _ = he_pair
    again = vbow.ImageIndex.load(he.save(tmp_path / "he.vbow"))
    assert again.vocabulary.has_embedding
    for photo in catalog.photos[:6]:
        q = he.describe(photo.image)
        a, b = he.search_features(q, 5), again.search_features(q, 5)
        assert [m.key for m in a.matches] == [m.key for m in b.matches]
        np.testing.assert_allclose([m.score for m in a.matches], [m.score for m in b.matches],
                                   rtol=1e-6)


def test_extending_equals_adding_directly(he_pair, catalog, tmp_path):
    he, _ = he_pair
    half = N_PRODUCTS // 2
    first = vbow.ImageIndex.load(he.save(tmp_path / "a.vbow"))
    first.remove(catalog.names[half:])
    second = vbow.ImageIndex.load(he.save(tmp_path / "b.vbow"))
    second.remove(catalog.names[:half])
    first.extend(second)
    _assert_same_first_stage(he, first, catalog.photos[:8])


def test_add_quantised_with_signatures_equals_adding_the_features(he_pair, catalog):
    """Differential: words and signatures computed outside the index, given to add_quantised,
    index the same postings as add_features."""
    from vbow.vocab.training import words_and_signatures

    he, _ = he_pair
    feats = [he.describe(p) for p in catalog.products]
    pairs = words_and_signatures(he.vocabulary, [f.features for f in feats], True)
    quantised = vbow.ImageIndex("sift", hamming_embedding=True, **SIFT_SETTINGS)
    quantised.vocabulary = he.vocabulary
    quantised._clear()
    quantised.add_quantised([w for w, _ in pairs], [f.features.keypoints for f in feats],
                            np.stack([f.colour for f in feats]),
                            np.array([f.features.image_size for f in feats]), catalog.names,
                            scales=np.array([f.scale for f in feats], np.float32),
                            signatures=[s for _, s in pairs])
    _assert_same_first_stage(he, quantised, catalog.photos[:8])


def test_add_quantised_checks_signatures(he_pair):
    he, plain = he_pair
    args = ([np.zeros(2, np.int64)], [np.zeros((2, 4), np.float32)],
            np.zeros((1, he.config.colour.n_bins), np.float32), np.array([[10, 10]]), ["x"])
    with pytest.raises(InvalidInputError, match="signatures"):
        he.add_quantised(*args)  # Hamming embedding needs them
    with pytest.raises(InvalidInputError, match="signatures"):
        he.add_quantised(*args, signatures=[np.zeros(3, np.uint64)])  # one per feature
    with pytest.raises(InvalidInputError, match="signatures"):
        he.add_quantised(*args, signatures=[np.zeros(2, np.int64)])  # uint64
    with pytest.raises(InvalidInputError, match="hamming_embedding"):
        plain.add_quantised(*args, signatures=[np.zeros(2, np.uint64)])
    assert "x" not in he.keys and "x" not in plain.keys


def test_a_saved_empty_index_takes_signed_postings(he_pair, catalog, tmp_path):
    """An empty bundle (the vocabulary only) opened with hamming_embedding=True indexes with
    signatures, as a fresh index does."""
    he, _ = he_pair
    empty = vbow.ImageIndex("sift", **SIFT_SETTINGS)
    empty.vocabulary = he.vocabulary
    empty._clear()
    loaded = vbow.ImageIndex.load(empty.save(tmp_path / "empty.vbow"), mmap=False)
    loaded.config = he.config
    feats = [he.describe(p) for p in catalog.products]
    loaded.add_features(feats, catalog.names)
    _assert_same_first_stage(he, loaded, catalog.photos[:1])
