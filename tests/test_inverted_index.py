"""vbow.search.inverted_index against a dense matrix product of L2-normalised TF-IDF vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import InvalidInputError, UnknownOptionError
from vbow.search.inverted_index import InvertedIndex
from vbow.search.postings import TF_CAP, burst_weights, pack_postings
from vbow.search.weighting import BURSTINESS, tfidf

REF_BURST = {"sqrt": np.sqrt, "log": np.log1p, "none": lambda t: t}


def random_docs(rng: np.random.Generator, n_docs: int, n_words: int) -> list[dict[int, int]]:
    """Sparse documents {word: count}; some empty, some with counts far above the TF_CAP cap."""
    docs = []
    for _ in range(n_docs):
        m = int(rng.integers(0, min(n_words, 8) + 1))
        words = rng.choice(n_words, m, replace=False)
        counts = rng.integers(1, 6, m)
        if m and rng.random() < 0.1:
            counts[0] = int(rng.integers(200, 400))
        docs.append({int(w): int(c) for w, c in zip(words, counts)})
    return docs


def csr_batch(docs: list[dict[int, int]]):
    offsets = np.zeros(len(docs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(d) for d in docs])
    words = np.array([w for d in docs for w in d], np.int64)
    counts = np.array([c for d in docs for c in d.values()], np.float32)
    return offsets, words, counts


def dense_scores(docs, alive, q_words, q_tf, idf, mode) -> np.ndarray:
    """Cosine of burst(tf)*idf vectors (documents' counts capped at TF_CAP), written densely."""
    n_words = idf.shape[0]
    D = np.zeros((len(docs), n_words))
    for i, d in enumerate(docs):
        for w, c in d.items():
            D[i, w] = REF_BURST[mode](float(min(c, TF_CAP))) * idf[w]
    norms = np.linalg.norm(D, axis=1, keepdims=True)
    D = np.divide(D, norms, out=np.zeros_like(D), where=norms > 0)
    q = np.zeros(n_words)
    q[q_words] = REF_BURST[mode](q_tf.astype(np.float64)) * idf[q_words]
    qn = np.linalg.norm(q)
    q = q / qn if qn > 0 else q
    s = D @ q
    s[~np.asarray(alive, bool)] = 0
    return s


def random_query(rng, n_words):
    m = int(rng.integers(0, min(n_words, 10) + 1))
    words = np.sort(rng.choice(n_words, m, replace=False))
    tf = (rng.random(m) * 3 + 0.1).astype(np.float32)
    return words, tf


def index_scores(index, words, tf, idf):
    return index.scores(words, tfidf(words, tf, idf, index.burstiness), idf)


@given(seed=st.integers(0, 2**32 - 1), n_words=st.integers(1, 25),
       batches=st.lists(st.integers(0, 6), min_size=1, max_size=6),
       mode=st.sampled_from(BURSTINESS), remove_fraction=st.floats(0, 0.6),
       compact_after=st.integers(0, 6))
def test_scores_equal_dense_cosines(seed, n_words, batches, mode, remove_fraction, compact_after):
    rng = np.random.default_rng(seed)
    idf = (rng.random(n_words) * 4).astype(np.float32)
    idf[rng.random(n_words) < 0.1] = 0
    index = InvertedIndex(n_words, mode)
    docs: list[dict[int, int]] = []
    for b, size in enumerate(batches):
        batch = random_docs(rng, size, n_words)
        ids = index.add(*csr_batch(batch), idf)
        np.testing.assert_array_equal(ids, np.arange(len(docs), len(docs) + size))
        docs.extend(batch)
        if b == compact_after:
            index.compact()
    alive = rng.random(len(docs)) >= remove_fraction
    index.remove(np.flatnonzero(~alive))
    assert index.n_docs == len(docs)
    for _ in range(3):
        qw, qtf = random_query(rng, n_words)
        ref = dense_scores(docs, alive, qw, qtf, idf, mode)
        got = index_scores(index, qw, qtf, idf)
        assert got.shape == (len(docs),) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # compaction drops the removed postings and changes no score
    index.compact()
    assert len(index.segments) <= 1
    assert index.n_postings == sum(len(d) for d, a in zip(docs, alive) if a)
    qw, qtf = random_query(rng, n_words)
    np.testing.assert_allclose(index_scores(index, qw, qtf, idf),
                               dense_scores(docs, alive, qw, qtf, idf, mode), rtol=1e-5, atol=1e-6)
    # renumbering keeps the live documents, in order
    new_id = index.renumber(alive)
    kept = [d for d, a in zip(docs, alive) if a]
    assert index.n_docs == len(kept) and index.alive.all()
    np.testing.assert_array_equal(new_id[alive], np.arange(len(kept)))
    assert np.all(new_id[~alive] == -1)
    qw, qtf = random_query(rng, n_words)
    np.testing.assert_allclose(index_scores(index, qw, qtf, idf),
                               dense_scores(kept, np.ones(len(kept), bool), qw, qtf, idf, mode),
                               rtol=1e-5, atol=1e-6)


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(0, 40), n_words=st.integers(1, 30))
def test_one_batched_add_equals_many_small_adds(seed, n_docs, n_words):
    rng = np.random.default_rng(seed)
    idf = (rng.random(n_words) * 3).astype(np.float32)
    docs = random_docs(rng, n_docs, n_words)
    one = InvertedIndex(n_words)
    one.add(*csr_batch(docs), idf)
    many = InvertedIndex(n_words)
    cuts = np.sort(rng.integers(0, n_docs + 1, int(rng.integers(0, 30))))
    for part in np.split(np.arange(n_docs), cuts):     # includes empty batches
        many.add(*csr_batch([docs[i] for i in part]), idf)
    assert many.n_docs == one.n_docs == n_docs
    a, b = one.to_arrays(), many.to_arrays()
    for name in ("word_offsets", "postings"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_allclose(a["norms"], b["norms"], rtol=1e-6)
    for _ in range(3):
        qw, qtf = random_query(rng, n_words)
        np.testing.assert_allclose(index_scores(one, qw, qtf, idf), index_scores(many, qw, qtf, idf),
                                   rtol=1e-6, atol=1e-7)


@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(BURSTINESS))
def test_norms_are_one_or_zero(seed, mode):
    """Each document scored against its own TF-IDF vector has cosine 1 (0 when empty)."""
    rng = np.random.default_rng(seed)
    n_words = 15
    idf = (rng.random(n_words) * 3).astype(np.float32)
    idf[0] = 0                       # a document made only of word 0 has a zero vector
    docs = random_docs(rng, 12, n_words) + [{0: 3}, {}]
    index = InvertedIndex(n_words, mode)
    index.add(*csr_batch(docs), idf)
    for i, d in enumerate(docs):
        w = np.array(sorted(d), np.int64)
        tf = np.array([min(d[x], TF_CAP) for x in sorted(d)], np.float32)
        s = index_scores(index, w, tf, idf)
        vec = REF_BURST[mode](tf.astype(np.float64)) * idf[w]
        expected_self = 1.0 if np.linalg.norm(vec) > 0 else 0.0
        assert abs(float(s[i]) - expected_self) < 1e-5
        assert np.all(s <= 1 + 1e-5) and np.all(s >= 0)
    # the stored norms are those of the raw (unnormalised) vectors
    ref_norms = [np.linalg.norm([REF_BURST[mode](float(min(c, TF_CAP))) * idf[w] for w, c in d.items()])
                 if d else 0.0 for d in docs]
    np.testing.assert_allclose(index.norms, ref_norms, rtol=1e-5, atol=1e-6)


