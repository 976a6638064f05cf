"""vbow.search.string_table: strings as one UTF-8 blob plus offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.search.string_table import StringTable, encode_strings


@given(strings=st.lists(st.text(max_size=20), max_size=30))
def test_round_trip(strings):
    blob, offsets = encode_strings(strings)
    assert offsets.shape == (len(strings) + 1,) and offsets[0] == 0
    assert offsets[-1] == blob.shape[0] == sum(len(s.encode("utf-8")) for s in strings)
    table = StringTable(blob, offsets)
    assert len(table) == len(strings)
    assert table.to_list() == strings
    assert list(table) == strings
    for i in range(len(strings)):
        assert table[i] == strings[i] and table[-1 - i] == strings[-1 - i]
    assert table[1:5] == strings[1:5] and table[::-2] == strings[::-2]


def test_index_errors():
    table = StringTable(*encode_strings(["a", "b"]))
    with pytest.raises(IndexError):
        table[2]
    with pytest.raises(IndexError):
        table[-3]
    assert "b" in table and "c" not in table
