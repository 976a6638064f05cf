"""vbow.colour: HSV colour signatures compared by the Bhattacharyya coefficient."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.colour import ColourHistogram, bhattacharyya
from vbow.errors import InvalidInputError

HIST = ColourHistogram()
FLAT = ColourHistogram(centre_sigma=0, border_suppression=0)


@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 300), w=st.integers(1, 300))
def test_signature_is_a_unit_sqrt_histogram(seed, h, w):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    sig = HIST.compute(img)
    assert sig.shape == (HIST.n_bins,) and sig.dtype == np.float32
    assert np.all(sig >= 0)
    assert abs(float(np.dot(sig, sig)) - 1) < 1e-5
    assert float(bhattacharyya(sig[None, :], sig)[0]) == pytest.approx(1, abs=1e-5)


def test_n_bins():
    assert HIST.n_bins == 16 * 3 * 3 + 8
    assert ColourHistogram(hue_bins=4, saturation_bins=2, value_bins=2, grey_bins=3).n_bins == 19


def test_a_flat_colour_fills_one_bin_and_different_hues_differ():
    sigs = []
    for bgr in [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)]:
        img = np.full((40, 50, 3), bgr, np.uint8)
        sig = HIST.compute(img)
        assert np.count_nonzero(sig) == 1 and sig.max() == pytest.approx(1)
        sigs.append(sig)
    gram = np.stack(sigs) @ np.stack(sigs).T
    np.testing.assert_allclose(gram, np.eye(4), atol=1e-6)


def test_grey_pixels_use_the_grey_bins_by_value():
    chroma = HIST.hue_bins * HIST.saturation_bins * HIST.value_bins
    previous = -1
    for v in (0, 60, 128, 200, 255):
        sig = HIST.compute(np.full((10, 10, 3), v, np.uint8))
        (bin_,) = np.flatnonzero(sig)
        assert bin_ >= chroma                         # a grey bin
        assert bin_ >= previous                       # brighter grey, higher (or same) bin
        previous = bin_


def test_without_centre_weighting_mass_is_area():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = (0, 0, 255)                         # a quarter red
    img[:, 20:] = (255, 0, 0)                         # three quarters blue
    sig = FLAT.compute(img)
    assert sorted(np.round(sig[sig > 0] ** 2, 6).tolist()) == [0.25, 0.75]


def test_centre_weighting_favours_the_middle():
    img = np.full((60, 60, 3), (255, 0, 0), np.uint8)  # blue border
    img[20:40, 20:40] = (0, 0, 255)                    # red centre: 1/9 of the area
    red_bin = int(np.argmax(HIST.compute(np.full((5, 5, 3), (0, 0, 255), np.uint8))))
    assert HIST.compute(img)[red_bin] ** 2 > 1 / 9 + 0.05
    assert FLAT.compute(img)[red_bin] ** 2 == pytest.approx(1 / 9, abs=1e-6)


def test_scale_barely_changes_the_signature():
    rng = np.random.default_rng(0)
    small = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120),
                       interpolation=cv2.INTER_NEAREST)
    big = cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST)
    assert float(np.dot(HIST.compute(small), HIST.compute(big))) > 0.98


@pytest.mark.parametrize("bad", [np.zeros((5, 5), np.uint8), np.zeros((5, 5, 4), np.uint8),
                                 np.zeros((5, 5, 3), np.float32), "image.png"])
def test_bad_input(bad):
    with pytest.raises(InvalidInputError):
        HIST.compute(bad)


def _object_on(background, size=(80, 100)):
    img = np.full((*size, 3), background, np.uint8)
    img[25:55, 30:70] = (30, 160, 220)   # an orange box
    img[35:45, 40:60] = (200, 60, 40)    # with a blue label
    return img


@given(b1=st.tuples(*[st.integers(0, 255)] * 3), b2=st.tuples(*[st.integers(0, 255)] * 3))
def test_background_suppression_compares_the_object_not_the_backdrop(b1, b2):
    """The same object on two uniform backdrops: suppression never makes the two shots less
    alike, and with it the object's colours dominate both signatures."""
    plain = ColourHistogram(border_suppression=0)
    a, b = _object_on(b1), _object_on(b2)
    with_s = float(bhattacharyya(HIST.compute(a)[None, :], HIST.compute(b))[0])
    without = float(bhattacharyya(plain.compute(a)[None, :], plain.compute(b))[0])
    assert with_s >= without - 1e-4
    assert with_s > 0.5


def test_all_backdrop_image_keeps_a_signature():
    img = np.full((30, 30, 3), (255, 255, 255), np.uint8)
    sig = HIST.compute(img)
    assert abs(float(np.dot(sig, sig)) - 1) < 1e-5 and np.count_nonzero(sig) == 1