def test_empty_query_scores_zero():
    rng = np.random.default_rng(0)
    idf = np.ones(10, np.float32)
    index = InvertedIndex(10)
    index.add(*csr_batch(random_docs(rng, 5, 10)), idf)
    s = index.scores(np.zeros(0, np.int64), np.zeros(0, np.float32), idf)
    assert s.shape == (5,) and not s.any()
    empty = InvertedIndex(10)
    assert empty.scores(np.array([1]), np.array([1.0], np.float32), idf).shape == (0,)


def test_removed_documents_score_zero_even_for_identical_queries():
    idf = np.ones(4, np.float32)
    index = InvertedIndex(4)
    index.add(*csr_batch([{1: 2, 2: 1}, {1: 2, 2: 1}, {3: 1}]), idf)
    index.remove(np.array([0]))
    s = index_scores(index, np.array([1, 2]), np.array([2.0, 1.0], np.float32), idf)
    assert s[0] == 0 and abs(s[1] - 1) < 1e-6 and s[2] == 0


@given(seed=st.integers(0, 2**32 - 1))
def test_document_frequencies_and_reweight(seed):
    rng = np.random.default_rng(seed)
    n_words = 12
    docs = random_docs(rng, 15, n_words)
    idf = np.ones(n_words, np.float32)
    index = InvertedIndex(n_words)
    index.add(*csr_batch(docs[:7]), idf)
    index.add(*csr_batch(docs[7:]), idf)
    alive = rng.random(15) > 0.3
    index.remove(np.flatnonzero(~alive))
    df = np.zeros(n_words, np.int64)
    for d, a in zip(docs, alive):
        if a:
            for w in d:
                df[w] += 1
    np.testing.assert_array_equal(index.document_frequencies(), df)
    new_idf = (rng.random(n_words) * 2).astype(np.float32)
    index.reweight(new_idf)
    qw, qtf = random_query(rng, n_words)
    np.testing.assert_allclose(index_scores(index, qw, qtf, new_idf),
                               dense_scores(docs, alive, qw, qtf, new_idf, "sqrt"),
                               rtol=1e-5, atol=1e-6)


