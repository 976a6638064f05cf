"""vbow.verify.keypoint_store: fixed-point geometry round trip and per-image retrieval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import InvalidInputError
from vbow.verify.keypoint_store import MAX_COORD, KeypointStore, decode_geometry, encode_geometry

# Documented quantisation: 1/16 px, 16 steps per octave of size, 256 steps per turn.
XY_TOL = 1 / 32 + 1e-4
SIZE_TOL = 2 ** (1 / 32) - 1 + 1e-4      # ~2.2 %
ANGLE_TOL = 360 / 512 + 1e-3            # ~0.70°


def random_keypoints(rng: np.random.Generator, n: int, max_xy: float = 4095.0) -> np.ndarray:
    kp = np.empty((n, 4), np.float32)
    kp[:, :2] = rng.random((n, 2)) * max_xy
    kp[:, 2] = np.exp2(rng.uniform(-2, 13.5, n))          # 0.25 .. ~11,600 px
    kp[:, 3] = rng.random(n) * 360
    return kp


def angle_diff(a, b):
    return np.abs((np.asarray(a, np.float64) - b + 180) % 360 - 180)


def check_close(decoded: np.ndarray, original: np.ndarray) -> None:
    assert decoded.dtype == np.float32 and decoded.shape == original.shape
    assert np.abs(decoded[:, :2].astype(np.float64) - original[:, :2]).max(initial=0) <= XY_TOL
    ratio = decoded[:, 2].astype(np.float64) / original[:, 2]
    assert np.abs(ratio - 1).max(initial=0) <= SIZE_TOL
    assert angle_diff(decoded[:, 3], original[:, 3]).max(initial=0) <= ANGLE_TOL


@given(n=st.integers(0, 200), seed=st.integers(0, 2**32 - 1))
def test_encode_decode_round_trip_within_quantisation(n, seed):
    kp = random_keypoints(np.random.default_rng(seed), n)
    xy, log_scale, angle = encode_geometry(kp)
    assert xy.dtype == np.uint16 and log_scale.dtype == np.uint8 and angle.dtype == np.uint8
    check_close(decode_geometry(xy, log_scale, angle), kp)


@given(x=st.floats(0, 4095.9), y=st.floats(0, 4095.9), size=st.floats(0.25, 15000),
       angle=st.floats(0, 359.999))
def test_single_keypoint_round_trip(x, y, size, angle):
    kp = np.array([[x, y, size, angle]], np.float32)
    check_close(decode_geometry(*encode_geometry(kp)), kp)


def test_undefined_angle_and_full_turn():
    kp = np.array([[1, 2, 3, -1], [1, 2, 3, 360], [1, 2, 3, 359.9]], np.float32)
    out = decode_geometry(*encode_geometry(kp))
    assert angle_diff(out[:, 3], [359, 0, 359.9]).max() <= ANGLE_TOL
    assert np.all((out[:, 3] >= 0) & (out[:, 3] < 360))


def test_max_coordinate_is_storable_and_larger_is_refused():
    store = KeypointStore(100)
    kp = np.array([[MAX_COORD, MAX_COORD, 4, 0]], np.float32)
    store.add([np.array([5])], [kp])
    check_close(store.get(0)[1], kp)
    with pytest.raises(InvalidInputError):
        store.add([np.array([5])], [np.array([[MAX_COORD + 1, 0, 4, 0]], np.float32)])


def make_images(rng, n_images, n_words):
    words, kps = [], []
    for _ in range(n_images):
        n = int(rng.integers(0, 30))
        words.append(rng.integers(0, n_words, n))
        kps.append(random_keypoints(rng, n))
    return words, kps


@pytest.mark.parametrize("n_words", [1000, 65536, 200_000])
def test_get_returns_each_images_rows_after_several_adds_and_select(n_words):
    rng = np.random.default_rng(n_words)
    store = KeypointStore(n_words)
    all_words, all_kps = [], []
    for batch in range(70):                      # more than 64 blocks: exercises merging
        w, k = make_images(rng, int(rng.integers(0, 4)), n_words)
        if batch == 3:
            w[0:0] = [np.array([n_words - 1, 0])]
            k[0:0] = [random_keypoints(rng, 2)]
        store.add(w, k)
        all_words += w
        all_kps += k
    assert store.n_images == len(all_words)
    for i in range(store.n_images):
        words, kp = store.get(i)
        np.testing.assert_array_equal(words, all_words[i])
        assert words.dtype == np.int64
        check_close(kp, all_kps[i])
    keep = rng.random(store.n_images) < 0.6
    store.select(keep)
    kept = np.flatnonzero(keep)
    assert store.n_images == kept.size
    for new, old in enumerate(kept.tolist()):
        words, kp = store.get(new)
        np.testing.assert_array_equal(words, all_words[old])
        check_close(kp, all_kps[old])
    # more images after a select keep their ids
    w, k = make_images(rng, 3, n_words)
    store.add(w, k)
    for j in range(3):
        np.testing.assert_array_equal(store.get(kept.size + j)[0], w[j])


def test_word_dtype_follows_vocabulary_size():
    assert KeypointStore(65536).to_arrays()["kp_words"].dtype == np.uint16
    assert KeypointStore(65537).to_arrays()["kp_words"].dtype == np.uint32


def test_to_arrays_from_arrays_round_trip():
    rng = np.random.default_rng(0)
    store = KeypointStore(500)
    for _ in range(3):
        store.add(*make_images(rng, 4, 500))
    clone = KeypointStore.from_arrays(500, store.to_arrays())
    assert clone.n_images == store.n_images == 12
    for i in range(12):
        a, b = store.get(i), clone.get(i)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    empty = KeypointStore.from_arrays(500, KeypointStore(500).to_arrays())
    assert empty.n_images == 0
    bad = dict(store.to_arrays())
    bad["kp_angle"] = bad["kp_angle"][:-1]
    with pytest.raises(InvalidInputError):
        KeypointStore.from_arrays(500, bad)


def test_bad_input_is_refused():
    store = KeypointStore(10)
    with pytest.raises(InvalidInputError):
        store.add([np.array([1, 2])], [np.zeros((3, 4), np.float32)])
    with pytest.raises(InvalidInputError):
        store.add([np.array([1])], [])
    with pytest.raises(InvalidInputError):
        store.get(0)
    store.add([np.array([1])], [np.zeros((1, 4), np.float32)])
    with pytest.raises(InvalidInputError):
        store.get(1)
    with pytest.raises(InvalidInputError):
        store.get(-1)


def test_storage_is_eight_bytes_per_feature_with_a_64k_vocabulary():
    rng = np.random.default_rng(1)
    store = KeypointStore(65536)
    store.add(*make_images(rng, 10, 65536))
    arrays = store.to_arrays()
    n = arrays["kp_words"].shape[0]
    per_feature = sum(arrays[k].nbytes for k in ("kp_words", "kp_xy", "kp_log_scale", "kp_angle"))
    assert per_feature == 8 * n
    assert math.isclose(MAX_COORD, 65535 / 16)


def test_per_feature_signatures_of_older_bundles_load_and_are_ignored():
    rng = np.random.default_rng(3)
    counts = [3, 0, 5, 2]
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    f = int(offsets[-1])
    kp = np.c_[rng.random((f, 2)) * 300, rng.uniform(1, 30, f), rng.random(f) * 360].astype(np.float32)
    store = KeypointStore(50)
    store.add_flat(offsets, rng.integers(0, 50, f), kp)
    arrays = store.to_arrays()
    assert set(arrays) == {"kp_offsets", "kp_words", "kp_xy", "kp_log_scale", "kp_angle"}
    older = dict(arrays, kp_signatures=rng.integers(0, 2**63, f, dtype=np.uint64))
    again = KeypointStore.from_arrays(50, older)
    assert set(again.to_arrays()) == set(arrays)
    for i in range(len(counts)):
        for x, y in zip(again.get(i), store.get(i)):
            np.testing.assert_array_equal(x, y)
