"""Recognise an encoded image's format and read its pixel size from the header, without decoding.

vbow decodes only formats it recognises here, and checks the declared size against
``Config.max_pixels`` before any pixel is decoded, so a small file that claims billions of pixels
(a "decompression bomb") is refused instead of exhausting memory or tripping OpenCV's own limits.

Supported: JPEG, PNG, BMP, GIF, WebP, TIFF (and BigTIFF), PBM/PGM/PPM/PAM, PFM, Sun raster,
Radiance HDR, JPEG 2000 (JP2 and raw codestream) and AVIF: the formats this OpenCV build decodes.

Nothing here raises on malformed data: :func:`sniff_image` returns ``None`` for an unknown format
and an :class:`ImageHeader` whose ``width``/``height`` are ``None`` when the header cannot be read.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from vbow.describe.jpeg_header import is_jpeg, read_jpeg_header

__all__ = ["ImageHeader", "sniff_image", "FORMATS"]

#: Names of the formats :func:`sniff_image` recognises.
FORMATS: tuple[str, ...] = ("jpeg", "png", "bmp", "gif", "webp", "tiff", "pnm", "pam", "pfm",
                            "sunras", "hdr", "jpeg2000", "avif")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_PNM_TOKEN = re.compile(rb"\s*((?:#[^\n\r]*[\n\r]\s*)*)(\S+)")
_HDR_RESOLUTION = re.compile(rb"^([+-])([XY]) (\d+) ([+-])([XY]) (\d+)$")
#: How far into a file headers are searched (AVIF: the whole file).
_HEADER_SCAN = 1 << 20


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says.

    Attributes
    ----------
    format : str
        One of :data:`FORMATS`.
    width, height : int or None
        Declared size in pixels as stored (before any EXIF orientation), ``None`` if the header
        is cut short or malformed.
    """

    format: str
    width: int | None
    height: int | None

    @property
    def pixels(self) -> int | None:
        """``width * height``, or ``None`` when the size is unknown."""
        if self.width is None or self.height is None:
            return None
        return int(self.width) * int(self.height)


def _u(fmt: str, raw: bytes, offset: int) -> tuple[int, ...] | None:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(raw):
        return None
    return struct.unpack_from(fmt, raw, offset)


def _png(raw: bytes) -> tuple[int | None, int | None]:
    if raw[12:16] != b"IHDR":
        return None, None
    wh = _u(">II", raw, 16)
    return wh if wh else (None, None)


def _bmp(raw: bytes) -> tuple[int | None, int | None]:
    dib = _u("<I", raw, 14)
    if dib is None:
        return None, None
    if dib[0] == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        wh = _u("<HH", raw, 18)
    else:
        wh = _u("<ii", raw, 18)
    if wh is None:
        return None, None
    return abs(wh[0]), abs(wh[1])  # a negative height means top-down rows


def _gif(raw: bytes) -> tuple[int | None, int | None]:
    screen = _u("<HHB", raw, 6)
    if screen is None:
        return None, None
    width, height, flags = screen
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    while pos < len(raw):  # frames may extend past the logical screen: take the first one too
        block = raw[pos]
        if block == 0x2C:
            frame = _u("<HHHH", raw, pos + 1)
            if frame is None:
                break
            left, top, fw, fh = frame
            return max(width, left + fw), max(height, top + fh)
        if block != 0x21:
            break
        pos += 2
        while pos < len(raw) and raw[pos]:  # data sub-blocks
            pos += raw[pos] + 1
        pos += 1
    return width, height


