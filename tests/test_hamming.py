"""vbow.vocab.hamming against np.unpackbits references."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from vbow.vocab.hamming import as_words64, bitwise_majority, cell_distances, hamming_distances


def ref_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bits_a = np.unpackbits(a, axis=1).astype(np.int64)
    bits_b = np.unpackbits(b, axis=1).astype(np.int64)
    return (bits_a[:, None, :] != bits_b[None, :, :]).sum(axis=2)


@given(n=st.integers(0, 20), m=st.integers(0, 20), width=st.integers(1, 41),
       seed=st.integers(0, 2**32 - 1), chunk=st.integers(1, 8))
def test_hamming_distances_match_unpackbits(n, m, width, seed, chunk):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, width), dtype=np.uint8)
    b = rng.integers(0, 256, (m, width), dtype=np.uint8)
    out = hamming_distances(a, b, chunk=chunk)
    assert out.shape == (n, m)
    np.testing.assert_array_equal(out, ref_hamming(a, b))
    # the pre-packed uint64 form gives the same distances
    np.testing.assert_array_equal(hamming_distances(as_words64(a), as_words64(b)), out)


@given(n_cells=st.integers(1, 6), width=st.integers(1, 9), n_bytes=st.integers(1, 40),
       n_queries=st.integers(1, 7), n_pairs=st.integers(0, 60), chunk=st.integers(1, 70),
       seed=st.integers(0, 2**32 - 1))
def test_cell_distances_match_unpackbits_per_pair(n_cells, width, n_bytes, n_queries, n_pairs,
                                                   chunk, seed):
    """Each pair's distances to its cell's words, in blocks of any size, equal the reference."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 256, (n_cells, width, n_bytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (n_queries, n_bytes), dtype=np.uint8)
    pair_query = rng.integers(0, n_queries, n_pairs)
    pair_cell = rng.integers(0, n_cells, n_pairs)
    cells = np.stack([as_words64(words.reshape(-1, n_bytes))[:, j].reshape(n_cells, width)
                      for j in range(as_words64(queries).shape[1])])
    out = cell_distances(cells, as_words64(queries), pair_query, pair_cell, chunk=chunk)
    assert out.shape == (n_pairs, width) and out.dtype == np.uint16
    for i in range(n_pairs):
        ref = ref_hamming(queries[pair_query[i]][None], words[pair_cell[i]])[0]
        np.testing.assert_array_equal(out[i], ref)


def test_hamming_distances_match_scipy_for_orb_width():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (70, 32), dtype=np.uint8)
    ref = cdist(np.unpackbits(a, axis=1).astype(bool), np.unpackbits(b, axis=1).astype(bool),
                "hamming") * 256
    np.testing.assert_array_equal(hamming_distances(a, b), np.rint(ref).astype(np.int64))
    # extremes: identical and complementary descriptors
    assert hamming_distances(a[:1], a[:1])[0, 0] == 0
    assert hamming_distances(a[:1], ~a[:1])[0, 0] == 256


@given(width=st.integers(1, 40), n=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_as_words64_pads_with_zeros(width, n, seed):
    a = np.random.default_rng(seed).integers(0, 256, (n, width), dtype=np.uint8)
    w = as_words64(a)
    assert w.dtype == np.uint64 and w.shape == (n, -(-width // 8))
    raw = w.view(np.uint8).reshape(n, 8 * w.shape[1])
    np.testing.assert_array_equal(raw[:, :width], a)
    assert not raw[:, width:].any()


@given(n=st.integers(0, 60), k=st.integers(1, 8), width=st.integers(1, 12),
       seed=st.integers(0, 2**32 - 1))
def test_bitwise_majority_matches_per_cluster_reference(n, k, width, seed):
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, (n, width), dtype=np.uint8)
    labels = rng.integers(0, k, n)
    centroids, counts = bitwise_majority(packed, labels, k)
    assert centroids.shape == (k, width) and centroids.dtype == np.uint8
    for c in range(k):
        members = packed[labels == c]
        assert counts[c] == len(members)
        if len(members) == 0:
            assert not centroids[c].any()
            continue
        bits = np.unpackbits(members, axis=1)
        ones = bits.sum(axis=0)
        majority = (ones > len(members) - ones).astype(np.uint8)   # ties round down
        np.testing.assert_array_equal(np.unpackbits(centroids[c]), majority)


def test_bitwise_majority_minimises_total_hamming_distance():
    """The bitwise majority is the Hamming medoid-free optimum: no single bit flip improves it."""
    rng = np.random.default_rng(1)
    members = rng.integers(0, 256, (25, 4), dtype=np.uint8)
    centroid, _ = bitwise_majority(members, np.zeros(25, np.int64), 1)
    best = ref_hamming(centroid, members).sum()
    bits = np.unpackbits(centroid[0])
    for i in range(bits.size):
        flipped = bits.copy()
        flipped[i] ^= 1
        assert ref_hamming(np.packbits(flipped)[None, :], members).sum() >= best
