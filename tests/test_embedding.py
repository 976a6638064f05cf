"""Hamming embedding (vbow.vocab.embedding) and its selective-kernel scoring in the inverted file
(vbow.search.embedding, vbow.search.inverted_index) against brute-force loops and dense sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbow.errors import InvalidInputError, NotFittedError
from vbow.search.embedding import (N_BITS, aggregate_query, kernel_weights, pack_signs,
                                   selective_kernel)
import vbow.search.accumulate as acc
from vbow.search.inverted_index import InvertedIndex
from vbow.search.postings import TF_CAP
from vbow.search.weighting import tfidf
from vbow.vocab.embedding import HammingEmbedding


def bits_of(sig: int) -> list[int]:
    return [(int(sig) >> j) & 1 for j in range(N_BITS)]


# ------------------------------------------------------------------------------------ kernel
@given(t=st.integers(0, 64), alpha=st.floats(0.5, 6))
def test_selective_kernel_formula(t, alpha):
    k = selective_kernel(t, alpha)
    assert k.shape == (65,) and k.dtype == np.float32
    for h in range(65):
        u = 1 - 2 * h / 64
        want = max(u, 0.0) ** alpha if h <= t else 0.0
        assert abs(float(k[h]) - want) <= 1e-6 * max(1.0, want)
    assert k[0] == 1.0


def test_selective_kernel_rejects_bad_settings():
    with pytest.raises(InvalidInputError):
        selective_kernel(65)
    with pytest.raises(InvalidInputError):
        selective_kernel(10, 0.0)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 50))
def test_pack_signs_sets_bit_j_for_positive_column_j(seed, n):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, N_BITS))
    v[rng.random((n, N_BITS)) < 0.1] = 0.0  # zero is not positive
    sig = pack_signs(v)
    assert sig.shape == (n,) and sig.dtype == np.uint64
    for i in range(n):
        assert bits_of(sig[i]) == [int(x > 0) for x in v[i]]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 200))
def test_kernel_weights_are_the_kernel_of_the_bit_differences(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    b = rng.integers(0, 2**63, n, dtype=np.uint64)
    k = selective_kernel(28, 2.0)
    got = kernel_weights(a, b, k)
    want = [k[sum(x != y for x, y in zip(bits_of(p), bits_of(q)))] for p, q in zip(a, b)]
    np.testing.assert_array_equal(got, np.array(want, np.float32).reshape(-1))


# ------------------------------------------------------------------------------- embedding
def clustered(rng, n_words: int, n: int, dim: int = 128):
    centroids = rng.standard_normal((n_words, dim)).astype(np.float32)
    words = rng.integers(0, n_words, n)
    x = (centroids[words] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)
    return centroids, x, words


def test_fit_learns_per_word_medians_of_projected_residuals():
    rng = np.random.default_rng(0)
    centroids, x, words = clustered(rng, 30, 2000)
    words[:5] = 29  # a word with an odd count; word 28 may be absent
    x_before, c_before = x.copy(), centroids.copy()
    he = HammingEmbedding(random_state=3).fit(centroids, x, words)
    he.residuals(centroids, x, words)
    np.testing.assert_array_equal(x, x_before)  # inputs are never modified
    np.testing.assert_array_equal(centroids, c_before)
    p = he.projection_.astype(np.float64)
    assert p.shape == (64, 128)
    np.testing.assert_allclose(p @ p.T, np.eye(64), atol=1e-5)
    for w in range(30):
        members = x[words == w].astype(np.float64)
        if len(members) == 0:
            np.testing.assert_array_equal(he.thresholds_[w], 0)
            continue
        z = (members - centroids[w]) @ p.T
        np.testing.assert_allclose(he.thresholds_[w], np.median(z, axis=0), rtol=1e-3, atol=1e-4)  # float16
    # centred residuals of the training data: each bit is set for about half of a word's members
    sig = he.signatures(centroids, x, words)
    bits = np.array([bits_of(s) for s in sig[words == 3]])
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) <= 0.5 / len(bits) + 1e-9)


def test_projection_is_seeded():
    rng = np.random.default_rng(1)
    centroids, x, words = clustered(rng, 5, 300)
    a = HammingEmbedding(7).fit(centroids, x, words)
    b = HammingEmbedding(7).fit(centroids, x, words)
    c = HammingEmbedding(8).fit(centroids, x, words)
    np.testing.assert_array_equal(a.projection_, b.projection_)
    assert not np.array_equal(a.projection_, c.projection_)


def test_binary_descriptors_embed_as_plus_minus_one_bits():
    rng = np.random.default_rng(2)
    cent = rng.integers(0, 256, (6, 32), dtype=np.uint8)
    words = rng.integers(0, 6, 500)
    flips = (rng.random((500, 256)) < 0.1)
    x = np.packbits(np.unpackbits(cent[words], axis=1) ^ flips, axis=1)
    he = HammingEmbedding(0).fit(cent, x, words)
    assert he.projection_.shape == (64, 256)
    r = he.residuals(cent, x[:10], words[:10])
    pm = lambda b: np.unpackbits(b, axis=1).astype(np.float64) * 2 - 1  # noqa: E731
    want = (pm(x[:10]) - pm(cent[words[:10]])) @ he.projection_.T.astype(np.float64) \
        - he.thresholds_[words[:10]]
    np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-4)


def test_residuals_with_multiple_assignment_and_missing_words():
    rng = np.random.default_rng(4)
    centroids, x, words = clustered(rng, 8, 400)
    he = HammingEmbedding(0).fit(centroids, x, words)
    multi = np.stack([words[:20], (words[:20] + 1) % 8, np.full(20, -1)], axis=1)
    r = he.residuals(centroids, x[:20], multi)
    assert r.shape == (20, 3, 64)
    np.testing.assert_array_equal(r[:, 2], 0)
    np.testing.assert_allclose(r[:, 1], he.residuals(centroids, x[:20], multi[:, 1]), atol=1e-5)


def test_embedding_errors():
    he = HammingEmbedding()
    with pytest.raises(NotFittedError):
        he.residuals(np.zeros((2, 128), np.float32), np.zeros((1, 128), np.float32), np.zeros(1))
    with pytest.raises(InvalidInputError):
        he.fit(np.zeros((2, 128), np.float32), np.zeros((3, 128), np.float32), np.zeros(2))
    with pytest.raises(InvalidInputError):
        he.fit(np.zeros((2, 128), np.float32), np.zeros((1, 128), np.float32), np.array([5]))


@given(seed=st.integers(0, 2**32 - 1))
def test_aggregate_query_signs_of_weighted_sums(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(0, 12)), int(rng.integers(1, 4))
    words = rng.integers(-1, 6, (n, k))
    weights = rng.random((n, k)).astype(np.float32)
    res = rng.standard_normal((n, k, 64)).astype(np.float32)
    distinct = np.unique(words[words >= 0])
    got = aggregate_query(words, weights, res, distinct)
    for j, w in enumerate(distinct.tolist()):
        total = sum(weights[i, a] * res[i, a].astype(np.float64)
                    for i in range(n) for a in range(k) if words[i, a] == w)
        assert bits_of(got[j]) == [int(v > 0) for v in total]


# ------------------------------------------------------------------- scoring in the index
def dense_he_scores(docs, alive, q_words, q_tf, q_sig, idf, kernel):
    """sum_w q_w d_w K(h(q_sig_w, d_sig_w)) / (|q| |d|), d_sig_w = signs of summed residuals."""
    scores = np.zeros(len(docs))
    qv = {int(w): float(np.sqrt(t)) * float(idf[w]) for w, t in zip(q_words, q_tf)}
    qn = np.sqrt(sum(v * v for v in qv.values()))
    qs = {int(w): int(s) for w, s in zip(q_words, q_sig)}
    for i, doc in enumerate(docs):
        if not alive[i]:
            continue
        dv, dsig = {}, {}
        for w, rows in doc.items():
            dv[w] = float(np.sqrt(min(len(rows), TF_CAP))) * float(idf[w])
            total = np.sum(np.array(rows, np.float64), axis=0)
            dsig[w] = sum(1 << j for j in range(64) if total[j] > 0)
        dn = np.sqrt(sum(v * v for v in dv.values()))
        if dn == 0 or qn == 0:
            continue
        s = 0.0
        for w, v in qv.items():
            if w in dv:
                h = bin(qs[w] ^ dsig[w]).count("1")
                s += v * dv[w] * float(kernel[h])
        scores[i] = s / (qn * dn)
    return scores


def random_he_docs(rng, n_docs, n_words):
    """Documents {word: [residual rows]}: some empty, some with more features than TF_CAP."""
    docs = []
    for _ in range(n_docs):
        m = int(rng.integers(0, min(n_words, 6) + 1))
        doc = {}
        for w in rng.choice(n_words, m, replace=False).tolist():
            c = int(rng.integers(1, 7))
            doc[int(w)] = [rng.standard_normal(64).astype(np.float32) for _ in range(c)]
        docs.append(doc)
    return docs


def flat_batch(docs):
    words, emb, offsets = [], [], [0]
    for doc in docs:
        items = [(w, r) for w, rows in doc.items() for r in rows]
        order = np.random.default_rng(len(items)).permutation(len(items))  # features unordered
        for j in order.tolist():
            words.append(items[j][0])
            emb.append(items[j][1])
        offsets.append(len(words))
    emb_arr = np.array(emb, np.float32).reshape(-1, 64)
    return np.array(offsets, np.int64), np.array(words, np.int64), emb_arr


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_words=st.integers(1, 12),
       batches=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       t=st.integers(0, 64), remove_fraction=st.floats(0, 0.5), roundtrip=st.booleans(),
       sparse_product=st.booleans())
def test_he_scores_equal_a_dense_kernel_sum(seed, n_words, batches, t, remove_fraction, roundtrip,
                                            sparse_product):
    rng = np.random.default_rng(seed)
    idf = rng.uniform(0.1, 3.0, n_words).astype(np.float32)
    index = InvertedIndex(n_words, "sqrt")
    docs = []
    for size in batches:
        batch = random_he_docs(rng, size, n_words)
        offsets, words, emb = flat_batch(batch)
        index.add_words(offsets, words, idf, embedding=emb)
        docs += batch
    alive = np.ones(len(docs), bool)
    if docs:
        gone = np.flatnonzero(rng.random(len(docs)) < remove_fraction)
        index.remove(gone)
        alive[gone] = False
    if roundtrip and docs:
        keep = alive.copy()
        index.renumber(keep)
        index = InvertedIndex.from_arrays(n_words, "sqrt", index.to_arrays())
        docs = [d for d, a in zip(docs, keep) if a]
        alive = np.ones(len(docs), bool)
    q_words = np.sort(rng.choice(n_words, int(rng.integers(1, n_words + 1)), replace=False))
    q_tf = rng.uniform(0.3, 3, q_words.size).astype(np.float32)
    q_sig = rng.integers(0, 2**63, q_words.size, dtype=np.uint64)
    kernel = selective_kernel(t, 3.0)
    saved = acc.SPARSE_MIN_POSTINGS
    acc.SPARSE_MIN_POSTINGS = 1 if sparse_product else 1 << 40   # scipy's product or bincount
    try:
        got = index.scores(q_words, tfidf(q_words, q_tf, idf), idf) if not docs else \
            index.score_query(q_words, tfidf(q_words, q_tf, idf), idf, signatures=q_sig,
                              kernel=kernel)[0]
    finally:
        acc.SPARSE_MIN_POSTINGS = saved
    want = dense_he_scores(docs, alive, q_words, q_tf, q_sig, idf, kernel)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_kernel_of_ones_gives_the_plain_cosine():
    rng = np.random.default_rng(5)
    docs = random_he_docs(rng, 60, 20)
    offsets, words, emb = flat_batch(docs)
    idf = rng.uniform(0.5, 2, 20).astype(np.float32)
    he = InvertedIndex(20)
    he.add_words(offsets, words, idf, embedding=emb)
    plain = InvertedIndex(20)
    plain.add_words(offsets, words, idf)
    q = np.arange(0, 20, 2)
    w = tfidf(q, np.ones(q.size, np.float32), idf)
    sig = rng.integers(0, 2**63, q.size, dtype=np.uint64)
    got = he.score_query(q, w, idf, signatures=sig, kernel=np.ones(65, np.float32))[0]
    np.testing.assert_allclose(got, plain.scores(q, w, idf), rtol=1e-6, atol=1e-7)
    # a selective kernel does change the scores (the comparison above can fail)
    assert not np.allclose(he.score_query(q, w, idf, signatures=sig,
                                          kernel=selective_kernel(8))[0], got)


def test_signature_batches_cannot_mix_with_plain_ones():
    idf = np.ones(4, np.float32)
    index = InvertedIndex(4)
    index.add_words(np.array([0, 2]), np.array([1, 2]), idf, embedding=np.ones((2, 64), np.float32))
    with pytest.raises(InvalidInputError):
        index.add_words(np.array([0, 1]), np.array([3]), idf)
    with pytest.raises(InvalidInputError):
        index.add_words(np.array([0, 1]), np.array([3]), idf, embedding=np.ones((2, 64), np.float32))
    plain = InvertedIndex(4)
    plain.add_words(np.array([0, 1]), np.array([3]), idf)
    with pytest.raises(InvalidInputError):
        plain.score_query(np.array([3]), np.ones(1, np.float32), idf,
                          signatures=np.zeros(1, np.uint64), kernel=selective_kernel())


def test_signatures_survive_compaction_of_many_segments():
    rng = np.random.default_rng(9)
    idf = np.ones(10, np.float32)
    index = InvertedIndex(10)
    docs = []
    for _ in range(70):  # more than the segment limit: compaction merges them
        batch = random_he_docs(rng, 2, 10)
        offsets, words, emb = flat_batch(batch)
        index.add_words(offsets, words, idf, embedding=emb)
        docs += batch
    assert len(index.segments) < 70
    q = np.arange(10)
    sig = rng.integers(0, 2**63, 10, dtype=np.uint64)
    k = selective_kernel(30)
    got = index.score_query(q, tfidf(q, np.ones(10, np.float32), idf), idf, signatures=sig, kernel=k)[0]
    want = dense_he_scores(docs, np.ones(len(docs), bool), q, np.ones(10), sig, idf, k)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["kmeans", "hamming"])
def test_a_fitted_vocabulary_carries_an_embedding_that_survives_its_arrays(kind):
    from test_vocabulary import KINDS
    cls, gen = KINDS[kind]
    vocab = cls(256, random_state=0).fit(gen(3000, 0))
    assert vocab.has_embedding
    x = gen(200, 5)
    words = vocab.quantise(x)
    sig = vocab.signatures(x, words)
    arrays = vocab.to_arrays()
    assert arrays["he_thresholds"].dtype == np.float16
    again = cls.from_arrays(vocab.get_params(), vocab.state_params(), arrays)
    np.testing.assert_array_equal(again.signatures(x, words), sig)
    # a bundle written before the embedding existed loads without one
    old = cls.from_arrays(vocab.get_params(), vocab.state_params(),
                          {k: v for k, v in arrays.items() if not k.startswith("he_")})
    assert not old.has_embedding
    with pytest.raises(NotFittedError):
        old.signatures(x, words)
