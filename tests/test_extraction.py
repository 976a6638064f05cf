"""vbow.describe.extraction: per-image description and batch extraction with failures in place."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbow.describe.colour import ColourHistogram
from vbow.describe.extraction import Extractor, ImageFeatures, extract_many
from vbow.describe.features import FeatureExtractor
from vbow.results import ImageFailure
from vbow.synthetic import make_product_image

EXTRACTOR = Extractor(FeatureExtractor("sift", 300), ColourHistogram(), 256)


def product(seed: int, size: int = 320) -> np.ndarray:
    return make_product_image(np.random.default_rng(seed), size)


def test_scale_is_original_over_processed_pixels():
    f = EXTRACTOR(product(0, 512))
    assert f.features.image_size == (256, 256) and f.scale == pytest.approx(2.0)
    small = EXTRACTOR(product(0, 200))
    assert small.features.image_size == (200, 200) and small.scale == 1.0
    assert small.colour.shape == (ColourHistogram().n_bins,)


def test_path_and_array_give_the_same_features(tmp_path):
    img = product(1)
    path = tmp_path / "p.png"
    path.write_bytes(cv2.imencode(".png", img)[1].tobytes())
    a, b = EXTRACTOR(path), EXTRACTOR(img, name="array")
    assert a.name == str(path) and b.name == "array"
    np.testing.assert_array_equal(a.features.descriptors, b.features.descriptors)
    np.testing.assert_array_equal(a.colour, b.colour)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_extract_many_keeps_order_and_reports_failures(tmp_path, n_jobs):
    good = [product(s, 160) for s in range(10)]
    missing = tmp_path / "missing.png"
    sources = good[:3] + [missing] + good[3:] + [b"not an image"]
    out = list(extract_many(EXTRACTOR, sources, n_jobs=n_jobs, chunk=4))
    assert len(out) == len(sources)
    assert isinstance(out[3], ImageFailure) and out[3].source == str(missing)
    assert str(missing) in out[3].error and out[3].error_type == "ImageError"
    assert isinstance(out[-1], ImageFailure) and out[-1].error_type == "ImageDecodeError"
    good_out = [r for r in out if isinstance(r, ImageFeatures)]
    assert len(good_out) == 10
    for img, res in zip(good, good_out):
        np.testing.assert_array_equal(res.features.descriptors, EXTRACTOR(img).features.descriptors)
