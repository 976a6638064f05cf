"""Image format and size from the first bytes of an upload, before anything is decoded.

The pixel limit must be checked before decoding: a 50 KB PNG can declare 40000 x 40000 pixels
and decode to 4.8 GB (a decompression bomb). The formats accepted are the ones whose header
states the size: JPEG, PNG, WebP, BMP and TIFF. Anything else is refused as not an image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vbow.describe.jpeg_header import is_jpeg, read_jpeg_header

__all__ = ["ImageProbe", "probe_image", "ProbeError"]


class ProbeError(ValueError):
    """The bytes are not an image of a supported format, or its header is unreadable."""


@dataclass(frozen=True)
class ImageProbe:
    """What the header says.

    Attributes
    ----------
    format : str
        ``"jpeg"``, ``"png"``, ``"webp"``, ``"bmp"`` or ``"tiff"``.
    width, height : int
        Stored size in pixels.
    """

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe_image(data: bytes | memoryview) -> ImageProbe:
    """Sniff the format from magic bytes and read the size from the header.

    Parameters
    ----------
    data : bytes
        The encoded file (at least its header).

    Returns
    -------
    ImageProbe

    Raises
    ------
    ProbeError
        Unknown format, or a header without a readable size.
    """
    head = bytes(data[:64])
    if is_jpeg(head):
        h = read_jpeg_header(data)
        if not h.width or not h.height:
            raise ProbeError("JPEG header has no frame size (truncated or corrupt)")
        return ImageProbe("jpeg", int(h.width), int(h.height))
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ProbeError("PNG without an IHDR chunk")
        w, h = struct.unpack(">II", head[16:24])
        return _checked("png", w, h)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:2] == b"BM" and len(head) >= 26:
        header_size = struct.unpack("<I", head[14:18])[0]
        if header_size == 12:
            w, h = struct.unpack("<HH", head[18:22])
        else:
            w, h = struct.unpack("<ii", head[18:26])
        return _checked("bmp", abs(w), abs(h))
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(bytes(data))
    raise ProbeError(f"unknown image format (first bytes {head[:8].hex(' ')}); "
                     "expected JPEG, PNG, WebP, BMP or TIFF")


def _checked(fmt: str, w: int, h: int) -> ImageProbe:
    if w <= 0 or h <= 0:
        raise ProbeError(f"{fmt.upper()} header gives a {w} x {h} image")
    return ImageProbe(fmt, int(w), int(h))


def _webp(head: bytes) -> ImageProbe:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return _checked("webp", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25:
        bits = struct.unpack("<I", head[21:25])[0]
        return _checked("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return _checked("webp", w, h)
    raise ProbeError("WebP without a readable VP8/VP8L/VP8X header")


def _tiff(data: bytes) -> ImageProbe:
    order = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (n,) = struct.unpack(order + "H", data[ifd:ifd + 2])
        size: dict[int, int] = {}
        for i in range(min(n, 512)):
            tag, typ, _count = struct.unpack(order + "HHI", data[ifd + 2 + 12 * i: ifd + 10 + 12 * i])
            raw = data[ifd + 10 + 12 * i: ifd + 14 + 12 * i]
            if tag in (256, 257):
                size[tag] = struct.unpack(order + ("H" if typ == 3 else "I"),
                                          raw[:2] if typ == 3 else raw)[0]
    except struct.error:
        raise ProbeError("TIFF header is truncated") from None
    if 256 not in size or 257 not in size:
        raise ProbeError("TIFF without ImageWidth/ImageLength tags")
    return _checked("tiff", size[256], size[257])
