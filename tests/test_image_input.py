"""vbow.describe.image_input: every input kind gives one canonical upright BGR uint8 image, bad input a
typed error that names the file."""

from __future__ import annotations

import io
import os
import struct

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import ImageDecodeError, ImageError, InvalidInputError, VbowError
from vbow.describe.image_array import ImageArray
from vbow.describe.image_input import decode_image, load_image, read_image


def asymmetric_image(h: int = 48, w: int = 80) -> np.ndarray:
    """A colour image with no symmetry, made of flat blocks (robust to JPEG)."""
    img = np.full((h, w, 3), 255, np.uint8)
    img[: h // 4, : w // 3] = (0, 0, 255)          # red block, top left
    img[-h // 3:, -w // 4:] = (255, 0, 0)          # blue block, bottom right
    img[h // 2: h // 2 + 6, :] = (0, 160, 0)        # green band, below the middle
    img[:, w // 2: w // 2 + 4] = (40, 40, 40)       # dark column, right of centre
    return img


def encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def exif_segment(orientation: int, big_endian: bool = False) -> bytes:
    """An APP1 Exif segment whose IFD0 holds only the Orientation tag (0x0112, SHORT)."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1)                                   # one IFD entry
    tiff += struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "H", orientation) + b"\0\0"
    tiff += struct.pack(e + "I", 0)                                   # no next IFD
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_exif(jpeg: bytes, orientation: int, big_endian: bool = False) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + exif_segment(orientation, big_endian) + jpeg[2:]


def upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """What the EXIF specification says the viewer must show, written with numpy only."""
    ops = {
        1: lambda a: a,
        2: np.fliplr,
        3: lambda a: np.rot90(a, 2),
        4: np.flipud,
        5: lambda a: np.swapaxes(a, 0, 1),                   # transpose
        6: lambda a: np.rot90(a, -1),                        # rotate 90 clockwise
        7: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),      # transverse
        8: lambda a: np.rot90(a, 1),                         # rotate 90 counter-clockwise
    }
    return np.ascontiguousarray(ops[orientation](stored))


# --------------------------------------------------------------------------- input kinds


def test_path_bytes_and_array_give_the_same_image(tmp_path):
    img = asymmetric_image()
    png = encode(img, ".png")
    path = tmp_path / "a.png"
    path.write_bytes(png)
    from_path = read_image(path, max_side=None)
    from_str = read_image(str(path), max_side=None)
    from_bytes = read_image(png, max_side=None)
    from_bytearray = read_image(bytearray(png), max_side=None)
    from_memoryview = read_image(memoryview(png), max_side=None)
    from_array = read_image(img, max_side=None)
    for other in (from_str, from_bytes, from_bytearray, from_memoryview, from_array):
        np.testing.assert_array_equal(from_path, other)
    np.testing.assert_array_equal(from_path, img)
    assert from_path.dtype == np.uint8 and from_path.shape == img.shape


def test_jpeg_path_and_bytes_match_opencv(tmp_path):
    img = asymmetric_image()
    jpg = encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    path = tmp_path / "a.jpg"
    path.write_bytes(jpg)
    reference = cv2.imread(str(path), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(read_image(path, max_side=None), reference)
    np.testing.assert_array_equal(read_image(jpg, max_side=None), reference)
    np.testing.assert_array_equal(decode_image(jpg), reference)


@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_gray_and_single_channel_arrays_are_replicated(h, w, seed):
    gray = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(read_image(gray, max_side=None), expected)
    np.testing.assert_array_equal(read_image(gray[:, :, None], max_side=None), expected)


@given(seed=st.integers(0, 2**16), channels=st.sampled_from([0, 1, 3]))
def test_16_bit_arrays_are_rescaled_to_8_bit(seed, channels):
    shape = (7, 9) if channels == 0 else (7, 9, channels)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 65536, shape, dtype=np.uint16)
    data.flat[:4] = [0, 65535, 128, 32767]
    out = read_image(data, max_side=None)
    # independent rescale: nearest integer of value * 255 / 65535
    ref = np.floor(data.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)
    if ref.ndim == 2:
        ref = ref[:, :, None]
    ref = np.broadcast_to(ref, (7, 9, 3))
    np.testing.assert_array_equal(out, ref)


def test_16_bit_png_file_is_rescaled(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(encode(data, ".png"))
    ref = np.floor(data.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(read_image(path, max_side=None), ref)


@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_float_arrays_in_unit_range(seed, dtype):
    rng = np.random.default_rng(seed)
    data = rng.random((6, 5, 3)).astype(dtype)
    data[0, 0] = (0.0, 1.0, 0.5)
    out = read_image(data, max_side=None)
    ref = np.clip(np.round(data.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # rounding of .5 cases only
    assert tuple(out[0, 0]) == (0, 255, ref[0, 0, 2])


def test_float_with_nan_is_an_image_error():
    data = np.zeros((4, 4), np.float32)
    data[1, 1] = np.nan
    with pytest.raises(ImageError):
        read_image(data)


def test_bgra_alpha_is_composited_over_white(tmp_path):
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., :3] = (10, 200, 30)
    bgra[0, 0, 3] = 0        # fully transparent
    bgra[1, 1, 3] = 255      # opaque
    bgra[2, 2, 3] = 128      # half
    for source in (bgra, encode(bgra, ".png")):
        out = read_image(source, max_side=None)
        assert out.shape == (4, 6, 3)
        assert tuple(out[0, 0]) == (255, 255, 255)
        assert tuple(out[1, 1]) == (10, 200, 30)
        expected_half = np.array([10, 200, 30]) * (128 / 255) + 255 * (1 - 128 / 255)
        assert np.abs(out[2, 2].astype(float) - expected_half).max() <= 1.0


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8),
                                 np.zeros((0, 5, 3), np.uint8), np.zeros((3, 3, 3), np.int64),
                                 np.zeros((2, 2, 2, 3), np.uint8)])
def test_unusable_arrays_raise_image_error(bad):
    with pytest.raises(ImageError) as info:
        read_image(bad)
    assert isinstance(info.value, ValueError)


def test_unsupported_input_type_raises_invalid_input():
    with pytest.raises(InvalidInputError):
        read_image(12345)  # type: ignore[arg-type]


@given(h=st.integers(1, 300), w=st.integers(1, 300), max_side=st.integers(1, 400))
def test_max_side_downscales_and_never_upscales(h, w, max_side):
    img = np.zeros((h, w, 3), np.uint8)
    out, original = load_image(img, max_side=max_side)
    assert original == (w, h)
    oh, ow = out.shape[:2]
    if max(h, w) <= max_side:
        assert (oh, ow) == (h, w)
    else:
        assert max(oh, ow) == max_side
        assert oh <= h and ow <= w
        # aspect ratio kept to within rounding
        assert abs(ow - w * max_side / max(h, w)) <= 1 and abs(oh - h * max_side / max(h, w)) <= 1
        assert min(oh, ow) >= 1


def test_max_side_none_keeps_size():
    img = np.zeros((30, 2000, 3), np.uint8)
    assert read_image(img, max_side=None).shape == (30, 2000, 3)


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv_and_the_spec(tmp_path, orientation, big_endian):
    stored = asymmetric_image()
    jpeg = encode(stored, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    data = with_exif(jpeg, orientation, big_endian)
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(data)
    ours = read_image(path, max_side=None)
    # differential: OpenCV applies EXIF orientation itself with IMREAD_COLOR
    np.testing.assert_array_equal(ours, cv2.imread(str(path), cv2.IMREAD_COLOR))
    # and the specification: the decoded stored pixels, turned as the tag says
    decoded_stored = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(ours, upright(decoded_stored, orientation))
    # the JPEG artefacts aside, the turned picture is the turned test image
    assert np.abs(ours.astype(int) - upright(stored, orientation).astype(int)).mean() < 4
    np.testing.assert_array_equal(read_image(data, max_side=None), ours)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_load_image_original_size_is_upright(orientation):
    stored = asymmetric_image(60, 100)  # stored 100 wide, 60 high
    data = with_exif(encode(stored, ".jpg"), orientation)
    image, original = load_image(data, max_side=50)
    rotated = orientation >= 5
    assert original == ((60, 100) if rotated else (100, 60))
    assert max(image.shape[:2]) == 50
    # the downscaled image is upright too: same aspect as the original size
    assert (image.shape[1] > image.shape[0]) == (original[0] > original[1])


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_reduced_jpeg_decoding_with_orientation(orientation):
    """A large JPEG read with a small max_side (libjpeg DCT scaling) is still upright and right."""
    stored = cv2.resize(asymmetric_image(), (400, 240), interpolation=cv2.INTER_NEAREST)
    data = with_exif(encode(stored, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]), orientation)
    image, original = load_image(data, max_side=60)
    full = upright(stored, orientation)
    assert original == (full.shape[1], full.shape[0])
    assert max(image.shape[:2]) == 60
    expected = cv2.resize(full, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 12


def test_invalid_orientation_value_is_ignored():
    stored = asymmetric_image()
    jpeg = encode(stored, ".jpg")
    ref = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    for bad in (0, 9, 300):
        np.testing.assert_array_equal(read_image(with_exif(jpeg, bad), max_side=None), ref)


# --------------------------------------------------------------------------- errors


def check_error(exc: BaseException, name: str, kind=ImageError) -> None:
    assert isinstance(exc, kind), type(exc)
    assert isinstance(exc, ValueError) and isinstance(exc, VbowError)
    assert name in str(exc), str(exc)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError) as info:
        read_image(path)
    check_error(info.value, str(path))


def test_directory(tmp_path):
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    with pytest.raises(ImageError) as info:
        read_image(folder)
    check_error(info.value, str(folder))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)


def test_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    path = tmp_path / f"random{seed}.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)
    with pytest.raises(ImageDecodeError) as info:
        read_image(data, name="upload-7")
    check_error(info.value, "upload-7", ImageDecodeError)


_TEXTURE = np.random.default_rng(11).integers(0, 256, (48, 64, 3), dtype=np.uint8)
_JPEG = encode(_TEXTURE, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
_PNG = encode(_TEXTURE, ".png")


@given(cut=st.integers(1, len(_JPEG) - 1))
def test_truncated_jpeg(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("trunc") / "cut.jpg"
    path.write_bytes(_JPEG[:cut])
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)


@given(cut=st.integers(1, len(_PNG) - 1))
def test_truncated_png(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("trunc") / "cut.png"
    path.write_bytes(_PNG[:cut])
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_jpeg_with_exif_at_fixed_points(fraction):
    data = with_exif(_JPEG, 6)
    with pytest.raises(ImageDecodeError) as info:
        read_image(data[: int(len(data) * fraction)], name="photo.jpg")
    check_error(info.value, "photo.jpg", ImageDecodeError)


def test_corrupt_jpeg_body_is_a_decode_error_or_decodes_to_right_size():
    """Garbage in the entropy-coded data after a valid header must not crash."""
    data = bytearray(_JPEG)
    start = data.find(b"\xff\xda")
    rng = np.random.default_rng(0)
    data[start + 20: len(data) - 2] = rng.integers(0, 255, len(data) - 22 - start,
                                                   dtype=np.uint8).tobytes()
    try:
        out = read_image(bytes(data), max_side=None, name="garbled.jpg")
    except ImageDecodeError as exc:
        check_error(exc, "garbled.jpg", ImageDecodeError)
    else:
        assert out.shape == (48, 64, 3)


@pytest.mark.parametrize("kind", ["jpg", "png"])
@pytest.mark.parametrize("missing", [1, 2, 3, 4, 5, 8, 12, 13])
def test_files_missing_their_last_bytes(tmp_path, kind, missing):
    """Cuts inside the trailer (PNG IEND chunk and CRC, JPEG end-of-image marker)."""
    data = _JPEG if kind == "jpg" else _PNG
    path = tmp_path / f"short.{kind}"
    path.write_bytes(data[:-missing])
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    check_error(info.value, str(path), ImageDecodeError)


@pytest.mark.parametrize("extra", [1, 100, 5000])
def test_png_with_bytes_after_the_end_chunk_decodes(extra):
    """Some tools append data after IEND; the image itself is complete."""
    data = _PNG + bytes(np.random.default_rng(extra).integers(0, 256, extra, dtype=np.uint8))
    np.testing.assert_array_equal(read_image(data, max_side=None), _TEXTURE)


def test_png_cut_inside_a_chunk_after_a_fake_iend_string():
    """The letters IEND inside compressed data or a text chunk do not make a cut file whole."""
    text = b"IEND" * 4
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + b"\0\0\0\0"
    data = _PNG[:33] + chunk + _PNG[33:]            # after the IHDR chunk
    np.testing.assert_array_equal(read_image(data, max_side=None), _TEXTURE)
    with pytest.raises(ImageDecodeError):
        read_image(data[: len(data) // 2], name="cut.png")


# --------------------------------------------------------------------------- channel order, PIL, file objects

try:
    from PIL import Image as PILImage
except ImportError:
    PILImage = None

needs_pil = pytest.mark.skipif(PILImage is None, reason="Pillow is not installed (pip install -e '.[test]')")


def _extractor():
    from vbow.describe.colour import ColourHistogram
    from vbow.describe.extraction import ImageDescriber
    from vbow.describe.features import FeatureExtractor

    return ImageDescriber(FeatureExtractor("sift", 500), ColourHistogram(), max_side=640,
                          min_side=400)


def _assert_same_features(a, b) -> None:
    assert len(a.features) > 50
    np.testing.assert_array_equal(a.features.keypoints, b.features.keypoints)
    np.testing.assert_array_equal(a.features.descriptors, b.features.descriptors)
    np.testing.assert_array_equal(a.colour, b.colour)
    assert a.scale == b.scale and a.features.image_size == b.features.image_size


@pytest.fixture(scope="module")
def product_files(tmp_path_factory):
    """A synthetic product as a PNG, a small JPEG and a large JPEG (decoded with DCT scaling)."""
    from vbow.synthetic import make_catalog

    img = make_catalog(1, 0, seed=4, size=300).products[0]
    root = tmp_path_factory.mktemp("product")
    paths = {"png": root / "p.png", "jpeg": root / "p.jpg", "big-jpeg": root / "big.jpg"}
    cv2.imwrite(str(paths["png"]), img)
    cv2.imwrite(str(paths["jpeg"]), img)
    cv2.imwrite(str(paths["big-jpeg"]), cv2.resize(img, (1400, 1300), interpolation=cv2.INTER_CUBIC))
    return img, paths


@pytest.mark.parametrize("kind", ["png", "jpeg", "big-jpeg"])
def test_file_objects_give_the_features_of_the_file(product_files, kind):
    from vbow.describe.extraction import ImageDescriber  # noqa: F401

    _, paths = product_files
    ex = _extractor()
    from_disk = ex(paths[kind])
    with open(paths[kind], "rb") as fh:
        _assert_same_features(from_disk, ex(fh))
    _assert_same_features(from_disk, ex(io.BytesIO(paths[kind].read_bytes())))
    stream = io.BytesIO(b"junk" + paths[kind].read_bytes())
    stream.seek(4)  # read from the current position, like any file reader
    _assert_same_features(from_disk, ex(stream))


def test_rgb_image_array_gives_the_features_of_the_bgr_file(product_files):
    img, paths = product_files
    ex = _extractor()
    from_disk = ex(paths["png"])
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    _assert_same_features(from_disk, ex(ImageArray(rgb, channels="rgb")))
    # a bare array is BGR: the same RGB array read bare is another image
    assert not np.array_equal(ex(rgb).colour, from_disk.colour)


@needs_pil
@pytest.mark.parametrize("kind", ["png", "jpeg", "big-jpeg"])
def test_pil_images_give_the_features_of_the_file(product_files, kind):
    _, paths = product_files
    ex = _extractor()
    from_disk = ex(paths[kind])
    _assert_same_features(from_disk, ex(PILImage.open(paths[kind])))           # as opened
    with open(paths[kind], "rb") as fh:
        _assert_same_features(from_disk, ex(PILImage.open(fh)))
    if kind != "big-jpeg":  # vbow decodes large JPEG files with libjpeg's DCT downscaling
        loaded = PILImage.open(paths[kind])
        loaded.load()                                                          # by its pixels
        _assert_same_features(from_disk, ex(loaded))
        _assert_same_features(from_disk, ex(PILImage.open(paths[kind]).convert("RGB")))


@needs_pil
def test_pil_image_from_an_rgb_array_matches_the_bgr_array():
    img = asymmetric_image(64, 90)
    pil = PILImage.fromarray(np.ascontiguousarray(img[:, :, ::-1]))
    np.testing.assert_array_equal(read_image(pil, max_side=None), img)


@needs_pil
@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "I;16", "I", "F", "1", "CMYK"])
def test_pil_modes_match_the_same_pixels_as_arrays(mode):
    img = asymmetric_image(40, 50)
    rgba = np.dstack([img[:, :, ::-1], np.linspace(0, 255, 50, dtype=np.uint8)[None, :].repeat(40, 0)])
    pil = PILImage.fromarray(rgba, "RGBA").convert(mode) if mode not in ("I;16", "I", "F") else None
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if mode == "I;16":
        pil = PILImage.fromarray(gray.astype(np.uint16) * 257)
        expected = read_image(gray, max_side=None)
    elif mode == "I":
        pil = PILImage.fromarray(gray.astype(np.int32) * 257)
        expected = read_image(gray, max_side=None)
    elif mode == "F":
        pil = PILImage.fromarray(gray.astype(np.float32))  # 0..255 floats: not white
        expected = read_image(gray, max_side=None)
    elif mode in ("1", "CMYK"):
        expected = read_image(np.asarray(pil.convert("RGB"))[:, :, ::-1].copy(), max_side=None)
    elif mode == "P":
        expected = read_image(np.asarray(pil.convert("RGB"))[:, :, ::-1].copy(), max_side=None)
    else:
        arr = np.asarray(pil)
        expected = read_image(ImageArray(arr, channels="rgb") if arr.ndim == 3 and arr.shape[2] != 2
                              else (arr if arr.ndim == 2 else np.asarray(pil.convert("RGBA"))[:, :, [2, 1, 0, 3]]),
                              max_side=None)
    assert pil.mode == mode
    np.testing.assert_array_equal(read_image(pil, max_side=None), expected)


@needs_pil
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_pil_jpeg_with_exif_orientation_is_upright_like_the_file(tmp_path, orientation):
    stored = asymmetric_image(48, 80)
    path = tmp_path / "o.jpg"
    path.write_bytes(with_exif(encode(stored, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]), orientation))
    from_disk = read_image(path, max_side=None)
    assert from_disk.shape[:2] == upright(stored, orientation).shape[:2]
    loaded = PILImage.open(path)
    loaded.load()
    np.testing.assert_array_equal(read_image(loaded, max_side=None), from_disk)


def test_text_mode_file_object_is_a_type_error(tmp_path):
    from vbow.errors import ImageTypeError

    path = tmp_path / "t.png"
    path.write_bytes(encode(asymmetric_image(), ".png"))
    with open(path, "r", encoding="latin-1") as fh, pytest.raises(ImageTypeError, match="rb"):
        read_image(fh)


def test_file_object_over_the_size_cap(tmp_path):
    from vbow.errors import ImageTooLargeError

    data = encode(asymmetric_image(), ".png")
    with pytest.raises(ImageTooLargeError, match=str(len(data) - 1)):
        read_image(io.BytesIO(data), max_file_bytes=len(data) - 1)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match=str(len(data))):
        read_image(path, max_file_bytes=len(data) - 1)
    assert read_image(path, max_file_bytes=len(data)).shape == (48, 80, 3)


# --------------------------------------------------------------------------- float range rule and channel order


@given(seed=st.integers(0, 2**16), h=st.integers(1, 20), w=st.integers(1, 20),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_float_images_in_0_255_are_not_saturated(seed, h, w, dtype):
    u8 = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    u8.flat[0] = 255  # the maximum is above 1, so the range is 0..255
    np.testing.assert_array_equal(read_image(u8.astype(dtype), max_side=None), u8)
    np.testing.assert_array_equal(read_image(u8.astype(dtype) / 255.0, max_side=None), u8)
    dark = np.minimum(u8, 1).astype(dtype)  # every value <= 1: the rule reads it as 0..1
    np.testing.assert_array_equal(read_image(ImageArray(dark, value_range=255), max_side=None),
                                  np.minimum(u8, 1))
    np.testing.assert_array_equal(read_image(dark, max_side=None), np.minimum(u8, 1) * 255)


@pytest.mark.parametrize("values, range_", [(256.0, None), (-0.1, None), (2.0, 1.0), (-3.0, 255.0)])
def test_float_values_outside_the_range_are_refused(values, range_):
    data = np.zeros((4, 4), np.float32)
    data[1, 1] = values
    source = data if range_ is None else ImageArray(data, value_range=range_)
    with pytest.raises(ImageError, match="float"):
        read_image(source)


@given(seed=st.integers(0, 2**16), alpha=st.booleans())
def test_rgb_image_array_is_the_reversed_bgr(seed, alpha):
    bgr = np.random.default_rng(seed).integers(0, 256, (7, 9, 4 if alpha else 3), dtype=np.uint8)
    rgb = bgr.copy()
    rgb[:, :, :3] = bgr[:, :, 2::-1]
    np.testing.assert_array_equal(read_image(ImageArray(rgb, channels="rgb"), max_side=None),
                                  read_image(bgr, max_side=None))


@pytest.mark.parametrize("bad", [dict(channels="RGB!"), dict(value_range=0), dict(value_range=-1.0),
                                 dict(value_range=float("nan")), dict(value_range="255")])
def test_image_array_checks_its_arguments(bad):
    with pytest.raises(InvalidInputError):
        ImageArray(np.zeros((2, 2, 3), np.uint8), **bad)


def test_image_array_needs_an_array():
    from vbow.errors import ImageTypeError

    with pytest.raises(ImageTypeError):
        ImageArray([[1, 2], [3, 4]])


def test_is_image_input_tells_one_image_from_a_batch(tmp_path):
    from vbow.describe.image_input import is_image_input

    singles = [str(tmp_path), tmp_path, b"\x89PNG", bytearray(b"x"), memoryview(b"x"),
               np.zeros((2, 2)), ImageArray(np.zeros((2, 2))), io.BytesIO(b"x")]
    assert all(is_image_input(s) for s in singles)
    assert not any(is_image_input(b) for b in ([], [np.zeros((2, 2))], ("a.jpg",), None, 3))


@given(raw=st.binary(min_size=1, max_size=30))
def test_display_names_are_utf8_and_keep_the_bytes(raw):
    from vbow.describe.image_sources import display_name

    raw = raw.replace(b"\0", b"_").replace(b"/", b"_")
    name = display_name(os.fsdecode(raw))
    name.encode("utf-8")  # never raises
    assert name == raw.decode("utf-8", "backslashreplace")  # valid UTF-8 unchanged, else escaped
