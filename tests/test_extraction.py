"""vbow.describe.extraction: per-image description and batch extraction with failures in place."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbow.describe.colour import ColourHistogram
from vbow.describe.extraction import ImageDescriber, ImageDescription, extract_many
from vbow.describe.features import FeatureExtractor
from vbow.results import ImageFailure
from vbow.synthetic import make_product_image

EXTRACTOR = ImageDescriber(FeatureExtractor("sift", 300), ColourHistogram(), 256)


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
    good_out = [r for r in out if isinstance(r, ImageDescription)]
    assert len(good_out) == 10
    for img, res in zip(good, good_out):
        np.testing.assert_array_equal(res.features.descriptors, EXTRACTOR(img).features.descriptors)


def test_concurrent_threads_give_the_serial_features():
    import threading

    images = [product(s, 240) for s in range(6)]
    serial = [EXTRACTOR(img) for img in images]
    out: dict[tuple[int, int], ImageDescription] = {}

    def work(t: int) -> None:
        for i in range(len(images)):
            j = (i + t) % len(images)
            out[t, j] = EXTRACTOR(images[j])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (t, j), res in out.items():
        np.testing.assert_array_equal(res.features.keypoints, serial[j].features.keypoints)
        np.testing.assert_array_equal(res.features.descriptors, serial[j].features.descriptors)
    assert len(out) == 4 * len(images)


def test_extractor_survives_pickling():
    import pickle

    img = product(3, 200)
    before = EXTRACTOR(img)
    clone = pickle.loads(pickle.dumps(EXTRACTOR))
    np.testing.assert_array_equal(clone(img).features.descriptors, before.features.descriptors)


def test_pixel_and_file_limits_apply_to_files_not_arrays(tmp_path):
    from vbow.errors import ImageTooLargeError

    limited = ImageDescriber(FeatureExtractor("sift", 300), ColourHistogram(), 256, max_pixels=1000,
                        max_file_bytes=10**6)
    img = np.ascontiguousarray(product(4, 64)[:40, :40])  # 1600 pixels
    path = tmp_path / "p.png"
    path.write_bytes(cv2.imencode(".png", img)[1].tobytes())
    with pytest.raises(ImageTooLargeError, match="1600 pixels, over the limit of 1000"):
        limited(path)
    assert limited(img).features.image_size == (40, 40)
    tiny_files = ImageDescriber(FeatureExtractor("sift", 300), ColourHistogram(), 256,
                                max_file_bytes=100)
    with pytest.raises(ImageTooLargeError, match="over the limit of 100"):
        tiny_files(path)


class _Exploding(FeatureExtractor):
    """Raises an unexpected error (a bug, not bad input) for images 77 pixels wide."""

    def extract(self, image):
        if image.shape[1] == 77:
            raise RuntimeError("boom")
        return super().extract(image)


def test_an_unexpected_error_fails_its_item_only():
    ex = ImageDescriber(_Exploding("sift", 300), ColourHistogram(), 256)
    sources = [product(5, 120), np.zeros((50, 77, 3), np.uint8), product(6, 120)]
    out = list(extract_many(ex, sources, n_jobs=1, names=["a", "b", "c"]))
    assert [type(r) for r in out] == [ImageDescription, ImageFailure, ImageDescription]
    assert out[1].source == "b" and out[1].error_type == "RuntimeError" and "boom" in out[1].error


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_file_objects_in_batches_match_their_paths(tmp_path, n_jobs):
    import io

    paths = []
    for s in range(4):
        paths.append(tmp_path / f"p{s}.jpg")
        paths[-1].write_bytes(cv2.imencode(".jpg", product(s, 300))[1].tobytes())
    streams = [io.BytesIO(p.read_bytes()) for p in paths]
    from_paths = list(extract_many(EXTRACTOR, paths, n_jobs=n_jobs, chunk=1))
    from_streams = list(extract_many(EXTRACTOR, streams, n_jobs=n_jobs, chunk=1,
                                     names=[f"s{i}" for i in range(4)]))
    for a, b in zip(from_paths, from_streams):
        np.testing.assert_array_equal(a.features.descriptors, b.features.descriptors)
        assert len(a.features) > 20


def test_has_features_flags_blank_images():
    assert EXTRACTOR(product(7, 200)).has_features
    for blank in (np.zeros((200, 200, 3), np.uint8), np.full((1, 1), 9, np.uint8),
                  np.full((3, 500, 3), 200, np.uint8)):
        res = EXTRACTOR(blank)
        assert not res.has_features and len(res.features) == 0
        assert res.features.descriptors.shape == (0, 128)


def test_opencv_threads_are_restored_after_the_block():
    import cv2

    from vbow.describe.extraction import opencv_threads

    before = cv2.getNumThreads()
    with opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before
    try:
        with opencv_threads(1):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert cv2.getNumThreads() == before