def test_to_arrays_from_arrays_round_trip():
    rng = np.random.default_rng(3)
    idf = (rng.random(20) * 2).astype(np.float32)
    docs = random_docs(rng, 30, 20)
    index = InvertedIndex(20, "log")
    for part in np.array_split(np.arange(30), 4):
        index.add(*csr_batch([docs[i] for i in part]), idf)
    clone = InvertedIndex.from_arrays(20, "log", index.to_arrays())
    for _ in range(5):
        qw, qtf = random_query(rng, 20)
        np.testing.assert_array_equal(index_scores(clone, qw, qtf, idf),
                                      index_scores(index, qw, qtf, idf))
    bad = dict(index.to_arrays())
    bad["postings"] = bad["postings"][:-1]
    with pytest.raises(InvalidInputError):
        InvertedIndex.from_arrays(20, "log", bad)


def test_add_validates_the_batch():
    index = InvertedIndex(5)
    idf = np.ones(5, np.float32)
    with pytest.raises(InvalidInputError):
        index.add(np.array([0, 2]), np.array([1]), np.array([1.0]), idf)
    with pytest.raises(InvalidInputError):
        index.add(np.array([0, 1]), np.array([5]), np.array([1.0]), idf)
    with pytest.raises(InvalidInputError):
        index.add(np.array([0, 1]), np.array([-1]), np.array([1.0]), idf)
    with pytest.raises(InvalidInputError):
        index.remove(np.array([0]))
    with pytest.raises(UnknownOptionError):
        InvertedIndex(5, "cube")
    assert index.n_docs == 0


@pytest.mark.parametrize("mode", BURSTINESS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5000))
def test_term_weights_of_packed_postings_match_the_burstiness_rule(mode, seed, n):
    """The weight read for each packed posting is burst(min(tf, TF_CAP)) whatever its doc id."""
    rng = np.random.default_rng(seed)
    docs = rng.integers(0, 1 << 30, n)
    tf = rng.integers(1, 300, n)
    got = burst_weights(pack_postings(docs, tf), mode)
    assert got.dtype == np.float32 and got.shape == (n,)
    np.testing.assert_allclose(got, REF_BURST[mode](np.minimum(tf, TF_CAP).astype(np.float64)),
                               rtol=1e-6)


class _NoOpenCV:
    def __getattr__(self, name):
        raise AssertionError(f"the search core called cv2.{name}")


