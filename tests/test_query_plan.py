"""The query plan: how many candidates are ranked and verified, and query expansion."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import vbow
from vbow.query import shortlist_sizes

counts = st.integers(min_value=0, max_value=5000)


@given(n_images=counts, n_allowed=counts, top_k=st.integers(1, 300),
       shortlist=st.none() | st.integers(1, 400), config_shortlist=st.none() | st.integers(1, 400))
def test_one_rule_for_the_shortlist(n_images, n_allowed, top_k, shortlist, config_shortlist):
    n_allowed = min(n_allowed, n_images)
    cfg = vbow.get_config("sift", shortlist=config_shortlist)
    depth, n_verify = shortlist_sizes(cfg, n_images, n_allowed, top_k, True, shortlist)
    # the number verified: the argument, else the setting, else the size-dependent default
    wanted = shortlist if shortlist is not None else (
        config_shortlist if config_shortlist is not None else
        min(200, max(20, round(2 * max(n_images, 1) ** 0.5))))
    assert n_verify == min(wanted, n_allowed)
    # enough candidates are ranked to return top_k and to verify the shortlist
    assert depth == min(n_allowed, max(top_k, wanted))
    assert n_verify <= depth <= n_allowed


@given(n_allowed=counts, top_k=st.integers(1, 300), shortlist=st.none() | st.integers(1, 400))
def test_without_reranking_nothing_is_verified(n_allowed, top_k, shortlist):
    depth, n_verify = shortlist_sizes(vbow.get_config("sift"), 5000, n_allowed, top_k, False,
                                      shortlist)
    assert (depth, n_verify) == (min(top_k, n_allowed), 0)


def test_an_explicit_shortlist_below_top_k_verifies_only_the_shortlist(sift_index, catalog):
    r = sift_index.search(catalog.photos[0].image, top_k=len(catalog.names), shortlist=2)
    assert len(r) == len(catalog.names)
    assert sum(m.verified for m in r) <= 2


def test_matches_carry_the_catalog_image_size_in_original_pixels(sift_results, catalog):
    sizes = {name: (img.shape[1], img.shape[0]) for name, img in zip(catalog.names, catalog.products)}
    for r in sift_results[:4]:
        for m in r:
            assert m.catalog_size == sizes[m.key]
            assert m.to_dict()["catalog_size"] == list(sizes[m.key])


# --------------------------------------------------------- query expansion reuses the query's scores
def _expanded(index, query, expand, *, reuse):
    with index.reading() as plan:
        bag = plan.quantise(query.features)
        bow = plan.score(bag.words, bag.weights)
        allowed = plan.allowed(None)
        top, final, fusion = plan.expanded_ranking(bag, query.colour, expand, {}, allowed,
                                                   len(index), query_bow=bow if reuse else None)
        return top, final, fusion.bow, plan.reads_every_posting(bag.words)


@given(photo=st.integers(0, 23), picks=st.lists(st.integers(0, 11), min_size=1, max_size=3,
                                                unique=True))
def test_expansion_from_the_query_scores_equals_scoring_the_expanded_bag(sift_index, catalog,
                                                                         photo, picks):
    """The cosine is linear in the query vector: the query's first-stage scores plus the
    documents' part give the whole expanded bag's scores (to float32 rounding)."""
    query = sift_index.describe(catalog.photos[photo].image)
    _, _, reused, _ = _expanded(sift_index, query, picks, reuse=True)
    _, _, whole, _ = _expanded(sift_index, query, picks, reuse=False)
    np.testing.assert_allclose(reused, whole, rtol=1e-5, atol=1e-7)
    assert np.any(reused > 0)


def test_under_a_binding_budget_the_expanded_bag_is_scored_whole(index_bundle, catalog):
    index = vbow.ImageIndex.load(index_bundle)
    index.config = index.config.replace(max_postings=50)
    query = index.describe(catalog.photos[0].image)
    top_a, final_a, bow_a, reads_all = _expanded(index, query, [0, 1], reuse=True)
    top_b, final_b, bow_b, _ = _expanded(index, query, [0, 1], reuse=False)
    assert not reads_all   # the budget binds, so reusing would read other postings
    np.testing.assert_array_equal(bow_a, bow_b)
    np.testing.assert_array_equal(top_a, top_b)
