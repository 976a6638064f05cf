"""vbow.search.fusion: lazily evaluated fused scores against a dense recomputation, the pool against
brute-force sorting, and the interleaved verification shortlist."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbow.search.fusion import FusedScores, interleaved_shortlist, select_pool

LAYOUTS = ["random", "ascending", "descending", "one_block", "mostly_zero"]


def make_bow(rng: np.random.Generator, n: int, layout: str) -> np.ndarray:
    """``(n,) float32`` non-negative scores laid out along the ids in one of LAYOUTS."""
    bow = rng.random(n).astype(np.float32)
    bow[rng.random(n) < 0.3] = 0
    if layout == "ascending":
        bow.sort()
    elif layout == "descending":
        bow[::-1].sort()
    elif layout == "one_block":  # the high scores all in one stretch of ids
        bow *= 0.1
        start = int(rng.integers(0, n))
        bow[start:start + n // 50] += 1
    elif layout == "mostly_zero":
        bow[rng.random(n) < 0.99] = 0
    return bow


@pytest.mark.parametrize("n", [5_000, 300_000])  # 300k takes the sampled-threshold path
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([1, 7, 500, 5_000, 40_000]),
       layout=st.sampled_from(LAYOUTS))
@settings(max_examples=25, deadline=None)
def test_pool_holds_the_best_positive_scores(n, seed, size, layout):
    bow = make_bow(np.random.default_rng(seed), n, layout)
    pool = select_pool(bow, size)
    positive = np.flatnonzero(bow > 0)
    assert pool.dtype == np.int64 and np.all(np.diff(pool) > 0)
    assert pool.size == min(size, positive.size)
    assert np.all(bow[pool] > 0)
    rest = np.setdiff1d(np.arange(n), pool)
    if pool.size and rest.size:
        assert bow[rest].max() <= bow[pool].min()


def dense_reference(bow, live, allowed, pool, colour, weight, bonus_ids, bonus, pool_size):
    """The fused rule written out densely: z(bow) over the live images, or over the
    ``pool_size`` best live ones by words when there are more; z(colour) over the pool, the
    pool's lowest colour term elsewhere, plus bonus, -inf where not allowed."""
    b = bow.astype(np.float64)
    population = np.sort(b[live])[::-1][:pool_size]
    mean, std = population.mean(), population.std() + 1e-9
    out = (b - mean) / std
    if weight > 0 and pool.size:
        zc = (colour - colour.mean()) / (colour.std() + 1e-9)
        out += weight * zc.min()
        out[pool] += weight * (zc - zc.min())
    np.add.at(out, bonus_ids, bonus)
    out[~allowed] = -np.inf
    return out


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), pool_size=st.integers(1, 60),
       weight=st.sampled_from([0.0, 1.0, 5.0]), n_bonus=st.integers(0, 6),
       p_allowed=st.sampled_from([0.02, 0.5, 1.0]), k=st.integers(1, 80))
@settings(max_examples=150, deadline=None)
def test_fused_scores_agree_with_the_dense_rule(seed, n, pool_size, weight, n_bonus, p_allowed, k):
    rng = np.random.default_rng(seed)
    live = rng.random(n) < 0.9
    live[0] = True
    bow = make_bow(rng, n, "random")
    bow[~live] = 0
    allowed = live & (rng.random(n) < p_allowed)
    covers_all = int(live.sum()) <= pool_size
    pool = np.flatnonzero(live) if covers_all else select_pool(bow, pool_size)
    colour = rng.random(pool.size)
    fusion = FusedScores(bow, allowed, int(live.sum()) if covers_all else pool_size, pool, colour,
                         weight, covers_all)
    bonus_ids = rng.integers(0, n, n_bonus)
    bonus = rng.integers(1, 30, n_bonus).astype(np.float64)
    if n_bonus:
        fusion.add_bonus(bonus_ids, bonus)
    expected = dense_reference(bow, live, allowed, pool, colour, weight, bonus_ids, bonus, pool_size)
    np.testing.assert_allclose(fusion.dense(), expected, rtol=1e-9, atol=1e-6)
    ids = rng.integers(0, n, 20)
    np.testing.assert_allclose(fusion.at(ids), expected[ids], rtol=1e-9, atol=1e-6)
    want_colour = np.zeros(n)
    want_colour[pool] = colour
    np.testing.assert_allclose(fusion.colour_at(ids), want_colour[ids])

    n_ok = int(np.count_nonzero(allowed))
    top = fusion.best(k)
    assert top.size == min(k, n_ok) and allowed[top].all() and np.unique(top).size == top.size
    np.testing.assert_allclose(expected[top], np.sort(expected[allowed])[::-1][:top.size],
                               rtol=1e-9, atol=1e-6)
    by_words = fusion.best(k, by_words=True)
    assert by_words.size == min(k, n_ok) and allowed[by_words].all()
    np.testing.assert_array_equal(bow[by_words], np.sort(bow[allowed])[::-1][:by_words.size])


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 400), pool_size=st.integers(1, 15),
       n_more=st.integers(1, 5_000), weight=st.sampled_from([0.0, 5.0]))
@settings(max_examples=60, deadline=None)
def test_images_without_a_shared_word_do_not_change_a_large_catalogs_scores(seed, n, pool_size,
                                                                           n_more, weight):
    """Past the pool's size, a catalog grown by images that share no word with the query ranks
    and scores the others as before: the fused scale does not drift with the catalog's size."""
    rng = np.random.default_rng(seed)
    bow = make_bow(rng, n, "random")
    bow[:pool_size + 1] += 0.01  # more positive scores than the pool holds
    grown = np.concatenate([bow, np.zeros(n_more, np.float32)])
    scores = []
    for b in (bow, grown):
        pool = select_pool(b, pool_size)
        colour = np.linspace(0.2, 0.9, pool.size)[np.argsort(pool)]
        fusion = FusedScores(b, np.ones(b.size, bool), pool_size, pool, colour, weight, False)
        scores.append(fusion.at(np.arange(n)))
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 60), n=st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_verification_shortlist_takes_the_best_by_fused_and_by_words(seed, n_docs, n):
    """The first n candidates verified hold the best ceil(n/2) by fused score and the best
    floor(n/2) by words alone (fewer if not enough allowed images), each once; the rest of
    the fused list follows."""
    rng = np.random.default_rng(seed)
    bow = rng.random(n_docs).astype(np.float32)
    allowed = rng.random(n_docs) < 0.8
    if not allowed.any():
        allowed[0] = True
    fusion = FusedScores(bow, allowed, n_docs, np.arange(n_docs), rng.random(n_docs), 5.0, True)
    fused = fusion.dense()
    n_allowed = int(allowed.sum())
    depth = min(n_allowed, max(n, 3))
    ranked = np.flatnonzero(allowed)[np.argsort(-fused[allowed], kind="stable")]
    top = ranked[:depth]
    n_verify = min(n, depth)
    order = interleaved_shortlist(top, fusion.best(n_verify, by_words=True), n_verify)
    assert len(set(order.tolist())) == order.size           # no duplicates
    assert set(top.tolist()) <= set(order.tolist())         # nothing from the fused list lost
    assert allowed[order].all()
    verified = set(order[:n_verify].tolist())
    by_words = np.flatnonzero(allowed)[np.argsort(-bow[allowed], kind="stable")]
    assert set(ranked[:(n_verify + 1) // 2].tolist()) <= verified
    assert set(by_words[:n_verify // 2].tolist()) <= verified
    assert order[n_verify:].tolist() == [d for d in top.tolist() if d not in verified]
