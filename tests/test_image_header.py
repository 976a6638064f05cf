"""vbow.describe.image_header: the size a header declares is the size OpenCV decodes, for every
supported format, and no input makes the sniffer raise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.describe.image_header import FORMATS, sniff_image

#: Extension written by OpenCV -> the format the sniffer must name.
WRITTEN = {".jpg": "jpeg", ".png": "png", ".bmp": "bmp", ".gif": "gif", ".webp": "webp",
           ".tiff": "tiff", ".pgm": "pnm", ".ppm": "pnm", ".pbm": "pnm", ".pam": "pam",
           ".pfm": "pfm", ".ras": "sunras", ".hdr": "hdr", ".jp2": "jpeg2000", ".avif": "avif"}
#: Extra encoder settings exercising other header variants.
VARIANTS = {"webp-lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
            "png-16-bit": (".png", []), "tiff-gray": (".tiff", [])}


def _image(h: int, w: int, ext: str, seed: int) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if ext in (".pgm", ".pbm"):
        return img[:, :, 0]
    if ext in (".hdr", ".pfm"):
        return img.astype(np.float32) / 255.0
    return img


def test_every_written_format_is_a_known_format():
    assert set(WRITTEN.values()) <= set(FORMATS)


@given(h=st.integers(1, 120), w=st.integers(1, 120), ext=st.sampled_from(sorted(WRITTEN)),
       seed=st.integers(0, 1000))
def test_declared_size_is_the_decoded_size(h, w, ext, seed):
    if ext in (".avif", ".jp2") and min(h, w) < 8:
        h, w = max(h, 8), max(w, 8)  # these encoders want a few pixels
    ok, buf = cv2.imencode(ext, _image(h, w, ext, seed))
    assert ok
    header = sniff_image(buf.tobytes())
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert header is not None and header.format == WRITTEN[ext]
    assert (header.width, header.height) == (decoded.shape[1], decoded.shape[0])
    assert header.pixels == h * w


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_header_variants(variant):
    ext, params = VARIANTS[variant]
    img = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    if variant == "png-16-bit":
        img = img.astype(np.uint16) * 257
    if variant == "tiff-gray":
        img = img[:, :, 0]
    ok, buf = cv2.imencode(ext, img, params)
    header = sniff_image(buf.tobytes())
    assert ok and (header.width, header.height) == (53, 37)


def test_bigtiff_and_big_endian_tiff():
    import struct

    for order, magic in ((b"II", 43), (b"MM", 43), (b"MM", 42)):
        e = "<" if order == b"II" else ">"
        if magic == 43:
            ifd = struct.pack(e + "Q", 2) + struct.pack(e + "HHQQ", 256, 16, 1, 7001) + \
                struct.pack(e + "HHQQ", 257, 3, 1, 5 if e == "<" else 5 << 48)
            data = order + struct.pack(e + "HHHQ", 43, 8, 0, 16) + ifd
        else:
            ifd = struct.pack(e + "H", 2) + struct.pack(e + "HHII", 256, 4, 1, 7001) + \
                struct.pack(e + "HHI", 257, 3, 1) + struct.pack(e + "HH", 5, 0)
            data = order + struct.pack(e + "HI", 42, 8) + ifd
        header = sniff_image(data)
        assert (header.format, header.width, header.height) == ("tiff", 7001, 5), (order, magic)


@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    header = sniff_image(data)
    assert header is None or header.format in FORMATS


@given(ext=st.sampled_from(sorted(WRITTEN)), cut=st.integers(0, 400))
def test_cut_headers_never_raise_and_never_invent_a_size(ext, cut):
    ok, buf = cv2.imencode(ext, _image(40, 60, ext, 0))
    data = buf.tobytes()[:cut]
    header = sniff_image(data)
    if header is not None and header.pixels is not None:
        assert (header.width, header.height) == (60, 40)


def test_avif_size_found_after_a_large_prefix_of_data():
    """AVIF files may put their meta box (with the size) after the image data."""
    ok, buf = cv2.imencode(".avif", _image(30, 50, ".avif", 0))
    data = buf.tobytes()
    ftyp_end = int.from_bytes(data[:4], "big")
    filler = struct_box(b"free", bytes(3 << 20))  # 3 MiB of padding before the meta box
    header = sniff_image(data[:ftyp_end] + filler + data[ftyp_end:])
    assert (header.format, header.width, header.height) == ("avif", 50, 30)


def struct_box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload
