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


BANDED = ColourHistogram(bands=3)


@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 200), w=st.integers(1, 200),
       bands=st.integers(0, 5), share=st.floats(0, 1), soft=st.booleans())
def test_banded_signature_is_unit_and_blends_global_and_band_similarities(seed, h, w, bands, share, soft):
    """The signature has unit norm, and comparing two of them gives
    ``(1 - share) * global + share * mean over bands`` of the per-part coefficients."""
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
    hist = ColourHistogram(bands=bands, band_share=share, soft_binning=soft)
    sa, sb = hist.compute(a), hist.compute(b)
    assert sa.shape == (hist.n_bins,) and abs(float(sa @ sa) - 1) < 1e-5
    whole = ColourHistogram(soft_binning=soft)
    assert hist.n_bins == whole.n_bins * (1 + (bands if bands >= 2 else 0))
    k = whole.n_bins
    if bands < 2:
        np.testing.assert_array_equal(sa, whole.compute(a))
        return
    parts_a, parts_b = sa.reshape(1 + bands, k), sb.reshape(1 + bands, k)
    norms_a = np.linalg.norm(parts_a, axis=1)
    np.testing.assert_allclose(norms_a ** 2, [1 - share] + [share / bands] * bands, atol=1e-5)
    # the global part is the unbanded signature, scaled
    np.testing.assert_allclose(parts_a[0], whole.compute(a) * np.sqrt(1 - share), atol=1e-6)
    unit = lambda p, n: p / n if n > 0 else p  # noqa: E731
    per_part = [float(unit(pa, na) @ unit(pb, nb)) for pa, pb, na, nb in
                zip(parts_a, parts_b, norms_a, np.linalg.norm(parts_b, axis=1))]
    blended = (1 - share) * per_part[0] + share * np.mean(per_part[1:])
    assert float(sa @ sb) == pytest.approx(blended, abs=1e-5)


def _two_tone(top, bottom, h=120, w=90, offset=0, height=60):
    """A product of two colours (``top`` over ``bottom``, BGR) on a black backdrop, its top
    ``offset`` rows below the frame's middle minus half its height."""
    img = np.zeros((h, w, 3), np.uint8)
    y0 = h // 2 - height // 2 + offset
    img[y0:y0 + height // 2, 20:70] = top
    img[y0 + height // 2:y0 + height, 20:70] = bottom
    return img


def test_bands_tell_apart_colours_stacked_the_other_way_round():
    red, blue = (30, 30, 220), (220, 60, 30)
    a, b = _two_tone(red, blue), _two_tone(blue, red)
    plain = float(HIST.compute(a) @ HIST.compute(b))
    banded = float(BANDED.compute(a) @ BANDED.compute(b))
    assert plain > 0.97          # the same colours in the same amounts
    assert banded < plain - 0.25  # the bands see red over blue against blue over red


@given(offset=st.integers(-25, 25))
def test_bands_follow_the_product_up_and_down_the_frame(offset):
    """Bands sit on the product's own vertical extent, so moving it in the frame keeps the
    signature close to the centred one's."""
    red, blue = (30, 30, 220), (220, 60, 30)
    centred = BANDED.compute(_two_tone(red, blue))
    moved = BANDED.compute(_two_tone(red, blue, offset=offset))
    flipped = BANDED.compute(_two_tone(blue, red))
    assert float(centred @ moved) > 0.95
    assert float(centred @ moved) > float(centred @ flipped) + 0.2


@given(seed=st.integers(0, 2**32 - 1), h=st.integers(2, 150), w=st.integers(2, 150))
def test_bands_do_not_care_about_left_and_right(seed, h, w):
    """A product turned about the vertical axis swaps its left and right: the bands are
    horizontal, so a mirrored image has the same signature."""
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_allclose(BANDED.compute(img[:, ::-1].copy()), BANDED.compute(img), atol=1e-6)


@pytest.mark.parametrize("bad", [dict(bands=-1), dict(bands=1.5), dict(bands=True),
                                 dict(band_share=-0.1), dict(band_share=1.5)])
def test_bad_band_settings_are_refused(bad):
    with pytest.raises(InvalidInputError):
        ColourHistogram(**bad)


@given(seed=st.integers(0, 2**32 - 1), h=st.integers(2, 60), w=st.integers(1, 20),
       bands=st.integers(2, 6))
def test_band_memberships_match_per_row_interpolation(seed, h, w, bands):
    """Brute force, row by row: a row at ``t`` standard deviations from the weighted mean row
    belongs to band ``b`` (centre ``c_b`` evenly spaced from -1 to 1) by
    ``max(0, 1 - |t - c_b| / spacing)``, and wholly to the outer band beyond an outer centre."""
    weights = np.random.default_rng(seed).random(h * w) + 1e-3
    hist = ColourHistogram(bands=bands)
    got = np.stack(hist._band_memberships(weights, h, w)).reshape(bands, h, w)
    rows = (np.arange(h) + 0.5) / h
    mass = weights.reshape(h, w).sum(axis=1)
    mean = float(np.sum(mass * rows) / mass.sum())
    sd = float(np.sqrt(np.sum(mass * (rows - mean) ** 2) / mass.sum())) + 1e-6
    centres = np.linspace(-1, 1, bands)
    spacing = centres[1] - centres[0]
    for r in range(h):
        t = (rows[r] - mean) / sd
        want = np.maximum(0.0, 1 - np.abs(t - centres) / spacing)
        if t <= centres[0]:
            want = np.eye(bands)[0]
        elif t >= centres[-1]:
            want = np.eye(bands)[-1]
        for col in range(w):
            np.testing.assert_allclose(got[:, r, col], want, atol=1e-9)
