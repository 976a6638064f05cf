"""vbow.vocab.vocabulary: tree quantisation against brute-force argmin, determinism, validation,
multiple assignment, IDF and the reservoir sampler."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from vbow.errors import InvalidInputError, NotFittedError
from vbow.vocab.hamming_vocabulary import HammingVocabulary
from vbow.vocab.kmeans_vocabulary import KMeansVocabulary
from vbow.vocab.sampling import DescriptorSampler
from vbow.vocab.training import make_vocabulary

# --------------------------------------------------------------------------- test data


def rootsift_like(n: int, seed: int, n_centres: int = 40, intrinsic: int = 6) -> np.ndarray:
    """RootSIFT-like data: non-negative, unit norm, clustered with low intrinsic dimension.

    The centres and their local subspaces are fixed (seed 1234); ``seed`` draws the points, so
    two seeds give two samples of one distribution (training and query sets).
    """
    rng = np.random.default_rng(seed)
    c_rng = np.random.default_rng(1234)
    centres = np.abs(c_rng.normal(size=(n_centres, 128))) ** 2
    basis = c_rng.normal(size=(n_centres, intrinsic, 128)) * 0.35
    lab = rng.integers(n_centres, size=n)
    x = centres[lab] + np.einsum("ni,nid->nd", rng.normal(size=(n, intrinsic)), basis[lab])
    x = np.abs(x)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def binary_like(n: int, seed: int, n_centres: int = 40, p: float = 0.08) -> np.ndarray:
    """ORB-like data: 256-bit codes, noisy copies (bit flip probability p) of fixed centres."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).integers(0, 256, (n_centres, 32), dtype=np.uint8)
    lab = rng.integers(n_centres, size=n)
    flips = np.packbits(rng.random((n, 256)) < p, axis=1)
    return centres[lab] ^ flips


def brute_distances(vocab, x: np.ndarray) -> np.ndarray:
    """Distances from x to every word, computed independently of vbow (float64 / unpackbits)."""
    if isinstance(vocab, HammingVocabulary):
        bx = np.unpackbits(x, axis=1).astype(bool)
        bw = np.unpackbits(vocab.words_, axis=1).astype(bool)
        return np.rint(cdist(bx, bw, "hamming") * 256)
    return cdist(x.astype(np.float64), vocab.words_.astype(np.float64), "sqeuclidean")


KINDS = {"kmeans": (KMeansVocabulary, rootsift_like), "hamming": (HammingVocabulary, binary_like)}


@pytest.fixture(scope="module", params=["kmeans", "hamming"])
def fitted(request):
    cls, gen = KINDS[request.param]
    train = gen(4000, 0)
    vocab = cls(512, random_state=0).fit(train)
    return vocab, train, gen


# --------------------------------------------------------------------------- quantisation


def test_exhaustive_probing_equals_brute_force_argmin(fitted):
    vocab, _, gen = fitted
    queries = gen(1500, 7)
    probes = vocab.probes
    try:
        vocab.probes = vocab.coarse_.shape[0]       # every coarse cell: exact search
        words = vocab.quantise(queries)
    finally:
        vocab.probes = probes
    ref = brute_distances(vocab, queries)
    chosen = ref[np.arange(len(queries)), words]
    best = ref.min(axis=1)
    # the chosen word is a nearest word (ties and float32 rounding aside)
    np.testing.assert_allclose(chosen, best, rtol=0, atol=1e-5)
    assert (words == ref.argmin(axis=1)).mean() > 0.99


def test_default_probes_agree_with_exact_search(fitted):
    vocab, _, gen = fitted
    queries = gen(1500, 8)
    assert vocab.probes < vocab.coarse_.shape[0]
    words = vocab.quantise(queries)
    exact = brute_distances(vocab, queries).argmin(axis=1)
    assert (words == exact).mean() >= 0.8


def test_no_empty_words_after_fit(fitted):
    vocab, train, _ = fitted
    counts = np.bincount(vocab.quantise(train), minlength=vocab.n_words_)
    assert counts.shape == (vocab.n_words_,)
    assert counts.min() >= 1
    # n_words is a target: the tree has ceil(sqrt(n_words)) branches per level
    assert 2 <= vocab.n_words_ <= math.ceil(math.sqrt(512)) ** 2
    # the cell layout covers every word exactly once
    assert vocab.cell_offsets_[0] == 0 and vocab.cell_offsets_[-1] == vocab.n_words_
    assert np.all(np.diff(vocab.cell_offsets_) >= 0)


