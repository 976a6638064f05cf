"""The query plan's rule for how many candidates are ranked and verified."""

from __future__ import annotations

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
