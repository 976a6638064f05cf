"""Read the few JPEG header facts vbow needs without decoding pixels.

Only marker segments before the first scan are read: the frame size (SOF) and the EXIF
orientation tag (APP1 ``Exif``, IFD0 tag 0x0112). Nothing here raises on malformed headers:
a header that cannot be parsed simply yields ``None`` values, and the decoder reports the error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["JpegHeader", "read_jpeg_header", "is_jpeg", "jpeg_looks_truncated"]

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class JpegHeader:
    """Facts read from a JPEG header.

    Attributes
    ----------
    width, height : int or None
        Frame size in pixels as stored (before EXIF orientation), or None if no SOF was found.
    orientation : int
        EXIF orientation 1..8 (1 = as stored, also when absent or invalid).
    """

    width: int | None
    height: int | None
    orientation: int


def is_jpeg(data: bytes | memoryview) -> bool:
    """Return True if ``data`` starts with the JPEG SOI marker."""
    return len(data) >= 3 and bytes(data[:3]) == b"\xff\xd8\xff"


def jpeg_looks_truncated(data: bytes | memoryview) -> bool:
    """Return True if a JPEG stream has no end-of-image marker after its last scan.

    libjpeg decodes a truncated file with grey fill and only a warning; this check catches it.
    An EOI belonging to an embedded EXIF thumbnail does not count, because it comes before the
    main image's last start-of-scan marker.
    """
    raw = bytes(data)
    last_eoi = raw.rfind(b"\xff\xd9")
    last_sos = raw.rfind(b"\xff\xda")
    return last_eoi < 0 or last_eoi < last_sos


def _exif_orientation(tiff: bytes) -> int:
    if len(tiff) < 8:
        return 1
    order = tiff[:2]
    if order == b"II":
        endian = "<"
    elif order == b"MM":
        endian = ">"
    else:
        return 1
    (ifd_offset,) = struct.unpack(endian + "I", tiff[4:8])
    if ifd_offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(endian + "H", tiff[ifd_offset : ifd_offset + 2])
    for i in range(count):
        entry = ifd_offset + 2 + 12 * i
        if entry + 12 > len(tiff):
            return 1
        tag, typ, n = struct.unpack(endian + "HHI", tiff[entry : entry + 8])
        if tag == _ORIENTATION_TAG and typ == 3 and n >= 1:
            (value,) = struct.unpack(endian + "H", tiff[entry + 8 : entry + 10])
            return int(value) if 1 <= value <= 8 else 1
    return 1


def read_jpeg_header(data: bytes | memoryview) -> JpegHeader:
    """Parse the JPEG marker segments up to the first scan.

    Parameters
    ----------
    data : bytes
        The encoded file.

    Returns
    -------
    JpegHeader
        Frame size and EXIF orientation; ``orientation`` is 1 when absent.
    """
    raw = data if isinstance(data, bytes) else bytes(data)
    width = height = None
    orientation = 1
    i = 2
    n = len(raw)
    while i + 4 <= n:
        if raw[i] != 0xFF:
            break
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", raw[i + 2 : i + 4])
        segment = raw[i + 4 : i + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00" and orientation == 1:
            orientation = _exif_orientation(segment[6:])
        elif marker in _SOF_MARKERS and len(segment) >= 5:
            height, width = struct.unpack(">HH", segment[1:5])
        elif marker == 0xDA:  # start of scan: headers are over
            break
        i += 2 + length
    return JpegHeader(width=width, height=height, orientation=orientation)
