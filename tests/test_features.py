"""vbow.describe.features: SIFT/RootSIFT and ORB extraction."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import InvalidInputError, UnknownOptionError
from vbow.describe.features import FeatureExtractor, root_sift
from vbow.vocab.hamming import hamming_distances
from vbow.synthetic import make_product_image

PRODUCT = make_product_image(np.random.default_rng(0), 320)


@given(n=st.integers(0, 20), seed=st.integers(0, 2**32 - 1))
def test_root_sift_matches_the_formula(n, seed):
    d = np.random.default_rng(seed).integers(0, 256, (n, 128)).astype(np.float32)
    d[:1] = 0                                        # a zero descriptor stays zero
    out = root_sift(d)
    l1 = d.sum(axis=1, keepdims=True)
    ref = np.sqrt(np.divide(d, l1, out=np.zeros_like(d), where=l1 > 0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(out, axis=1)
    assert np.allclose(norms[l1[:, 0] > 0], 1, atol=1e-5)


@pytest.mark.parametrize("method, dim, dtype", [("sift", 128, np.float32), ("orb", 32, np.uint8),
                                               ("teblid", 32, np.uint8)])
def test_extract_shapes_and_bounds(method, dim, dtype):
    f = FeatureExtractor(method, 300).extract(PRODUCT)
    assert 50 <= len(f) <= 300
    assert f.keypoints.shape == (len(f), 4) and f.keypoints.dtype == np.float32
    assert f.descriptors.shape == (len(f), dim) and f.descriptors.dtype == dtype
    assert f.image_size == (320, 320)
    x, y, size, angle = f.keypoints.T
    assert np.all((x >= 0) & (x < 320) & (y >= 0) & (y < 320)) and np.all(size > 0)
    assert np.all(((angle >= 0) & (angle < 360)) | (angle == -1))
    if method == "sift":
        assert np.all(f.descriptors >= 0)
        np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1, atol=1e-4)


def test_sift_without_root_sift_matches_opencv():
    f = FeatureExtractor("sift", 200, root_sift=False).extract(PRODUCT)
    gray = cv2.cvtColor(PRODUCT, cv2.COLOR_BGR2GRAY)
    kps, _ = cv2.SIFT_create(nfeatures=200).detectAndCompute(gray, None)
    ref = {(round(k.pt[0], 3), round(k.pt[1], 3)) for k in kps}
    got = {(round(float(x), 3), round(float(y), 3)) for x, y in f.keypoints[:, :2]}
    assert len(got & ref) >= 0.95 * len(got)


def test_gray_and_colour_input_agree():
    ex = FeatureExtractor("sift", 200)
    gray = cv2.cvtColor(PRODUCT, cv2.COLOR_BGR2GRAY)
    a, b = ex.extract(PRODUCT), ex.extract(gray)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.descriptors, b.descriptors)


def test_teblid_describes_orbs_keypoints_with_opencvs_teblid():
    """Same keypoints as ORB; descriptors are OpenCV's TEBLID at ORB's scale, not ORB's."""
    orb, teblid = (FeatureExtractor(m, 300).extract(PRODUCT) for m in ("orb", "teblid"))
    gray = cv2.cvtColor(PRODUCT, cv2.COLOR_BGR2GRAY)
    detector = cv2.ORB_create(nfeatures=300, edgeThreshold=19, scoreType=cv2.ORB_HARRIS_SCORE)
    kps = detector.detect(gray, None)
    kps, ref = cv2.xfeatures2d.TEBLID_create(1.0, cv2.xfeatures2d.TEBLID_SIZE_256_BITS).compute(gray, kps)
    np.testing.assert_array_equal(teblid.descriptors, ref)
    np.testing.assert_allclose(teblid.keypoints[:, :2], [k.pt for k in kps], atol=1e-4)
    assert {tuple(p) for p in teblid.keypoints[:, :2].round(2)} <= \
        {tuple(p) for p in orb.keypoints[:, :2].round(2)}
    shared = min(len(orb), len(teblid))
    assert np.mean(np.all(orb.descriptors[:shared] == teblid.descriptors[:shared], axis=1)) < 0.05


def test_teblid_descriptors_match_across_a_rotation_better_than_chance():
    """A keypoint and its rotated copy get nearby descriptors (rotation is normalised by ORB's
    keypoint angle): nearest neighbours mostly land on the true counterpart."""
    h, w = PRODUCT.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
    turned = cv2.warpAffine(PRODUCT, rot, (w, h), borderValue=(255, 255, 255))
    ex = FeatureExtractor("teblid", 300)
    a, b = ex.extract(PRODUCT), ex.extract(turned)
    nearest = np.argmin(hamming_distances(a.descriptors, b.descriptors), axis=1)
    moved = np.c_[a.keypoints[:, :2], np.ones(len(a))] @ rot.T
    correct = np.linalg.norm(moved - b.keypoints[nearest, :2], axis=1) < 3
    assert correct.mean() > 0.3


@pytest.mark.parametrize("method", ["sift", "orb", "teblid"])
def test_flat_image_has_no_features(method):
    f = FeatureExtractor(method).extract(np.full((100, 120, 3), 77, np.uint8))
    assert len(f) == 0 and f.keypoints.shape == (0, 4)
    assert f.descriptors.shape[0] == 0 and f.image_size == (120, 100)


def test_picklable_for_worker_processes():
    ex = FeatureExtractor("orb", 100)
    first = ex.extract(PRODUCT)
    clone = pickle.loads(pickle.dumps(ex))
    second = clone.extract(PRODUCT)
    np.testing.assert_array_equal(first.descriptors, second.descriptors)
    assert clone.get_params() == ex.get_params()


def test_bad_arguments():
    with pytest.raises(UnknownOptionError, match="sift"):
        FeatureExtractor("surf")
    with pytest.raises(InvalidInputError):
        FeatureExtractor("sift", 0)
    with pytest.raises(InvalidInputError, match="uint8"):
        FeatureExtractor().extract(PRODUCT.astype(np.float32))
    with pytest.raises(InvalidInputError):
        FeatureExtractor().extract("photo.jpg")
