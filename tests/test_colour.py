"""vbow.describe.colour: HSV colour signatures compared by the Bhattacharyya coefficient."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.describe.colour import ColourHistogram, bhattacharyya
from vbow.errors import InvalidInputError

HIST = ColourHistogram()
HARD = ColourHistogram(soft_binning=False)
FLAT = ColourHistogram(centre_sigma=0, border_suppression=0, soft_binning=False)


@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 300), w=st.integers(1, 300),
       soft=st.booleans())
def test_signature_is_a_unit_sqrt_histogram(seed, h, w, soft):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    hist = HIST if soft else HARD
    sig = hist.compute(img)
    assert sig.shape == (hist.n_bins,) and sig.dtype == np.float32
    assert np.all(sig >= 0)
    assert abs(float(np.dot(sig, sig)) - 1) < 1e-5
    assert float(bhattacharyya(sig[None, :], sig)[0]) == pytest.approx(1, abs=1e-5)


def _triangle(x: float, n: int, circular: bool) -> np.ndarray:
    """Brute force: linear-interpolation weights of position x in [0, 1) on n bin centres."""
    centres = (np.arange(n) + 0.5) / n
    d = np.abs(x - centres)
    if circular:
        d = np.minimum(d, 1 - d)
    w = np.maximum(0.0, 1 - d * n)
    if not circular and (x < centres[0] or x > centres[-1]):  # beyond the outer centres
        w = np.zeros(n)
        w[0 if x < centres[0] else -1] = 1.0
    return w


@given(seed=st.integers(0, 2**32 - 1))
def test_soft_binning_matches_per_pixel_interpolation(seed):
    """Differential: the pooled fine grid equals interpolating each pixel, placed at the centre
    of its fine cell, onto the bins one pixel at a time."""
    rng = np.random.default_rng(seed)
    cfg = ColourHistogram(hue_bins=int(rng.integers(2, 9)), saturation_bins=int(rng.integers(1, 4)),
                          value_bins=int(rng.integers(1, 4)), grey_bins=int(rng.integers(1, 5)),
                          centre_sigma=0, border_suppression=0)
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL).reshape(-1, 3).astype(np.int64)
    expected = np.zeros(cfg.n_bins)
    n_chroma = cfg.hue_bins * cfg.saturation_bins * cfg.value_bins
    fine = 4

    def cell_centre(v: int, n: int) -> float:
        return ((v * n * fine >> 8) + 0.5) / (n * fine)

    for h, s, v in hsv:
        if s < cfg.grey_saturation * 256:
            expected[n_chroma:] += _triangle(cell_centre(v, cfg.grey_bins), cfg.grey_bins, False)
            continue
        wh = _triangle(cell_centre(h, cfg.hue_bins), cfg.hue_bins, True)
        ws = _triangle(cell_centre(s, cfg.saturation_bins), cfg.saturation_bins, False)
        wv = _triangle(cell_centre(v, cfg.value_bins), cfg.value_bins, False)
        expected[:n_chroma] += np.einsum("i,j,k->ijk", wh, ws, wv).reshape(-1)
    expected = np.sqrt(expected / expected.sum())
    np.testing.assert_allclose(cfg.compute(img), expected, atol=1e-6)


def test_soft_binning_changes_smoothly_with_hue():
    """Hues 4/256 apart stay alike with soft bins; hard bins can split them apart."""
    def swatch(hue):
        hsv = np.full((20, 20, 3), (hue, 200, 200), np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)
    soft_worst = hard_worst = 1.0
    for hue in range(0, 250, 3):
        a, b = swatch(hue), swatch(hue + 4)
        soft_worst = min(soft_worst, float(np.dot(HIST.compute(a), HIST.compute(b))))
        hard_worst = min(hard_worst, float(np.dot(HARD.compute(a), HARD.compute(b))))
    assert soft_worst > 0.7          # a shift of 0.375 bin: at worst sqrt(0.625) = 0.79 in hue
    assert hard_worst < 0.05         # a bin boundary between the two: nothing shared


def test_n_bins():
    assert HIST.n_bins == 24 * 3 * 3 + 8
    assert ColourHistogram(hue_bins=4, saturation_bins=2, value_bins=2, grey_bins=3).n_bins == 19


def test_a_flat_colour_fills_one_bin_and_different_hues_differ():
    sigs = []
    for bgr in [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)]:
        img = np.full((40, 50, 3), bgr, np.uint8)
        sig = HARD.compute(img)
        assert np.count_nonzero(sig) == 1 and sig.max() == pytest.approx(1)
        sigs.append(sig)
    gram = np.stack(sigs) @ np.stack(sigs).T
    np.testing.assert_allclose(gram, np.eye(4), atol=1e-6)


def test_grey_pixels_use_the_grey_bins_by_value():
    chroma = HIST.hue_bins * HIST.saturation_bins * HIST.value_bins
    previous = -1
    for v in (0, 60, 128, 200, 255):
        sig = HARD.compute(np.full((10, 10, 3), v, np.uint8))
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
    red_bin = int(np.argmax(HARD.compute(np.full((5, 5, 3), (0, 0, 255), np.uint8))))
    assert HARD.compute(img)[red_bin] ** 2 > 1 / 9 + 0.05
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
    sig = HARD.compute(img)
    assert abs(float(np.dot(sig, sig)) - 1) < 1e-5 and np.count_nonzero(sig) == 1
    sig = HIST.compute(img)
    assert abs(float(np.dot(sig, sig)) - 1) < 1e-5 and float(np.dot(sig, HARD.compute(img))) > 0.7
