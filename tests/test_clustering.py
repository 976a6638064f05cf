"""vbow.vocab.clustering: distances, per-cluster sums, k-means and k-majority against references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans

from vbow.vocab.clustering import cluster_sums, kmajority, kmeans_l2, sq_l2_distances


@given(n=st.integers(1, 30), k=st.integers(1, 30), d=st.integers(1, 20),
       seed=st.integers(0, 2**32 - 1))
def test_sq_l2_distances_match_cdist(n, k, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    c = rng.normal(size=(k, d)).astype(np.float32)
    ref = cdist(x.astype(np.float64), c.astype(np.float64), "sqeuclidean")
    out = sq_l2_distances(x, c)
    assert out.shape == (n, k) and np.all(out >= 0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    norms = np.einsum("ij,ij->i", c, c)
    np.testing.assert_allclose(sq_l2_distances(x, c, norms), ref, rtol=1e-4, atol=1e-4)


@given(n=st.integers(0, 40), k=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_cluster_sums_match_a_loop(n, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    labels = rng.integers(0, k, n)
    sums, counts = cluster_sums(x, labels, k)
    for c in range(k):
        assert counts[c] == np.sum(labels == c)
        np.testing.assert_allclose(sums[c], x[labels == c].astype(np.float64).sum(axis=0),
                                   atol=1e-9)


def blobs(seed: int, k: int = 8, per: int = 60, d: int = 16, spread: float = 0.05):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(per, d)) for c in centres])
    return x.astype(np.float32), centres


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_recovers_well_separated_blobs(seed):
    x, centres = blobs(seed)
    found = kmeans_l2(x, len(centres), seed=seed)
    assert found.shape == centres.shape and found.dtype == np.float32
    d = cdist(centres, found)
    # a one-to-one match of true and found centres, each close
    assert sorted(d.argmin(axis=1).tolist()) == list(range(len(centres)))
    assert d.min(axis=1).max() < 0.05


def test_kmeans_inertia_close_to_sklearn():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1500, 8)).astype(np.float32)      # no structure: a hard case
    ours = kmeans_l2(x, 20, seed=0, max_iter=50)
    ref = KMeans(20, n_init=3, random_state=0).fit(x)
    inertia = cdist(x, ours, "sqeuclidean").min(axis=1).sum()
    assert inertia <= 1.05 * ref.inertia_


def test_kmeans_converges_to_a_lloyd_fixed_point():
    """With the default tolerance, one more Lloyd step barely lowers the inertia."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    c = kmeans_l2(x, 25, seed=0)
    labels = cdist(x, c, "sqeuclidean").argmin(axis=1)
    inertia = cdist(x, c, "sqeuclidean").min(axis=1).sum()
    means = np.stack([x[labels == j].mean(axis=0) if np.any(labels == j) else c[j]
                      for j in range(len(c))])
    after = cdist(x, means, "sqeuclidean").min(axis=1).sum()
    assert after >= inertia * (1 - 5e-3), (inertia, after)


def test_kmeans_caps_k_and_handles_duplicates():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)   # 3 distinct points, 12 rows
    c = kmeans_l2(x, 50, seed=0)
    assert c.shape == (12, 3)                               # k capped at n
    assert np.isfinite(c).all()
    # every distinct point is a centroid
    assert cdist(np.eye(3), c).min(axis=1).max() < 1e-6


def test_kmeans_is_deterministic():
    x, _ = blobs(5)
    np.testing.assert_array_equal(kmeans_l2(x, 6, seed=3), kmeans_l2(x, 6, seed=3))


@pytest.mark.parametrize("seed", [0, 1])
def test_kmajority_recovers_binary_centres(seed):
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 256, (6, 32), dtype=np.uint8)
    x = np.concatenate([c ^ np.packbits(rng.random((80, 256)) < 0.1, axis=1) for c in centres])
    found = kmajority(x, 6, seed=seed)
    assert found.shape == (6, 32) and found.dtype == np.uint8
    bits_c = np.unpackbits(centres, axis=1).astype(bool)
    bits_f = np.unpackbits(found, axis=1).astype(bool)
    d = np.rint(cdist(bits_c, bits_f, "hamming") * 256)
    assert sorted(d.argmin(axis=1).tolist()) == list(range(6))
    # majority of 80 copies with 10 % noise is the centre, barring a rare bit or two
    assert d.min(axis=1).max() <= 2


def test_kmajority_is_deterministic_and_caps_k():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    np.testing.assert_array_equal(kmajority(x, 5, seed=1), kmajority(x, 5, seed=1))
    assert kmajority(x[:4], 10, seed=0).shape == (4, 32)
