"""vbow.describe.image_input: every input kind gives one canonical upright BGR uint8 image, bad input a
typed error that names the file."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.errors import ImageDecodeError, ImageError, InvalidInputError, VbowError
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
