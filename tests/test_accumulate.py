"""Scoring one query on several threads (vbow.search.accumulate) against one thread, with and
without Hamming embedding; blocked accumulation against one ``bincount`` of the whole query;
the split into groups and pieces, the pool's threads, and forked children."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vbow.search.accumulate as acc
from vbow.search.embedding import selective_kernel
from vbow.search.inverted_index import InvertedIndex
from vbow.search.weighting import tfidf


@given(lengths=st.lists(st.integers(1, 1000), min_size=1, max_size=60), parts=st.integers(-1, 9))
def test_split_ranges_covers_the_ranges_in_balanced_contiguous_groups(lengths, parts):
    lengths = np.array(lengths, np.int64)
    groups = acc.split_ranges(lengths, parts)
    assert 1 <= len(groups) <= max(1, parts)
    assert groups[0].start == 0 and groups[-1].stop == lengths.size
    for a, b in zip(groups[:-1], groups[1:]):
        assert a.stop == b.start                     # contiguous, in order
    sums = [int(lengths[g].sum()) for g in groups]
    assert min(b.stop - b.start for b in groups) >= 1
    # no group exceeds its equal share by more than one range
    assert max(sums) <= lengths.sum() / len(groups) + lengths.max() or len(groups) == 1


def _random_index(rng, n_docs, n_words, he):
    counts = rng.integers(0, 40, n_docs)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    words = rng.integers(0, n_words, int(offsets[-1]))
    idf = rng.uniform(0.2, 3.0, n_words).astype(np.float32)
    index = InvertedIndex(n_words, "sqrt")
    emb = rng.standard_normal((words.size, 64)).astype(np.float32) if he else None
    index.add_words(offsets, words, idf, embedding=emb)
    if n_docs > 3:
        index.remove(rng.choice(n_docs, n_docs // 4, replace=False))
    return index, idf


def _random_query(rng, n_words, idf, he):
    """Query words, their TF-IDF weights, and (with ``he``) the ``score_query`` keywords of
    Hamming embedding: signatures and a selective kernel."""
    q_words = np.sort(rng.choice(n_words, int(rng.integers(1, n_words + 1)), replace=False))
    q_weights = tfidf(q_words, rng.uniform(0.3, 3, q_words.size).astype(np.float32), idf)
    kw = {}
    if he:
        kw = dict(signatures=rng.integers(0, 2**63, q_words.size, dtype=np.uint64),
                  kernel=selective_kernel(int(rng.integers(16, 40)), 3.0))
    return q_words, q_weights, kw


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threads=st.integers(2, 5), he=st.booleans(),
       sparse_product=st.booleans())
def test_threaded_scores_equal_one_thread(seed, threads, he, sparse_product, monkeypatch_module):
    rng = np.random.default_rng(seed)
    n_words = int(rng.integers(2, 60))
    index, idf = _random_index(rng, int(rng.integers(1, 300)), n_words, he)
    q_words, q_weights, kw = _random_query(rng, n_words, idf, he)
    monkeypatch_module.setattr(acc, "SPARSE_MIN_POSTINGS", 1 if sparse_product else 1 << 40)
    monkeypatch_module.setattr(acc, "usable_cores", lambda: 8)  # really split into `threads`
    monkeypatch_module.setattr(acc, "PARALLEL_MIN_POSTINGS", 1 << 40)
    one, read_one = index.score_query(q_words, q_weights, idf, threads=threads, **kw)
    monkeypatch_module.setattr(acc, "PARALLEL_MIN_POSTINGS", 1)   # now split across threads
    many, read_many = index.score_query(q_words, q_weights, idf, threads=threads, **kw)
    assert read_one == read_many
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-7)
    assert many.dtype == np.float32 and many.shape == (index.n_docs,)


@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=40), longest=st.integers(1, 120))
def test_split_long_ranges_covers_each_range_exactly_in_short_pieces(lengths, longest):
    lengths = np.array(lengths, np.int64)
    starts = np.cumsum(lengths) - lengths + 1000
    tag = np.arange(lengths.size) * 10
    s, n, t, none = acc.split_long_ranges(starts, lengths, longest, tag, None)
    assert none is None
    assert np.all(n >= 1) and np.all(n <= longest)
    positions = np.concatenate([np.arange(a, a + k) for a, k in zip(s, n)])
    np.testing.assert_array_equal(positions, np.arange(1000, 1000 + lengths.sum()))  # in order, once
    owner = np.repeat(np.arange(lengths.size), lengths)
    np.testing.assert_array_equal(np.repeat(t, n), tag[owner])         # each piece keeps its value


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), he=st.booleans(), block=st.integers(1, 200),
       scipy_kernel=st.booleans())
def test_blocked_accumulation_equals_one_bincount_of_the_query(seed, he, block, scipy_kernel,
                                                               monkeypatch_module):
    """Differential: blocks of any size (ranges cut into pieces across blocks), added in place
    by scipy's kernel or by ``np.add.at``, sum to the whole query's ``bincount``."""
    rng = np.random.default_rng(seed)
    n_words = int(rng.integers(2, 40))
    index, idf = _random_index(rng, int(rng.integers(1, 400)), n_words, he)
    q_words, q_weights, kw = _random_query(rng, n_words, idf, he)
    monkeypatch_module.setattr(acc, "PARALLEL_MIN_POSTINGS", 1 << 40)
    monkeypatch_module.setattr(acc, "SPARSE_MIN_POSTINGS", 1 << 40)
    whole, read_whole = index.score_query(q_words, q_weights, idf, **kw)
    monkeypatch_module.setattr(acc, "SPARSE_MIN_POSTINGS", 1)
    monkeypatch_module.setattr(acc, "BLOCK_POSTINGS", block)
    monkeypatch_module.setattr(acc, "SCIPY_KERNEL", scipy_kernel)
    blocked, read_blocked = index.score_query(q_words, q_weights, idf, **kw)
    assert read_blocked == read_whole
    assert blocked.dtype == np.float32 and blocked.shape == whole.shape
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-7)


def test_blocks_really_are_added_in_several_calls(monkeypatch):
    """The blocked path is taken and cuts the query (else the test above compares one path with
    itself): with 50-posting blocks, a 1,000-posting query is added in about 20 calls."""
    rng = np.random.default_rng(11)
    index, idf = _random_index(rng, 300, 10, he=False)
    calls = []
    real = acc._accumulate_block

    def spy(seg, starts, lengths, *args):
        calls.append(int(lengths.sum()))
        return real(seg, starts, lengths, *args)

    monkeypatch.setattr(acc, "_accumulate_block", spy)
    monkeypatch.setattr(acc, "SPARSE_MIN_POSTINGS", 1)
    monkeypatch.setattr(acc, "BLOCK_POSTINGS", 50)
    q_words = np.arange(10)
    _, read = index.score_query(q_words, tfidf(q_words, np.ones(10, np.float32), idf), idf)
    assert sum(calls) == read > 500
    assert len(calls) >= read // 50 and max(calls) <= 100


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _threads_scoring(monkeypatch, threads: int, cores: int) -> list[str]:
    """Names of the threads that accumulated a split query's groups, caller's group first."""
    import threading
    rng = np.random.default_rng(3)
    index, idf = _random_index(rng, 400, 30, he=False)
    seen = []
    real = acc.accumulate_ranges

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(acc, "accumulate_ranges", spy)
    monkeypatch.setattr(acc, "PARALLEL_MIN_POSTINGS", 1)
    monkeypatch.setattr(acc, "usable_cores", lambda: cores)
    q_words = np.arange(30)
    index.score_query(q_words, tfidf(q_words, np.ones(30, np.float32), idf), idf, threads=threads)
    return seen


def test_parallel_split_runs_on_pool_threads(monkeypatch):
    """The split really runs groups on other threads (else the test above compares one path
    with itself), and the calling thread's group comes first in the sum."""
    import threading
    seen = _threads_scoring(monkeypatch, threads=3, cores=8)
    assert len(seen) == 3
    assert seen[0] == threading.current_thread().name
    assert all(name.startswith("vbow-query") for name in seen[1:])


