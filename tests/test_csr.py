"""vbow.search.csr helpers against plain loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vbow.search.csr import gather_ranges, group_by_key, offsets_from_counts


@given(pairs=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 6)), max_size=30))
def test_gather_ranges_equals_concatenated_aranges(pairs):
    starts = np.array([s for s, _ in pairs], np.int64)
    lengths = np.array([n for _, n in pairs], np.int64)
    expected = [x for s, n in pairs for x in range(s, s + n)]
    out = gather_ranges(starts, lengths)
    assert out.dtype == np.int64
    assert out.tolist() == expected


@given(counts=st.lists(st.integers(0, 10), max_size=20))
def test_offsets_from_counts(counts):
    off = offsets_from_counts(np.array(counts, np.int64))
    assert off.dtype == np.int64 and off.tolist() == [sum(counts[:i]) for i in range(len(counts) + 1)]


@given(keys=st.lists(st.integers(0, 5), max_size=30))
def test_group_by_key(keys):
    arr = np.array(keys, np.int64)
    order, off = group_by_key(arr, 6)
    for k in range(6):
        group = order[off[k]:off[k + 1]].tolist()
        assert group == [i for i, x in enumerate(keys) if x == k]   # stable, complete