@pytest.mark.parametrize("kind", ["kmeans", "hamming"])
@pytest.mark.parametrize("probes", [1, 2])
def test_quantise_always_returns_a_valid_word(kind, probes):
    """Even far from the training data, and with plain tree descent, every descriptor gets a word."""
    cls, gen = KINDS[kind]
    vocab = cls(256, probes=probes, random_state=3).fit(gen(1500, 0))
    rng = np.random.default_rng(4)
    if kind == "kmeans":
        far = rng.random((500, 128)).astype(np.float32)
        far /= np.linalg.norm(far, axis=1, keepdims=True)
    else:
        far = rng.integers(0, 256, (500, 32), dtype=np.uint8)
    for q in (far, gen(500, 5)):
        words = vocab.quantise(q)
        assert words.dtype == np.int32 and words.shape == (len(q),)
        assert words.min() >= 0 and words.max() < vocab.n_words_


@pytest.mark.parametrize("kind", ["kmeans", "hamming"])
def test_fit_is_deterministic_and_seeded(kind):
    cls, gen = KINDS[kind]
    train = gen(2000, 0)
    a = cls(256, random_state=5).fit(train)
    b = cls(256, random_state=5).fit(train.copy())
    c = cls(256, random_state=6).fit(train)
    np.testing.assert_array_equal(a.words_, b.words_)
    np.testing.assert_array_equal(a.coarse_, b.coarse_)
    np.testing.assert_array_equal(a.cell_offsets_, b.cell_offsets_)
    assert a.words_.shape != c.words_.shape or not np.array_equal(a.words_, c.words_)


@pytest.mark.parametrize("kind", ["kmeans", "hamming"])
def test_fit_accepts_a_list_of_per_image_arrays(kind):
    cls, gen = KINDS[kind]
    train = gen(1200, 0)
    parts = np.split(train, [0, 100, 100, 700])      # includes empty arrays
    a = cls(256, random_state=1).fit(train)
    b = cls(256, random_state=1).fit(parts)
    np.testing.assert_array_equal(a.words_, b.words_)


@pytest.mark.parametrize("kind", ["kmeans", "hamming"])
@pytest.mark.parametrize("n", [1, 3, 10])
def test_tiny_training_sets(kind, n):
    cls, gen = KINDS[kind]
    train = gen(n, 2)
    vocab = cls(4096, random_state=0).fit(train)
    assert 1 <= vocab.n_words_ <= n
    words = vocab.quantise(train)
    assert words.min() >= 0 and words.max() < vocab.n_words_


def test_wrong_descriptors_raise_invalid_input_naming_the_expected_shape():
    km = KMeansVocabulary(256)
    hm = HammingVocabulary(256)
    bad_for_km = [np.zeros((5, 64), np.float32), np.zeros((5, 128), np.float64),
                  np.zeros((5, 128), np.uint8), np.zeros(128, np.float32)]
    for bad in bad_for_km:
        with pytest.raises(InvalidInputError, match=r"\(n, 128\) float32"):
            km.fit(bad)
    for bad in (np.zeros((5, 32), np.int8), np.zeros((5, 16), np.uint8),
                np.zeros((5, 128), np.float32)):
        with pytest.raises(InvalidInputError, match=r"\(n, 32\) uint8"):
            hm.fit(bad)
    with pytest.raises(InvalidInputError):
        km.fit([1, 2, 3])  # type: ignore[list-item]
    km.fit(rootsift_like(300, 0))
    hm.fit(binary_like(300, 0))
    with pytest.raises(InvalidInputError, match=r"\(n, 128\) float32; got \(4, 32\) uint8"):
        km.quantise(np.zeros((4, 32), np.uint8))
    with pytest.raises(InvalidInputError, match=r"\(n, 32\) uint8"):
        hm.quantise_multi(np.zeros((4, 128), np.float32))
    for err in (InvalidInputError,):
        assert issubclass(err, ValueError)


def test_fit_on_zero_descriptors_raises():
    with pytest.raises(InvalidInputError):
        KMeansVocabulary(256).fit([np.zeros((0, 128), np.float32)])


@pytest.mark.parametrize("bad", [{"n_words": 1}, {"probes": 0}, {"min_points_per_word": 0}])
def test_bad_parameters(bad):
    with pytest.raises(InvalidInputError):
        KMeansVocabulary(**{"n_words": 256, **bad})