def test_parallel_split_uses_no_more_threads_than_usable_cores(monkeypatch):
    """A process pinned to one CPU (``taskset``) scores on its own thread whatever
    ``threads`` asks for: a second thread could only take turns with the first."""
    import threading
    assert _threads_scoring(monkeypatch, threads=3, cores=1) == [threading.current_thread().name]


def _score_in_child(index, idf, out):
    q_words = np.arange(30)
    out.put(index.score_query(q_words, tfidf(q_words, np.ones(30, np.float32), idf), idf,
                              threads=2)[0])


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_working_pool(monkeypatch):
    """A process forked after the pool started (a pre-forking server) scores on new threads
    instead of waiting forever on its parent's, which do not exist in the child."""
    import multiprocessing
    rng = np.random.default_rng(5)
    index, idf = _random_index(rng, 400, 30, he=False)
    monkeypatch.setattr(acc, "PARALLEL_MIN_POSTINGS", 1)
    q_words = np.arange(30)
    want = index.score_query(q_words, tfidf(q_words, np.ones(30, np.float32), idf), idf,
                             threads=2)[0]                      # starts the parent's pool
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_score_in_child, args=(index, idf, out))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung on its parent's scoring pool")
    assert child.exitcode == 0
    np.testing.assert_allclose(out.get(timeout=10), want, rtol=1e-6)


def test_the_installed_scipy_has_the_in_place_kernel():
    """A canary: the blocked path uses scipy's private ``csc_matvec`` (checked on a small product
    at first use), with ``np.add.at`` as the fallback. If this fails, scipy moved or changed the
    kernel: scores stay right (the fallback) but large queries score about 1.3x slower."""
    assert acc._in_place_kernel() is not None
