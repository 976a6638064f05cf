"""The fast query-time paths of vocabulary assignment (skinny GEMMs, argmin probing) agree with
the bulk path and with brute force over the probed cells."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_vocabulary import KINDS, brute_distances


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request):
    cls, gen = KINDS[request.param]
    vocab = cls(1024, probes=2, random_state=0).fit(gen(6000, 0))
    return vocab, gen


@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), piece=st.integers(50, 400))
@settings(deadline=None, max_examples=20)
def test_small_batches_equal_one_bulk_call(fitted, seed, k, piece):
    """Few rows per cell (query time) and many rows (indexing) give the same words."""
    vocab, gen = fitted
    x = gen(6000, 50 + seed)  # about 375 rows per coarse cell: the bulk GEMM path
    words, weights = vocab.quantise_multi(x, k)
    parts = [vocab.quantise_multi(x[s:s + piece], k) for s in range(0, x.shape[0], piece)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), words)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), weights, rtol=1e-3, atol=1e-4)


def test_assignment_is_the_nearest_word_of_the_probed_cells(fitted):
    """Brute force restricted to each descriptor's ``probes`` nearest coarse cells."""
    vocab, gen = fitted
    x = gen(300, 999)
    if x.dtype == np.uint8:
        from vbow.vocab.hamming import hamming_distances
        coarse = hamming_distances(x, vocab.coarse_).astype(np.float64)
    else:
        coarse = ((x[:, None, :].astype(np.float64) - vocab.coarse_[None].astype(np.float64)) ** 2).sum(-1)
    full = brute_distances(vocab, x)
    got = vocab.quantise(x)
    for i in range(x.shape[0]):
        cells = np.argsort(coarse[i], kind="stable")[:vocab.probes]
        # ties in coarse distance: any of the tied cells may be probed; skip those rows
        if np.sum(coarse[i] <= coarse[i][cells[-1]]) > vocab.probes:
            continue
        allowed = np.concatenate([np.arange(vocab.cell_offsets_[c], vocab.cell_offsets_[c + 1])
                                  for c in cells])
        best = full[i, allowed].min()
        assert full[i, got[i]] <= best + 1e-4
        assert got[i] in allowed


@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), n=st.integers(1, 900))
@settings(deadline=None, max_examples=25)
def test_batched_query_path_equals_the_per_cell_loop(fitted, seed, k, n):
    """The query-sized batched path (one GEMM per cell, vectorised selection) gives the words and
    distances of the general per-cell loop."""
    vocab, gen = fitted
    x = gen(n, 7000 + seed)
    fast = vocab.quantise_multi(x, k)
    saved = vocab.small_pairs
    try:
        vocab.small_pairs = 0  # every batch takes the per-cell loop
        slow = vocab.quantise_multi(x, k)
    finally:
        vocab.small_pairs = saved
    assert 2 * n <= saved  # the first call did take the batched path
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-5, atol=1e-6)


@given(seed=st.integers(0, 10_000), k=st.integers(1, 3), rows=st.integers(1, 50),
       probes=st.sampled_from([1, 2, 6]))
@settings(deadline=None, max_examples=20)
def test_coarse_cells_in_row_blocks_equal_one_block(fitted, seed, k, rows, probes):
    """The coarse distances are taken in blocks of rows that fit a cache: any block size gives
    the words of one block over the whole batch (argmin probing, and argpartition past 4)."""
    vocab, gen = fitted
    x = gen(700, 20_000 + seed)
    saved = vocab._coarse_block_floats, vocab.probes
    try:
        vocab.probes = probes
        vocab._coarse_block_floats = 1 << 40                      # one block
        whole = vocab.quantise_multi(x, k)
        vocab._coarse_block_floats = rows * vocab.coarse_.shape[0]  # `rows` rows a block
        blocked = vocab.quantise_multi(x, k)
    finally:
        vocab._coarse_block_floats, vocab.probes = saved
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])


@given(cells=st.lists(st.integers(0, 40), min_size=0, max_size=300), parts=st.integers(1, 6))
def test_split_at_cells_covers_every_pair_and_never_cuts_a_cell(cells, parts):
    from vbow.vocab.vocabulary import split_at_cells
    sorted_cells = np.sort(np.asarray(cells, np.int64))
    groups = split_at_cells(sorted_cells, parts)
    assert len(groups) <= parts
    covered = np.concatenate([np.arange(len(sorted_cells))[g] for g in groups]) if groups else \
        np.zeros(0, np.int64)
    np.testing.assert_array_equal(covered, np.arange(len(sorted_cells)))   # in order, once each
    assert all(g.stop > g.start for g in groups)
    for a, b in zip(groups[:-1], groups[1:]):
        assert sorted_cells[a.stop - 1] != sorted_cells[b.start]            # a boundary between cells
    if len(set(cells)) == len(cells) >= parts:   # no run to keep whole: exactly `parts` groups
        assert len(groups) == parts
        sizes = [g.stop - g.start for g in groups]
        assert max(sizes) - min(sizes) <= 1


@pytest.fixture()
def split_everywhere(monkeypatch, fitted):
    """Every query-sized batch split across threads, however few its pairs and cores."""
    import vbow.vocab.vocabulary as vocabulary_module
    vocab, _ = fitted
    monkeypatch.setattr(vocabulary_module, "usable_cores", lambda: 8)
    monkeypatch.setattr(vocab, "parallel_min_pairs", 1)
    return vocab


@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), n=st.integers(1, 900),
       threads=st.integers(2, 5))
@settings(deadline=None, max_examples=25)
def test_threaded_query_assignment_equals_one_thread(split_everywhere, fitted, seed, k, n, threads):
    """Pairs split across threads at cell boundaries give exactly the words and weights of one
    thread (each cell's products are the same products)."""
    vocab, gen = fitted
    x = gen(n, 30_000 + seed)
    one = vocab.quantise_multi(x, k, threads=1)
    many = vocab.quantise_multi(x, k, threads=threads)
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1], one[1])


def test_threaded_query_assignment_runs_on_the_pool(split_everywhere, fitted, monkeypatch):
    """The split really hands groups to other threads (else the test above compares one path
    with itself), and ``threads=1`` or a single usable core keeps them on the calling thread."""
    import threading

    import vbow.vocab.vocabulary as vocabulary_module
    vocab, gen = fitted
    seen = []
    real = type(vocab)._assign_pairs_small

    def spy(self, *args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(vocab), "_assign_pairs_small", spy)
    x = gen(600, 4)
    vocab.quantise_multi(x, 2, threads=3)
    assert len(seen) == 3 and seen[0] == threading.current_thread().name
    assert all(name.startswith("vbow-query") for name in seen[1:])
    seen.clear()
    vocab.quantise_multi(x, 2, threads=1)
    assert seen == [threading.current_thread().name]
    seen.clear()
    monkeypatch.setattr(vocabulary_module, "usable_cores", lambda: 1)
    vocab.quantise_multi(x, 2, threads=3)
    assert seen == [threading.current_thread().name]
