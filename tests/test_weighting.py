"""vbow.search.weighting: burstiness, bags of words and TF-IDF against plain-Python references."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import UnknownOptionError
from vbow.search.weighting import BURSTINESS, bag_of_words, burst, tfidf

REF_BURST = {"sqrt": np.sqrt, "log": np.log1p, "none": lambda t: t}


@given(tf=st.lists(st.floats(0, 1e4, width=32, allow_subnormal=False), max_size=20), mode=st.sampled_from(BURSTINESS))
def test_burst_matches_numpy(tf, mode):
    tf = np.array(tf, np.float64)
    out = burst(tf, mode)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, REF_BURST[mode](tf), rtol=1e-6)


def test_burst_rejects_unknown_mode():
    with pytest.raises(UnknownOptionError, match="sqrt"):
        burst(np.ones(3), "square")


@given(n=st.integers(0, 40), k=st.integers(1, 3), weighted=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_bag_of_words_matches_a_dict_histogram(n, k, weighted, seed):
    rng = np.random.default_rng(seed)
    words = rng.integers(-1, 12, (n, k))
    weights = rng.random((n, k)).astype(np.float32) if weighted else None
    uniq, tf = bag_of_words(words if k > 1 else words[:, 0],
                            None if weights is None else (weights if k > 1 else weights[:, 0]))
    ref: dict[int, float] = defaultdict(float)
    for i in range(n):
        for j in range(max(1, k)):
            if words[i, j] >= 0:
                ref[int(words[i, j])] += 1.0 if weights is None else float(weights[i, j])
    assert uniq.dtype == np.int32 and tf.dtype == np.float32
    assert uniq.tolist() == sorted(ref)
    np.testing.assert_allclose(tf, [ref[w] for w in sorted(ref)], rtol=1e-5)


@given(m=st.integers(0, 15), mode=st.sampled_from(BURSTINESS), zero_idf=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_tfidf_is_unit_norm_or_zero_and_matches_reference(m, mode, zero_idf, seed):
    rng = np.random.default_rng(seed)
    n_words = 20
    idf = rng.random(n_words).astype(np.float32) * 3
    if zero_idf:
        idf[rng.random(n_words) < 0.5] = 0
    words = np.sort(rng.choice(n_words, m, replace=False)).astype(np.int32)
    tf = rng.integers(1, 9, m).astype(np.float32)
    v = tfidf(words, tf, idf, mode)
    assert v.shape == (m,) and v.dtype == np.float32
    ref = REF_BURST[mode](tf.astype(np.float64)) * idf[words]
    norm = np.linalg.norm(ref)
    if norm == 0:
        assert not v.any()
    else:
        assert abs(np.linalg.norm(v.astype(np.float64)) - 1) < 1e-5
        np.testing.assert_allclose(v, ref / norm, rtol=1e-5, atol=1e-7)


def test_tfidf_of_an_empty_bag():
    v = tfidf(np.zeros(0, np.int32), np.zeros(0, np.float32), np.ones(5, np.float32))
    assert v.shape == (0,)


def test_burstiness_tames_repeated_words():
    idf = np.ones(2, np.float32)
    v = tfidf(np.array([0, 1]), np.array([9.0, 1.0], np.float32), idf, "sqrt")
    np.testing.assert_allclose(v, np.array([3, 1]) / np.sqrt(10), rtol=1e-6)