def test_scoring_never_touches_opencv(monkeypatch):
    """Scoring (both accumulation paths) and the term weights work with cv2 unavailable."""
    import sys

    import vbow.search.accumulate as acc
    monkeypatch.setitem(sys.modules, "cv2", _NoOpenCV())
    rng = np.random.default_rng(0)
    docs = random_docs(rng, 300, 40)
    offsets, words, counts = csr_batch(docs)
    idf = rng.uniform(0.5, 3.0, 40).astype(np.float32)
    index = InvertedIndex(40, "sqrt")
    index.add(offsets, words, counts, idf)
    q_words = np.arange(0, 40, 3)
    q_tf = rng.uniform(0.5, 3, q_words.size).astype(np.float32)
    w = tfidf(q_words, q_tf, idf, "sqrt")
    want = dense_scores(docs, np.ones(300, bool), q_words, q_tf, idf, "sqrt")
    np.testing.assert_allclose(index.scores(q_words, w, idf), want, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(acc, "SPARSE_MIN_POSTINGS", 1)  # the scipy path too
    np.testing.assert_allclose(index.scores(q_words, w, idf), want, rtol=1e-4, atol=1e-6)


def _random_images(rng, n_docs, n_words):
    counts = rng.integers(0, 12, n_docs)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    words = rng.integers(0, n_words, int(offsets[-1]))
    return offsets, words


@given(seed=st.integers(0, 2**32 - 1), n_words=st.integers(1, 30), with_he=st.booleans(),
       n_batches=st.integers(1, 3))
def test_append_documents_equals_adding_the_kept_images_directly(seed, n_words, with_he, n_batches):
    """Differential: copying kept documents' postings (with their signatures) from a segmented,
    partly removed index equals add_words of exactly those images into a fresh index."""
    rng = np.random.default_rng(seed)
    idf = rng.uniform(0.1, 3, n_words).astype(np.float32)
    source = InvertedIndex(n_words)
    images = []
    for _ in range(n_batches):
        offsets, words = _random_images(rng, int(rng.integers(0, 8)), n_words)
        emb = np.where(rng.random((words.size, 64)) < 0.5, -1.0, 1.0).astype(np.float32) if with_he else None
        source.add_words(offsets, words, idf, embedding=emb)
        images += [(words[offsets[i]:offsets[i + 1]], None if emb is None else emb[offsets[i]:offsets[i + 1]])
                   for i in range(offsets.size - 1)]
    if source.n_docs:
        source.remove(np.flatnonzero(rng.random(source.n_docs) < 0.3))
    keep = source.alive & (rng.random(source.n_docs) < 0.7)
    target = InvertedIndex(n_words)
    head_offsets, head_words = _random_images(rng, 2, n_words)  # the target already holds images
    head_emb = np.ones((head_words.size, 64), np.float32) if with_he else None
    target.add_words(head_offsets, head_words, idf, embedding=head_emb)
    expected = InvertedIndex(n_words)
    expected.add_words(head_offsets, head_words, idf, embedding=head_emb)
    kept = [images[i] for i in np.flatnonzero(keep)]
    if kept:
        offsets = np.r_[0, np.cumsum([w.size for w, _ in kept])].astype(np.int64)
        words = np.concatenate([w for w, _ in kept])
        emb = np.concatenate([e for _, e in kept]) if with_he else None
        expected.add_words(offsets, words, idf, embedding=emb)
    new_ids = target.append_documents(source, keep, idf)
    np.testing.assert_array_equal(new_ids, np.arange(2, 2 + len(kept)))
    got, want = target.to_arrays(), expected.to_arrays()
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_append_documents_refuses_removed_documents_and_other_vocabularies():
    idf = np.ones(5, np.float32)
    source = InvertedIndex(5)
    source.add_words(np.array([0, 2, 3]), np.array([1, 2, 4]), idf)
    source.remove(np.array([0]))
    with pytest.raises(InvalidInputError):
        InvertedIndex(5).append_documents(source, np.array([True, True]), idf)
    with pytest.raises(InvalidInputError):
        InvertedIndex(6).append_documents(source, np.array([False, True]), idf)
    with pytest.raises(InvalidInputError):
        InvertedIndex(5).append_documents(source, np.array([True]), idf)


@given(seed=st.integers(0, 2**32 - 1), n_words=st.integers(1, 6), n_docs=st.integers(0, 12))
def test_signature_majority_equals_summing_their_signs(seed, n_words, n_docs):
    """Differential: postings signatures from per-feature uint64 signatures (bit majority, runs
    of one copied) equal the signs of the summed +-1 rows (few words: many repeats, ties)."""
    from vbow.search.embedding import signs_of

    rng = np.random.default_rng(seed)
    offsets, words = _random_images(rng, n_docs, n_words)
    sig = rng.integers(0, 2**63, words.size, dtype=np.uint64) | \
        (rng.integers(0, 2, words.size, dtype=np.uint64) << np.uint64(63))
    idf = np.ones(n_words, np.float32)
    a, b = InvertedIndex(n_words), InvertedIndex(n_words)
    a.add_words(offsets, words, idf, signatures=sig)
    b.add_words(offsets, words, idf, embedding=signs_of(sig))
    for name, want in b.to_arrays().items():
        np.testing.assert_array_equal(a.to_arrays()[name], want, err_msg=name)
    with pytest.raises(InvalidInputError):
        InvertedIndex(n_words).add_words(offsets, words, idf, signatures=sig.astype(np.int64))