@pytest.mark.parametrize("cls", [KMeansVocabulary, HammingVocabulary])
def test_use_before_fit_raises_not_fitted(cls):
    vocab = cls(256)
    x = np.zeros((3, cls.dim), cls.dtype)
    for call in (lambda: vocab.quantise(x), lambda: vocab.quantise_multi(x),
                 lambda: vocab.n_words_, lambda: vocab.fit_idf([np.array([0])]),
                 lambda: vocab.to_arrays()):
        with pytest.raises(NotFittedError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert not vocab.is_fitted


def test_make_vocabulary_picks_the_class():
    assert isinstance(make_vocabulary("sift", n_words=64), KMeansVocabulary)
    assert isinstance(make_vocabulary("orb", n_words=64), HammingVocabulary)


# --------------------------------------------------------------------------- multiple assignment


@given(k=st.integers(1, 6), sigma=st.floats(0.02, 1.0), seed=st.integers(0, 1000))
def test_quantise_multi_properties(fitted, k, sigma, seed):
    vocab, _, gen = fitted
    queries = gen(60, 100 + seed)
    words, weights = vocab.quantise_multi(queries, k, sigma=sigma)
    assert words.shape == weights.shape == (60, k)
    assert words.dtype == np.int32 and weights.dtype == np.float32
    np.testing.assert_array_equal(words[:, 0], vocab.quantise(queries))
    valid = words >= 0
    assert valid[:, 0].all()
    assert words[valid].max() < vocab.n_words_
    # valid entries come first; -1 entries have weight 0
    assert np.all(np.diff(valid.astype(int), axis=1) <= 0)
    assert np.all(weights[~valid] == 0)
    assert np.all(weights >= 0) and np.all(weights <= 1)
    np.testing.assert_array_equal(weights[:, 0], 1)
    # distinct words per descriptor, nearest first
    for row in words:
        r = row[row >= 0]
        assert len(set(r.tolist())) == len(r)
    ref = brute_distances(vocab, queries)
    d = np.where(valid, np.take_along_axis(ref, np.maximum(words, 0), axis=1), np.inf)
    assert np.all(np.diff(d, axis=1)[valid[:, 1:]] >= -1e-5)
    assert np.all(np.diff(weights, axis=1)[valid[:, 1:]] <= 1e-6)
    # soft weights follow exp(-(d_j - d_1) / (2 sigma^2)) on the unit-descriptor scale
    hamming = isinstance(vocab, HammingVocabulary)
    scale = (2.0 / 256) if hamming else 1.0
    expected = np.exp(-(d - d[:, :1]) * scale / (2 * sigma * sigma))
    # vbow computes squared L2 distances in float32 by the GEMM expansion |x|^2 - 2 x.w + |w|^2;
    # for unit-norm vectors each is exact to about 16 float32 ulps of 1 (9.3e-7 measured on this
    # data), and the weight multiplies the error of a distance difference by 1 / (2 sigma^2)
    # (1,250 at sigma = 0.02, a 1e-3 relative error). Hamming distances are exact integers.
    dist_tol = 0.0 if hamming else 2 * 16 * float(np.finfo(np.float32).eps)
    rtol = 1e-5 + float(np.expm1(dist_tol * scale / (2 * sigma * sigma)))
    np.testing.assert_allclose(weights[valid], expected[valid], rtol=rtol, atol=1e-5)
    # weights are positive unless the exponential underflows float32
    assert np.all(weights[valid & (expected > 1e-30)] > 0)


def test_quantise_multi_rejects_bad_k(fitted):
    vocab, train, _ = fitted
    with pytest.raises(InvalidInputError):
        vocab.quantise_multi(train[:3], 0)


def test_quantise_empty_input(fitted):
    vocab, train, _ = fitted
    words, weights = vocab.quantise_multi(train[:0], 3)
    assert words.shape == weights.shape == (0, 3)
    assert vocab.quantise(train[:0]).shape == (0,)


# --------------------------------------------------------------------------- IDF


@given(n_images=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_fit_idf_matches_log_n_over_df(fitted, n_images, seed):
    vocab, _, _ = fitted
    rng = np.random.default_rng(seed)
    lists = [rng.integers(0, min(vocab.n_words_, 40), rng.integers(0, 30)) for _ in range(n_images)]
    vocab.fit_idf(iter(lists))
    df = Counter(w for words in lists for w in set(words.tolist()))
    expected = np.array([math.log(n_images / df[w]) if df[w] else math.log(2 * n_images)
                         for w in range(vocab.n_words_)])
    np.testing.assert_allclose(vocab.idf_, expected, rtol=1e-6, atol=1e-6)
    assert vocab.idf_.dtype == np.float32 and vocab.n_training_images_ == n_images


def test_fit_idf_needs_an_image(fitted):
    with pytest.raises(InvalidInputError):
        fitted[0].fit_idf([])


# --------------------------------------------------------------------------- persistence


def test_to_arrays_from_arrays_round_trip(fitted):
    vocab, _, gen = fitted
    clone = type(vocab).from_arrays(vocab.get_params(), vocab.state_params(), vocab.to_arrays())
    q = gen(300, 9)
    np.testing.assert_array_equal(clone.quantise(q), vocab.quantise(q))
    w1, s1 = clone.quantise_multi(q, 3)
    w2, s2 = vocab.quantise_multi(q, 3)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(s1, s2)


def test_from_arrays_rejects_inconsistent_arrays(fitted):
    vocab = fitted[0]
    arrays = dict(vocab.to_arrays())
    arrays["idf"] = arrays["idf"][:-1]
    with pytest.raises(InvalidInputError):
        type(vocab).from_arrays(vocab.get_params(), vocab.state_params(), arrays)


# --------------------------------------------------------------------------- sampler


def stream(n: int, width: int = 1) -> np.ndarray:
    """Rows whose first value is the stream position."""
    return np.repeat(np.arange(n, dtype=np.int64)[:, None], width, axis=1)


@given(capacity=st.integers(1, 50), sizes=st.lists(st.integers(0, 40), max_size=8),
       seed=st.integers(0, 1000))
def test_sampler_keeps_at_most_capacity_distinct_rows(capacity, sizes, seed):
    sampler = DescriptorSampler(capacity, seed)
    data = stream(sum(sizes), 2)
    start = 0
    for size in sizes:
        sampler.add(data[start:start + size])
        start += size
    if sum(sizes) == 0:
        with pytest.raises(NotFittedError):
            sampler.sample()
        return
    sample = sampler.sample()
    assert sample.shape == (min(sum(sizes), capacity), 2)
    assert sampler.seen == sum(sizes)
    positions = sample[:, 0]
    assert len(set(positions.tolist())) == len(positions)      # no row twice
    assert positions.min() >= 0 and positions.max() < sum(sizes)
    if sum(sizes) <= capacity:
        np.testing.assert_array_equal(np.sort(positions), np.arange(sum(sizes)))


def test_sampler_is_uniform_over_stream_positions():
    """Each of n positions is kept with probability capacity / n (over many seeds)."""
    n, capacity, trials = 60, 12, 3000
    kept = np.zeros(n)
    for seed in range(trials):
        sampler = DescriptorSampler(capacity, seed)
        data = stream(n)
        rng = np.random.default_rng(10_000 + seed)            # random batch boundaries
        cuts = np.sort(rng.choice(np.arange(1, n), 4, replace=False))
        for part in np.split(data, cuts):
            sampler.add(part)
        kept[sampler.sample()[:, 0]] += 1
    p = capacity / n
    freq = kept / trials
    sd = math.sqrt(p * (1 - p) / trials)
    assert np.abs(freq - p).max() < 5 * sd, freq
    # chi-square test of the binomial position counts (their sum is fixed: n - 1 dof)
    expected = trials * p
    chi2 = float(((kept - expected) ** 2 / (expected * (1 - p))).sum())
    assert chi2 < scipy.stats.chi2.ppf(0.9999, n - 1), chi2
    # the early rows (first fill) are not favoured over the late ones
    assert abs(freq[:capacity].mean() - freq[-capacity:].mean()) < 0.03


def test_sampler_same_stream_and_seed_give_same_sample():
    data = np.random.default_rng(0).random((500, 3))
    a, b = DescriptorSampler(40, 9), DescriptorSampler(40, 9)
    a.add(data)
    for part in np.array_split(data, 7):
        b.add(part)
    np.testing.assert_array_equal(a.sample(), b.sample())
    c = DescriptorSampler(40, 10)
    c.add(data)
    assert not np.array_equal(a.sample(), c.sample())


def test_sampler_rejects_zero_capacity():
    with pytest.raises(InvalidInputError):
        DescriptorSampler(0)


def test_fit_with_max_samples_uses_a_bounded_sample():
    train = rootsift_like(3000, 0)
    vocab = KMeansVocabulary(256, random_state=0).fit(train, max_samples=400)
    # at most 400 / min_points_per_word words can be made from 400 descriptors
    assert vocab.n_words_ <= 100
