"""vbow.describe.jpeg_header: frame size and EXIF orientation from headers, truncation check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_image_input import exif_segment, with_exif

from vbow.describe.jpeg_header import is_jpeg, jpeg_looks_truncated, read_jpeg_header


def jpeg(w: int, h: int, progressive: bool = False, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 80]
    if progressive:
        params += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    ok, buf = cv2.imencode(".jpg", img, params)
    assert ok
    return buf.tobytes()


@given(w=st.integers(1, 300), h=st.integers(1, 300), progressive=st.booleans())
def test_frame_size(w, h, progressive):
    header = read_jpeg_header(jpeg(w, h, progressive))
    assert (header.width, header.height) == (w, h)
    assert header.orientation == 1


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation(orientation, big_endian):
    data = with_exif(jpeg(30, 20), orientation, big_endian)
    header = read_jpeg_header(data)
    assert header.orientation == orientation
    assert (header.width, header.height) == (30, 20)        # as stored, not turned


@pytest.mark.parametrize("value", [0, 9, 1000])
def test_invalid_orientation_reads_as_1(value):
    assert read_jpeg_header(with_exif(jpeg(8, 8), value)).orientation == 1


def test_first_exif_segment_wins_and_other_app_segments_are_skipped():
    base = jpeg(16, 12)
    app0_like = b"\xff\xe2" + (2 + 5).to_bytes(2, "big") + b"junk!"
    data = base[:2] + app0_like + exif_segment(6) + exif_segment(3) + base[2:]
    assert read_jpeg_header(data).orientation == 6
    assert (read_jpeg_header(data).width, read_jpeg_header(data).height) == (16, 12)


@given(garbage=st.binary(max_size=200))
def test_malformed_headers_never_raise(garbage):
    header = read_jpeg_header(b"\xff\xd8" + garbage)
    assert 1 <= header.orientation <= 8
    read_jpeg_header(b"\xff\xd8" + exif_segment(6)[:len(garbage) % 30] + garbage)


def test_truncated_exif_block_is_ignored():
    seg = exif_segment(6)
    # claim a longer segment than present: the parser must not crash
    bad = b"\xff\xd8" + seg[:2] + (500).to_bytes(2, "big") + seg[4:]
    assert read_jpeg_header(bad).orientation in (1, 6)


def test_is_jpeg():
    assert is_jpeg(jpeg(4, 4))
    assert is_jpeg(memoryview(jpeg(4, 4)))
    assert not is_jpeg(b"\x89PNG\r\n\x1a\n")
    assert not is_jpeg(b"\xff\xd8")
    assert not is_jpeg(b"")


def test_truncation_check():
    data = jpeg(40, 30)
    assert not jpeg_looks_truncated(data)
    for cut in (len(data) - 1, len(data) // 2, 200):
        assert jpeg_looks_truncated(data[:cut])
    assert not jpeg_looks_truncated(data + b"trailing bytes after the image")


def test_thumbnail_end_marker_does_not_hide_truncation():
    """An EXIF thumbnail ends with its own EOI; a cut main image is still truncated."""
    thumb = jpeg(8, 8, seed=1)
    payload = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00\x00\x00" + thumb
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    main = jpeg(64, 48, seed=2)
    data = main[:2] + app1 + main[2:]
    assert not jpeg_looks_truncated(data)
    assert jpeg_looks_truncated(data[: len(data) - 100])
    header = read_jpeg_header(data)
    assert (header.width, header.height) == (64, 48)
