"""Storage paths for large catalogs: packed postings, raw-word batches, postings budgets,
streamed (lazy) bundle arrays and format-1 compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbow.persist.bundle import LazyArray, load_bundle, save_bundle
from vbow.errors import InvalidInputError
from vbow.search.inverted_index import InvertedIndex
from vbow.search.postings import MAX_DOCS, TF_CAP, pack_postings, unpack_postings
from vbow.verify.keypoint_store import KeypointStore
from vbow.search.weighting import bag_of_words, tfidf


@given(docs=st.lists(st.integers(0, MAX_DOCS - 1), max_size=50),
       seed=st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip_and_order(docs, seed):
    rng = np.random.default_rng(seed)
    d = np.array(sorted(docs), np.int64)
    tf = rng.integers(1, 300, d.shape[0])
    packed = pack_postings(d, tf)
    assert packed.dtype == np.uint32
    got_d, got_tf = unpack_postings(packed)
    np.testing.assert_array_equal(got_d, d)
    np.testing.assert_array_equal(got_tf, np.minimum(tf, TF_CAP))
    assert np.all(np.diff(packed.astype(np.int64)) >= 0) or d.size < 2 or np.any(np.diff(d) == 0)


def random_images(rng, n_images, n_words, max_feats=30):
    counts = rng.integers(0, max_feats + 1, n_images)
    offsets = np.zeros(n_images + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    # skewed word ids so that repeats within an image are common
    words = np.minimum((rng.pareto(1.2, int(offsets[-1])) * 2).astype(np.int64), n_words - 1)
    return offsets, words


@given(seed=st.integers(0, 2**32 - 1), n_images=st.integers(0, 30),
       n_words=st.sampled_from([1, 7, 300, 70000]), batches=st.integers(1, 4))
@settings(deadline=None, max_examples=60)
def test_add_words_equals_add_of_bags(seed, n_images, n_words, batches):
    """Raw per-feature words (radix-sorted in one batch) give the same postings and norms as
    per-image bags of words."""
    rng = np.random.default_rng(seed)
    idf = (rng.random(n_words) * 4).astype(np.float32)
    offsets, words = random_images(rng, n_images, n_words)
    a, b = InvertedIndex(n_words), InvertedIndex(n_words)
    for part in np.array_split(np.arange(n_images), batches):
        if part.size == 0:
            continue
        lo, hi = offsets[part[0]], offsets[part[-1] + 1]
        a.add_words(offsets[part[0]:part[-1] + 2] - lo, words[lo:hi], idf)
        bags = [bag_of_words(words[offsets[i]:offsets[i + 1]]) for i in part]
        bo = np.zeros(len(bags) + 1, np.int64)
        np.cumsum([x[0].size for x in bags], out=bo[1:])
        flat_w = np.concatenate([x[0] for x in bags]) if bags else np.zeros(0, np.int64)
        flat_tf = np.concatenate([x[1] for x in bags]) if bags else np.zeros(0, np.float32)
        b.add(bo, flat_w, flat_tf, idf)
    x, y = a.to_arrays(), b.to_arrays()
    np.testing.assert_array_equal(x["word_offsets"], y["word_offsets"])
    np.testing.assert_array_equal(x["postings"], y["postings"])
    np.testing.assert_allclose(x["norms"], y["norms"], rtol=1e-6)


def dense_matrix(index: InvertedIndex, idf: np.ndarray) -> np.ndarray:
    """The documents' burst(tf) * idf vectors, from the index's own postings."""
    m = np.zeros((index.n_docs, index.n_words))
    table = {"sqrt": np.sqrt, "log": np.log1p, "none": lambda t: t}[index.burstiness]
    for seg in index.segments:
        d, tf = unpack_postings(seg.postings)
        m[d, seg.word_of_posting()] = table(tf.astype(np.float64)) * idf[seg.word_of_posting()]
    return m


@given(seed=st.integers(0, 2**32 - 1), budget=st.integers(0, 400))
@settings(deadline=None, max_examples=60)
def test_postings_budget_scores_the_chosen_words_exactly(seed, budget):
    rng = np.random.default_rng(seed)
    n_words = 40
    idf = (rng.random(n_words) * 3 + 0.1).astype(np.float32)
    index = InvertedIndex(n_words)
    offsets, words = random_images(rng, 60, n_words)
    index.add_words(offsets[:31], words[:offsets[30]], idf)
    index.add_words(offsets[30:] - offsets[30], words[offsets[30]:], idf)
    qw = np.sort(rng.choice(n_words, 12, replace=False))
    qtf = (rng.random(12) * 3 + 0.1).astype(np.float32)
    qweights = tfidf(qw, qtf, idf)
    chosen = index.select_words(qw, qweights, idf, budget)
    lengths = np.array([sum(int(s.word_offsets[w + 1] - s.word_offsets[w]) for s in index.segments)
                        for w in qw])
    # the chosen words fit the budget (the first one always counts), and are the best per posting
    assert chosen.size >= 1
    assert lengths[chosen].sum() <= max(budget, lengths[chosen].max())
    value = qweights * idf[qw]
    if chosen.size < qw.size:
        left = np.setdiff1d(np.arange(qw.size), chosen)
        assert value[chosen].min() >= value[left].max() - 1e-6
    got, touched = index.score_query(qw, qweights, idf, max_postings=budget)
    assert touched == lengths[chosen].sum()
    m = dense_matrix(index, idf)
    q = np.zeros(n_words)
    q[qw[chosen]] = qweights[chosen]
    norms = np.linalg.norm(m, axis=1)
    expected = np.divide(m @ q, norms, out=np.zeros(index.n_docs), where=norms > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    full = index.scores(qw, qweights, idf)
    np.testing.assert_array_equal(full, index.scores(qw, qweights, idf, max_postings=10**9))


@given(seed=st.integers(0, 2**32 - 1), n_blocks=st.integers(1, 5))
@settings(deadline=None, max_examples=25)
def test_lazy_bundle_arrays_equal_materialised_ones(tmp_path_factory, seed, n_blocks):
    rng = np.random.default_rng(seed)
    n_words = 50
    idf = (rng.random(n_words) * 2).astype(np.float32)
    index, store = InvertedIndex(n_words), KeypointStore(n_words)
    for _ in range(n_blocks):
        offsets, words = random_images(rng, int(rng.integers(0, 8)), n_words)
        kp = (rng.random((words.shape[0], 4)) * [600, 400, 30, 360]).astype(np.float32)
        index.add_words(offsets, words, idf)
        store.add_flat(offsets, words, kp)
    path = tmp_path_factory.mktemp("lazy") / "b"
    lazy = {**{f"p_{k}": v for k, v in index.bundle_arrays().items()}, **store.bundle_arrays()}
    save_bundle(path, "t", 1, {}, lazy)
    _, loaded = load_bundle(path, "t", 1, verify_checksums=True)
    eager = {**{f"p_{k}": v for k, v in index.to_arrays().items()}, **store.to_arrays()}
    assert set(loaded) == set(eager)
    for k, v in eager.items():
        np.testing.assert_array_equal(loaded[k], v, err_msg=k)
        assert loaded[k].dtype == v.dtype


def test_lazy_array_concatenate_and_empty(tmp_path):
    parts = [np.arange(6, dtype=np.uint16).reshape(3, 2), np.zeros((0, 2), np.uint16),
             np.ones((2, 2), np.uint16)]
    lazy = LazyArray.concatenate(parts)
    np.testing.assert_array_equal(lazy.materialize(), np.concatenate(parts))
    save_bundle(tmp_path / "b", "t", 1, {}, {"x": lazy,
                                             "e": LazyArray((0, 3), np.dtype(np.float32), lambda o: None)})
    _, got = load_bundle(tmp_path / "b", "t", 1)
    np.testing.assert_array_equal(got["x"], np.concatenate(parts))
    assert got["e"].shape == (0, 3) and got["e"].dtype == np.float32


def test_format_1_postings_load_and_score_like_packed_ones():
    rng = np.random.default_rng(1)
    idf = (rng.random(20) + 0.5).astype(np.float32)
    index = InvertedIndex(20)
    offsets, words = random_images(rng, 25, 20)
    index.add_words(offsets, words, idf)
    arrays = index.to_arrays()
    docs, tf = unpack_postings(arrays["postings"])
    v1 = {"word_offsets": arrays["word_offsets"], "docs": docs, "tf": tf, "norms": arrays["norms"]}
    old = InvertedIndex.from_arrays(20, "sqrt", v1)
    qw = np.arange(0, 20, 3)
    qv = tfidf(qw, np.ones(qw.size, np.float32), idf)
    np.testing.assert_array_equal(old.scores(qw, qv, idf), index.scores(qw, qv, idf))
    with pytest.raises(InvalidInputError):
        InvertedIndex.from_arrays(20, "sqrt", {**v1, "tf": tf[:-1]})


def test_add_words_and_add_flat_validate():
    index, store = InvertedIndex(5), KeypointStore(5)
    idf = np.ones(5, np.float32)
    with pytest.raises(InvalidInputError):
        index.add_words(np.array([0, 2]), np.array([1]), idf)
    with pytest.raises(InvalidInputError):
        index.add_words(np.array([0, 1]), np.array([5]), idf)
    with pytest.raises(InvalidInputError):
        store.add_flat(np.array([0, 2]), np.array([1, 2]), np.zeros((1, 4), np.float32))
    assert index.n_docs == 0 and store.n_images == 0


@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["sqrt", "log", "none"]))
@settings(deadline=None, max_examples=30)
def test_sparse_accumulation_equals_bincount(seed, mode):
    """Both accumulation paths of score_query (bincount, scipy CSC product) agree."""
    import vbow.search.accumulate as acc
    rng = np.random.default_rng(seed)
    n_words = 30
    idf = (rng.random(n_words) * 3).astype(np.float32)
    index = InvertedIndex(n_words, mode)
    offsets, words = random_images(rng, 50, n_words)
    index.add_words(offsets, words, idf)
    index.add_words(offsets, words, idf)       # two segments
    qw = np.sort(rng.choice(n_words, 10, replace=False))
    qv = tfidf(qw, (rng.random(10) + 0.1).astype(np.float32), idf, mode)
    saved = acc.SPARSE_MIN_POSTINGS
    try:
        acc.SPARSE_MIN_POSTINGS = 1 << 40
        a = index.score_query(qw, qv, idf)
        acc.SPARSE_MIN_POSTINGS = 0
        b = index.score_query(qw, qv, idf)
    finally:
        acc.SPARSE_MIN_POSTINGS = saved
    assert a[1] == b[1]
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    m = dense_matrix(index, idf)
    q = np.zeros(n_words)
    q[qw] = qv
    norms = np.linalg.norm(m, axis=1)
    np.testing.assert_allclose(b[0], np.divide(m @ q, norms, out=np.zeros(index.n_docs), where=norms > 0),
                               rtol=1e-5, atol=1e-6)
