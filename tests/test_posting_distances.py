"""PostingSegment.hamming_distances against a per-posting count of differing bits, on both of
its paths (ranges compared where they lie, and one gather for more than 4,096 ranges)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vbow.search.postings import PostingSegment


def segment_with_signatures(rng: np.random.Generator, n_postings: int) -> PostingSegment:
    sig = rng.integers(0, 2**64, n_postings, dtype=np.uint64, endpoint=False)
    return PostingSegment(0, 1, np.array([0, n_postings], np.int64),
                          np.zeros(n_postings, np.uint32), sig)


def differing_bits(seg: PostingSegment, starts, lengths, query) -> list[int]:
    return [bin(int(seg.signatures[s + i]) ^ int(q)).count("1")
            for s, k, q in zip(starts, lengths, query) for i in range(k)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_ranges=st.sampled_from([1, 3, 40, 4096, 4097, 5000]))
def test_distances_are_the_bits_that_differ(seed, n_ranges):
    rng = np.random.default_rng(seed)
    seg = segment_with_signatures(rng, 2000)
    lengths = rng.integers(1, 4, n_ranges)
    starts = rng.integers(0, 2000 - lengths)     # ranges may overlap and repeat, in any order
    query = rng.integers(0, 2**64, n_ranges, dtype=np.uint64, endpoint=False)
    query[rng.random(n_ranges) < 0.1] = seg.signatures[starts[:1]]   # some exact matches
    out = seg.hamming_distances(starts.astype(np.int64), lengths.astype(np.int64), query)
    assert out.dtype == np.uint8
    assert out.tolist() == differing_bits(seg, starts.tolist(), lengths.tolist(), query.tolist())


def test_a_range_equal_to_its_query_signature_is_at_distance_zero():
    rng = np.random.default_rng(1)
    seg = segment_with_signatures(rng, 10)
    out = seg.hamming_distances(np.array([4], np.int64), np.array([1], np.int64),
                                seg.signatures[4:5])
    flipped = seg.hamming_distances(np.array([4], np.int64), np.array([1], np.int64),
                                    ~seg.signatures[4:5])
    assert out.tolist() == [0] and flipped.tolist() == [64]