def _webp(raw: bytes) -> tuple[int | None, int | None]:
    chunk = raw[12:16]
    if chunk == b"VP8X":
        if len(raw) < 30:
            return None, None
        width = 1 + int.from_bytes(raw[24:27], "little")
        height = 1 + int.from_bytes(raw[27:30], "little")
        return width, height
    if chunk == b"VP8L":
        bits = _u("<I", raw, 21)
        if bits is None or raw[20] != 0x2F:
            return None, None
        return 1 + (bits[0] & 0x3FFF), 1 + ((bits[0] >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        wh = _u("<HH", raw, 26)
        if wh is None or raw[23:26] != b"\x9d\x01\x2a":
            return None, None
        return wh[0] & 0x3FFF, wh[1] & 0x3FFF
    return None, None


def _tiff(raw: bytes) -> tuple[int | None, int | None]:
    endian = "<" if raw[:2] == b"II" else ">"
    magic = _u(endian + "H", raw, 2)
    if magic is None:
        return None, None
    big = magic[0] == 43
    first = _u(endian + ("Q" if big else "I"), raw, 8 if big else 4)
    count = None if first is None else _u(endian + ("Q" if big else "H"), raw, first[0])
    if count is None:
        return None, None
    entry_size, start = (20, first[0] + 8) if big else (12, first[0] + 2)
    found: dict[int, int] = {}
    for i in range(min(count[0], 4096)):
        entry = start + entry_size * i
        head = _u(endian + "HH", raw, entry)
        if head is None:
            break
        tag, typ = head
        if tag not in (256, 257):
            continue
        value_at = entry + (12 if big else 8)
        fmt = {3: "H", 4: "I", 16: "Q"}.get(typ)
        value = None if fmt is None else _u(endian + fmt, raw, value_at)
        if value is not None:
            found[tag] = value[0]
    return found.get(256), found.get(257)


def _pnm_tokens(raw: bytes, n: int) -> list[bytes]:
    tokens: list[bytes] = []
    pos = 2
    while len(tokens) < n:
        m = _PNM_TOKEN.match(raw, pos)
        if m is None:
            break
        tokens.append(m.group(2))
        pos = m.end()
    return tokens


def _to_int(token: bytes) -> int | None:
    return int(token) if token.isdigit() and len(token) <= 12 else None


def _pnm(raw: bytes) -> tuple[int | None, int | None]:
    tokens = _pnm_tokens(raw[:4096], 2)
    if len(tokens) < 2:
        return None, None
    return _to_int(tokens[0]), _to_int(tokens[1])


def _pam(raw: bytes) -> tuple[int | None, int | None]:
    head = raw[:4096]
    width = re.search(rb"(?m)^\s*WIDTH\s+(\S+)", head)
    height = re.search(rb"(?m)^\s*HEIGHT\s+(\S+)", head)
    return (_to_int(width.group(1)) if width else None,
            _to_int(height.group(1)) if height else None)


def _sunras(raw: bytes) -> tuple[int | None, int | None]:
    wh = _u(">II", raw, 4)
    return wh if wh else (None, None)


def _hdr(raw: bytes) -> tuple[int | None, int | None]:
    head = raw[:65536]
    blank = head.find(b"\n\n")
    if blank < 0:
        return None, None
    end = head.find(b"\n", blank + 2)
    line = head[blank + 2:end if end >= 0 else len(head)].strip()
    m = _HDR_RESOLUTION.match(line)
    if m is None:
        return None, None
    sizes = {m.group(2): int(m.group(3)), m.group(5): int(m.group(6))}
    if set(sizes) != {b"X", b"Y"}:
        return None, None
    return sizes[b"X"], sizes[b"Y"]


def _j2k_codestream(raw: bytes, at: int) -> tuple[int | None, int | None]:
    siz = _u(">HHHIIII", raw, at + 2)  # SIZ marker, Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz
    if siz is None or siz[0] != 0xFF51:
        return None, None
    _, _, _, xsiz, ysiz, xo, yo = siz
    if xo > xsiz or yo > ysiz:
        return None, None
    return xsiz - xo, ysiz - yo


def _jp2(raw: bytes) -> tuple[int | None, int | None]:
    at = raw.find(b"ihdr", 0, _HEADER_SCAN)
    hw = None if at < 0 else _u(">II", raw, at + 4)
    if hw is None:
        return None, None
    return hw[1], hw[0]


def _avif(raw: bytes) -> tuple[int | None, int | None]:
    """Largest ``ispe`` (image spatial extents) property in the file: the primary image or grid."""
    best: tuple[int | None, int | None] = (None, None)
    best_pixels = -1
    at = raw.find(b"ispe")
    while at >= 0:
        wh = _u(">II", raw, at + 8)  # after the 4-byte version and flags
        if wh is not None and wh[0] * wh[1] > best_pixels:
            best, best_pixels = wh, wh[0] * wh[1]
        at = raw.find(b"ispe", at + 4)
    return best


def _is_avif(raw: bytes) -> bool:
    if raw[4:8] != b"ftyp":
        return False
    size = int.from_bytes(raw[:4], "big")
    brands = raw[8:min(max(size, 16), 256)]
    return any(brands[i:i + 4] in (b"avif", b"avis") for i in range(0, len(brands) - 3, 4))


def sniff_image(data: bytes | bytearray | memoryview) -> ImageHeader | None:
    """Recognise the format of an encoded image and read its declared size.

    Parameters
    ----------
    data : bytes-like
        The encoded file (only its header is read).

    Returns
    -------
    ImageHeader or None
        ``None`` if the bytes do not start like any supported format; otherwise the format and
        the declared ``width``/``height`` (``None`` where the header is cut short or malformed).
    """
    raw = bytes(data[:_HEADER_SCAN]) if len(data) > _HEADER_SCAN else bytes(data)
    if is_jpeg(raw):
        header = read_jpeg_header(data)
        return ImageHeader("jpeg", header.width, header.height)
    probes = (
        (raw.startswith(_PNG_SIGNATURE), "png", _png),
        (raw.startswith(b"BM"), "bmp", _bmp),
        (raw[:6] in (b"GIF87a", b"GIF89a"), "gif", _gif),
        (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP", "webp", _webp),
        (raw[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "tiff", _tiff),
        (len(raw) >= 3 and raw[0:1] == b"P" and raw[1:2] in b"123456" and raw[1:2] != b""
         and raw[2:3].isspace(), "pnm", _pnm),
        (raw[:3] in (b"P7\n", b"P7\r", b"P7 "), "pam", _pam),
        (raw[:2] in (b"PF", b"Pf") and raw[2:3].isspace(), "pfm", _pnm),
        (raw[:4] == b"\x59\xa6\x6a\x95", "sunras", _sunras),
        (raw.startswith(b"#?RADIANCE") or raw.startswith(b"#?RGBE"), "hdr", _hdr),
        (raw.startswith(_JP2_SIGNATURE), "jpeg2000", _jp2),
        (raw[:2] == b"\xff\x4f", "jpeg2000", lambda r: _j2k_codestream(r, 0)),
        (_is_avif(raw), "avif", _avif),
    )
    for matches, name, reader in probes:
        if matches:
            # AVIF's meta box may follow the image data: search the whole file for it
            width, height = reader(bytes(data) if name == "avif" else raw)
            return ImageHeader(name, width, height)
    return None
