"""The bad-input corpus: every kind of bad input becomes its typed vbow error, fast, and batches go on.

Every item is generated here, from synthetic images encoded by OpenCV and then cut, corrupted or
given a lying header, plus file-system oddities (FIFOs, devices, dangling links, sparse giants),
unusable arrays and objects that are not images at all. Each kind expects one exact error class.
Each decode runs in a daemon thread under a time limit, so a hang fails the test instead of
blocking the suite. The batch tests mix every bad item with good synthetic images (arrays, files of
several formats, file objects, RGB arrays, PIL images) and check that all the good ones are indexed
and every bad one is reported, named, with its error class.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest

import vbow
from vbow.describe.colour import ColourHistogram
from vbow.describe.extraction import ImageDescriber, ImageDescription
from vbow.describe.features import FeatureExtractor
from vbow.describe.image_array import ImageArray
from vbow.errors import ImageDecodeError, ImageError, ImageTooLargeError, ImageTypeError
from vbow.results import ImageFailure
from vbow.synthetic import make_catalog

try:
    from PIL import Image as PILImage
except ImportError:  # Pillow is in the test extra; the corpus still has > 100 kinds without it
    PILImage = None

#: Seconds one decode may take before it counts as a hang (a shared 2-core machine is slow).
DECODE_LIMIT = 20.0
#: Seconds a whole batch may take.
BATCH_LIMIT = 300.0

# ----------------------------------------------------------------------------------- helpers


def run_limited(fn: Callable[[], Any], seconds: float, what: str) -> tuple[Any, BaseException | None, float]:
    """Run ``fn`` in a daemon thread; fail the test if it has not returned after ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        t = time.perf_counter()
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc
        box["seconds"] = time.perf_counter() - t

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{what} did not finish within {seconds} s: it hangs")
    return box.get("value"), box.get("error"), box["seconds"]


def picture(seed: int = 0, h: int = 64, w: int = 80) -> np.ndarray:
    """A random colour picture (BGR uint8)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encode(ext: str, image: np.ndarray | None = None) -> bytes:
    image = picture() if image is None else image
    if ext in (".pgm", ".pbm"):
        image = image[:, :, 0]
    if ext in (".hdr", ".pfm"):
        image = image.astype(np.float32) / 255.0
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {ext}")
    return buf.tobytes()


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_file(width: int, height: int, idat: bytes | None = None, *, bit_depth: int = 8,
             colour_type: int = 2, ihdr_crc: int | None = None) -> bytes:
    """A PNG with the given IHDR and IDAT (default: a little compressed data) and an IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr, ihdr_crc) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def zero_png_stream(width: int, height: int, block: int = 1 << 20) -> bytes:
    """zlib stream of ``height`` all-zero gray rows (filter byte + width bytes), made fast.

    Full flushes make every full block compress to the same bytes, so only three blocks are
    compressed and the rest repeated.
    """
    total = height * (width + 1)
    full, rest = divmod(total, block)
    comp = zlib.compressobj(9)
    first = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    last = comp.compress(bytes(rest)) + comp.flush()
    return first + repeat * (full - 1) + last


def bmp_file(width: int, height: int, *, bpp: int = 24, compression: int = 0,
             data_offset: int = 54, dib_size: int = 40, body: bytes = b"\0" * 16) -> bytes:
    header = b"BM" + struct.pack("<IHHI", 54 + len(body), 0, 0, data_offset)
    dib = struct.pack("<IiiHHIIiiII", dib_size, width, height, 1, bpp, compression, 0, 2835,
                      2835, 0, 0)
    return header + dib + body


def tiff_file(width: int, height: int, ifd_offset: int = 8) -> bytes:
    """Little-endian TIFF with an IFD giving only ImageWidth/ImageLength (LONG) and 8-bit gray."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, 1, 200), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + struct.pack("<I", 0) + b"\0" * 120


def jpeg_with_frame(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 frame size is rewritten."""
    data = bytearray(encode(".jpg"))
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_file(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x2c"
            + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


def webp_vp8x(width: int, height: int) -> bytes:
    payload = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + \
        (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 8
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def jpeg_segment(data: bytes, marker: int) -> int:
    return data.find(bytes([0xFF, marker]))


# ----------------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: how to make it (given a scratch folder) and the error it must raise."""

    name: str
    make: Callable[[Path], Any]
    error: type[ImageError]


ENCODED = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "gif": ".gif", "webp": ".webp",
           "tiff": ".tiff", "pgm": ".pgm", "ppm": ".ppm", "pbm": ".pbm", "pam": ".pam",
           "jp2": ".jp2", "sunras": ".ras", "hdr": ".hdr", "pfm": ".pfm", "avif": ".avif"}
#: Where each format's magic number starts (AVIF's first 4 bytes are a box size).
MAGIC_AT = {"avif": 4}


def _encoded_kinds() -> list[Kind]:
    kinds: list[Kind] = []
    for fmt, ext in ENCODED.items():
        for fraction in (0.1, 0.5, 0.9):
            kinds.append(Kind(f"{fmt}-truncated-{int(fraction * 100)}pct",
                              lambda d, e=ext, f=fraction: (lambda b: b[:int(len(b) * f)])(encode(e)),
                              ImageDecodeError))
        kinds.append(Kind(f"{fmt}-first-12-bytes", lambda d, e=ext: encode(e)[:12], ImageDecodeError))
        at = MAGIC_AT.get(fmt, 0)
        kinds.append(Kind(f"{fmt}-wrong-magic",
                          lambda d, e=ext, a=at: (lambda b: patch(b, a, bytes(x ^ 0xFF for x in b[a:a + 4])))(encode(e)),
                          ImageDecodeError))
    return kinds


def _bomb_kinds() -> list[Kind]:
    big = 100_000  # 10^10 pixels, over OpenCV's 2^30 limit as well as vbow's
    over = 10_000  # 10^8 pixels: under OpenCV's limit, over vbow's 89,478,485
    bombs = {
        "png-69-bytes-claims-1e10-pixels": lambda d: png_file(big, big),
        "png-claims-1e8-pixels": lambda d: png_file(over, over),
        "bmp-claims-1e10-pixels": lambda d: bmp_file(big, big),
        "bmp-top-down-claims-1e10-pixels": lambda d: bmp_file(big, -big),
        "bmp-os2-header-claims-4e9-pixels": lambda d: b"BM" + struct.pack("<IHHI", 40, 0, 0, 26)
        + struct.pack("<IHHHH", 12, 65535, 65535, 1, 24) + b"\0" * 14,
        "pgm-claims-1e10-pixels": lambda d: b"P5\n100000 100000\n255\n" + b"\0" * 48,
        "ppm-comment-claims-1e10-pixels": lambda d: b"P6\n# made by a bomb\n100000 100000\n255\n" + b"\0" * 48,
        "pbm-claims-1e10-pixels": lambda d: b"P4\n100000 100000\n" + b"\0" * 48,
        "pam-claims-4e8-pixels": lambda d: b"P7\nWIDTH 20000\nHEIGHT 20000\nDEPTH 3\nMAXVAL 255\n"
        b"TUPLTYPE RGB\nENDHDR\n" + b"\0" * 48,
        "pfm-claims-4e8-pixels": lambda d: b"PF\n20000 20000\n-1.0\n" + b"\0" * 48,
        "jpeg-frame-65535-squared": lambda d: jpeg_with_frame(65535, 65535),
        "jpeg-frame-10000-squared": lambda d: jpeg_with_frame(over, over),
        "gif-claims-4e9-pixels": lambda d: gif_file(65535, 65535),
        "webp-vp8x-canvas-16M-squared": lambda d: webp_vp8x(1 << 24, 1 << 24),
        "webp-vp8l-16384-squared": lambda d: webp_vp8l(16384, 16384),
        "tiff-claims-1e10-pixels": lambda d: tiff_file(big, big),
        "sunras-claims-4e8-pixels": lambda d: struct.pack(">8I", 0x59A66A95, 20000, 20000, 24, 0, 1, 0, 0) + b"\0" * 48,
        "hdr-claims-4e8-pixels": lambda d: b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + b"\0" * 48,
        "jpeg2000-codestream-claims-4e8-pixels": lambda d: b"\xff\x4f\xff\x51\x00\x29\x00\x00"
        + struct.pack(">IIII", 20000, 20000, 0, 0) + b"\0" * 48,
        "jp2-box-claims-4e8-pixels": lambda d: b"\x00\x00\x00\x0cjP  \r\n\x87\n" + struct.pack(">I", 45)
        + b"jp2h" + struct.pack(">I", 22) + b"ihdr" + struct.pack(">IIHBBBB", 20000, 20000, 3, 7, 7, 0, 0) + b"\0" * 16,
        "png-875kb-decodes-to-30000-squared": lambda d: png_file(30000, 30000,
                                                                 zero_png_stream(30000, 30000),
                                                                 colour_type=0),
    }
    return [Kind(name, make, ImageTooLargeError) for name, make in bombs.items()]


def _structural_kinds() -> list[Kind]:
    def jpeg_edit(fn: Callable[[bytes], bytes]) -> Callable[[Path], bytes]:
        return lambda d: fn(encode(".jpg"))

    def drop_sof(b: bytes) -> bytes:
        i = jpeg_segment(b, 0xC0)
        return b[:i] + b[i + 2 + int.from_bytes(b[i + 2:i + 4], "big"):]

    def gray_pgm_body() -> bytes:
        b = encode(".pgm")
        return b[b.find(b"255\n") + 4:]

    kinds = {
        "jpeg-garbage-huffman-table": jpeg_edit(lambda b: (lambda i: b[:i + 4] + b"\xff" * 40 + b[i + 44:])(jpeg_segment(b, 0xC4))),
        "jpeg-zero-length-quant-table": jpeg_edit(lambda b: (lambda i: b[:i + 2] + b"\0\0" + b[i + 4:])(jpeg_segment(b, 0xDB))),
        "jpeg-without-frame-header": jpeg_edit(drop_sof),
        "jpeg-frame-with-0-components": jpeg_edit(lambda b: (lambda i: patch(b, i + 9, b"\0"))(jpeg_segment(b, 0xC0))),
        "jpeg-frame-precision-3-bits": jpeg_edit(lambda b: (lambda i: patch(b, i + 4, b"\x03"))(jpeg_segment(b, 0xC0))),
        "jpeg-soi-eoi-only": lambda d: b"\xff\xd8\xff\xd9",
        "png-bad-header-crc": lambda d: png_file(64, 64, ihdr_crc=0),
        "png-bit-depth-7": lambda d: png_file(64, 64, bit_depth=7),
        "png-colour-type-5": lambda d: png_file(64, 64, colour_type=5),
        "png-idat-not-zlib": lambda d: png_file(64, 64, b"this is not a zlib stream at all"),
        "png-signature-only": lambda d: b"\x89PNG\r\n\x1a\n",
        "bmp-7-bits-per-pixel": lambda d: patch(encode(".bmp"), 28, struct.pack("<H", 7)),
        "bmp-compression-9": lambda d: patch(encode(".bmp"), 30, struct.pack("<I", 9)),
        "bmp-dib-header-size-1": lambda d: patch(encode(".bmp"), 14, struct.pack("<I", 1)),
        "bmp-pixels-offset-past-end": lambda d: patch(encode(".bmp"), 10, struct.pack("<I", 10 ** 6)),
        "pgm-maxval-0": lambda d: b"P5\n80 64\n0\n" + gray_pgm_body(),
        "pgm-maxval-70000": lambda d: b"P5\n80 64\n70000\n" + gray_pgm_body(),
        "pgm-width-not-a-number": lambda d: b"P5\nxx 64\n255\n" + gray_pgm_body(),
        "pgm-negative-width": lambda d: b"P5\n-80 64\n255\n" + gray_pgm_body(),
        "tiff-ifd-offset-past-end": lambda d: patch(encode(".tiff"), 4, struct.pack("<I", 10 ** 7)),
        "gif-garbage-lzw-data": lambda d: (lambda b: b[:-200] + b"\xff" * 199 + b";")(encode(".gif")),
        "webp-riff-size-lies": lambda d: patch(encode(".webp"), 4, struct.pack("<I", 10 ** 8)),
        "webp-unknown-chunk": lambda d: patch(encode(".webp"), 12, b"VPXX"),
        # declared empty images
        "png-0x0": lambda d: png_file(0, 0),
        "bmp-width-0": lambda d: bmp_file(0, 16),
        "pgm-0x0": lambda d: b"P5\n0 0\n255\n",
        "gif-0x0": lambda d: gif_file(0, 0),
        "tiff-width-0": lambda d: tiff_file(0, 16),
        "jpeg-frame-height-0": lambda d: jpeg_with_frame(80, 0),
    }
    return [Kind(name, make, ImageDecodeError) for name, make in kinds.items()]


def _write(folder: Path, name: str | bytes, data: bytes) -> str:
    path = os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else \
        os.path.join(folder, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return os.fsdecode(path)


def _fifo(folder: Path) -> str:
    path = folder / "pipe.jpg"
    os.mkfifo(path)
    return str(path)


def _socket(folder: Path) -> str:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="vb")) / "s.jpg"  # AF_UNIX paths must be short
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    _KEEP.append((sock, path))
    return str(path)


def _sparse(folder: Path) -> str:
    path = folder / "giant.png"
    with open(path, "wb") as fh:
        fh.write(encode(".png"))
        fh.truncate(600 << 20)  # sparse: 600 MiB declared, nothing written
    return str(path)


_KEEP: list[Any] = []


def _file_kinds() -> list[Kind]:
    def symlink(target: str, name: str) -> Callable[[Path], str]:
        def make(d: Path) -> str:
            os.symlink(target, d / name)
            return str(d / name)
        return make

    def loop(d: Path) -> str:
        os.symlink(d / "b.jpg", d / "a.jpg")
        os.symlink(d / "a.jpg", d / "b.jpg")
        return str(d / "a.jpg")

    def directory(d: Path) -> str:
        (d / "folder.jpg").mkdir()
        return str(d / "folder.jpg")

    kinds = [
        Kind("file-empty", lambda d: _write(d, "empty.jpg", b""), ImageDecodeError),
        Kind("file-text-named-jpg", lambda d: _write(d, "notes.jpg", b"shopping list: tea, milk\n" * 40), ImageDecodeError),
        Kind("file-random-bytes", lambda d: _write(d, "noise.png", np.random.default_rng(5).bytes(4096)), ImageDecodeError),
        Kind("file-truncated-jpeg", lambda d: _write(d, "cut.jpg", encode(".jpg")[:3000]), ImageDecodeError),
        Kind("file-html-error-page", lambda d: _write(d, "img.jpg", b"<html><body>404 Not Found</body></html>"), ImageDecodeError),
        Kind("file-non-utf8-name-corrupt", lambda d: _write(d, b"caf\xe9.jpg", b"\xff\xd8\xff\xe0garbage"), ImageDecodeError),
        Kind("file-missing", lambda d: str(d / "missing.jpg"), ImageError),
        Kind("file-missing-pathlib", lambda d: d / "missing.png", ImageError),
        Kind("file-missing-non-utf8-name", lambda d: os.fsdecode(os.path.join(os.fsencode(d), b"caf\xe9-gone.jpg")), ImageError),
        Kind("file-directory", directory, ImageError),
        Kind("file-fifo-named-jpg", _fifo, ImageError),
        Kind("file-unix-socket", _socket, ImageError),
        Kind("file-dev-zero", lambda d: "/dev/zero", ImageError),
        Kind("file-dev-null", lambda d: "/dev/null", ImageError),
        Kind("file-dangling-symlink", symlink("/nonexistent/target.jpg", "dangling.jpg"), ImageError),
        Kind("file-symlink-loop", loop, ImageError),
        Kind("file-name-with-nul-byte", lambda d: str(d / "a\0b.jpg"), ImageError),
        Kind("file-path-through-a-file", lambda d: _write(d, "plain", b"x") + "/child.jpg", ImageError),
        Kind("file-sparse-600-mib", _sparse, ImageTooLargeError),
    ]
    return kinds


def _array_kinds() -> list[Kind]:
    arrays = {
        "array-nan": lambda d: np.full((32, 32, 3), np.nan, np.float32),
        "array-inf": lambda d: np.full((32, 32), np.inf),
        "array-minus-inf-pixel": lambda d: (lambda a: (a.__setitem__((3, 3), -np.inf), a)[1])(np.zeros((32, 32))),
        "array-empty-rows": lambda d: np.zeros((0, 5, 3), np.uint8),
        "array-empty-columns": lambda d: np.zeros((5, 0), np.uint8),
        "array-0-d": lambda d: np.array(3, np.uint8),
        "array-1-d": lambda d: np.zeros(100, np.uint8),
        "array-4-d": lambda d: np.zeros((2, 8, 8, 3), np.uint8),
        "array-2-channels": lambda d: np.zeros((8, 8, 2), np.uint8),
        "array-5-channels": lambda d: np.zeros((8, 8, 5), np.uint8),
        "array-int32": lambda d: np.zeros((8, 8), np.int32),
        "array-int64": lambda d: np.zeros((8, 8, 3), np.int64),
        "array-int8": lambda d: np.zeros((8, 8), np.int8),
        "array-complex": lambda d: np.zeros((8, 8), np.complex64),
        "array-object": lambda d: np.empty((8, 8), object),
        "array-strings": lambda d: np.full((8, 8), "a"),
        "array-float-over-255": lambda d: np.full((8, 8, 3), 300.0),
        "array-float-negative": lambda d: np.full((8, 8), -5.0, np.float32),
        "imagearray-rgb-2-channels": lambda d: ImageArray(np.zeros((8, 8, 2), np.uint8), channels="rgb"),
        "imagearray-values-outside-stated-range": lambda d: ImageArray(np.full((8, 8), 200.0), value_range=1.0),
    }
    return [Kind(name, make, ImageError) for name, make in arrays.items()]


def _object_kinds() -> list[Kind]:
    def closed_stream(d: Path) -> io.BytesIO:
        s = io.BytesIO(encode(".png"))
        s.close()
        return s

    objects = {
        "object-none": (lambda d: None, ImageTypeError),
        "object-int": (lambda d: 42, ImageTypeError),
        "object-float": (lambda d: 3.5, ImageTypeError),
        "object-bool": (lambda d: True, ImageTypeError),
        "object-numpy-scalar": (lambda d: np.int64(7), ImageTypeError),
        "object-complex": (lambda d: 1 + 2j, ImageTypeError),
        "object-list-of-ints": (lambda d: [1, 2, 3], ImageTypeError),
        "object-empty-list": (lambda d: [], ImageTypeError),
        "object-dict": (lambda d: {"path": "x.jpg"}, ImageTypeError),
        "object-tuple": (lambda d: (64, 64), ImageTypeError),
        "object-set": (lambda d: {1}, ImageTypeError),
        "object-plain": (lambda d: object(), ImageTypeError),
        "object-function": (lambda d: len, ImageTypeError),
        "bytes-of-text": (lambda d: b"definitely not an image", ImageDecodeError),
        "bytes-empty": (lambda d: b"", ImageDecodeError),
        "bytearray-empty": (lambda d: bytearray(), ImageDecodeError),
        "memoryview-of-text": (lambda d: memoryview(b"GIF87 is not quite it"), ImageDecodeError),
        "stream-text-mode": (lambda d: io.StringIO("an image, honest"), ImageTypeError),
        "stream-closed": (closed_stream, ImageError),
        "stream-empty": (lambda d: io.BytesIO(), ImageDecodeError),
        "stream-garbage": (lambda d: io.BytesIO(b"\x00\x01garbage" * 50), ImageDecodeError),
        "stream-truncated-png": (lambda d: io.BytesIO(encode(".png")[:500]), ImageDecodeError),
    }
    return [Kind(name, make, error) for name, (make, error) in objects.items()]


def _pil_kinds() -> list[Kind]:
    if PILImage is None:
        return []

    def truncated(d: Path) -> Any:
        path = _write(d, "pil-cut.png", encode(".png")[:2000])
        return PILImage.open(path)  # lazy: only the header is read

    def huge(d: Path) -> Any:
        path = _write(d, "pil-big.png", png_file(9500, 9500))  # 90.25M pixels: over vbow's limit,
        return PILImage.open(path)                             # under Pillow's bomb error (2x)

    return [Kind("pil-truncated-png", truncated, ImageDecodeError),
            Kind("pil-over-the-pixel-limit", huge, ImageTooLargeError)]


KINDS: list[Kind] = (_encoded_kinds() + _bomb_kinds() + _structural_kinds() + _file_kinds()
                     + _array_kinds() + _object_kinds() + _pil_kinds())
KIND_NAMES = [k.name for k in KINDS]


def test_the_corpus_has_over_100_distinct_kinds():
    assert len(set(KIND_NAMES)) == len(KIND_NAMES)
    assert len(KINDS) - len(_pil_kinds()) >= 100  # without Pillow too


def make_corpus(root: Path) -> dict[str, tuple[Any, type[ImageError]]]:
    """Every kind made, each in its own folder: name -> (input, expected error)."""
    made = {}
    for i, kind in enumerate(KINDS):
        folder = root / f"k{i:03d}"
        folder.mkdir()
        made[kind.name] = (kind.make(folder), kind.error)
    return made


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Any, type[ImageError]]]:
    """The corpus for tests that only read each item once (streams are consumed by reading)."""
    yield make_corpus(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module", autouse=True)
def _close_sockets():
    yield
    for sock, path in _KEEP:
        sock.close()
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    _KEEP.clear()


@pytest.fixture()
def fresh_corpus(tmp_path) -> dict[str, tuple[Any, type[ImageError]]]:
    """A corpus made for one test (batch tests read every stream and PIL image again)."""
    (tmp_path / "bad").mkdir()
    return make_corpus(tmp_path / "bad")


def _extractor() -> ImageDescriber:
    return ImageDescriber(FeatureExtractor("sift", 500), ColourHistogram(), max_side=640,
                          min_side=400)


def _expected_label(source: Any, name: str) -> str:
    """What the error must name: the file (escaped when not UTF-8) or the item's given name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsencode(source).decode("utf-8", "backslashreplace")
    return name


@pytest.mark.parametrize("name", KIND_NAMES)
def test_each_bad_input_raises_its_typed_error_quickly(corpus, name):
    source, expected = corpus[name]
    label = _expected_label(source, f"item {name}")
    given_name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"item {name}"
    _, error, seconds = run_limited(lambda: _extractor()(source, given_name), DECODE_LIMIT, name)
    assert error is not None, f"{name}: no error raised"
    assert type(error) is expected, f"{name}: {type(error).__name__}: {error}"
    assert isinstance(error, vbow.VbowError)
    assert error.source == label, (error.source, label)
    assert label in str(error)
    str(error).encode("utf-8")  # representable, also for non-UTF-8 file names
    if expected is ImageTooLargeError:
        assert seconds < 2.0, f"{name}: refused only after {seconds:.1f} s (decoded first?)"


def test_the_875_kb_png_is_what_the_issue_describes(corpus):
    data, _ = corpus["png-875kb-decodes-to-30000-squared"]
    assert 800_000 < len(data) < 950_000
    # the zlib stream really holds 30000 rows of 30001 bytes (checked on the first 64 MB only)
    idat_start = 8 + 25 + 8
    head = zlib.decompressobj().decompress(data[idat_start:idat_start + 70_000], 64 << 20)
    assert len(head) == 64 << 20 and not any(head[:1 << 20])


def test_read_image_on_a_fifo_returns_without_a_writer(tmp_path):
    path = tmp_path / "x.jpg"
    os.mkfifo(path)
    _, error, seconds = run_limited(lambda: vbow.read_image(path), 5.0, "reading a FIFO")
    assert isinstance(error, ImageError) and "pipe" in str(error)


# ----------------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def good_items(tmp_path_factory):
    """Good inputs of every accepted kind, with keys: (keys, sources). All must be indexed."""
    root = tmp_path_factory.mktemp("good-inputs")
    products = make_catalog(8, 0, seed=11, size=256).products
    keys, sources = [], []

    def add(key: str, source: Any) -> None:
        keys.append(key)
        sources.append(source)

    add("good-array-bgr", products[0])
    add("good-array-rgb", ImageArray(np.ascontiguousarray(products[1][:, :, ::-1]), channels="rgb"))
    add("good-float-0-255", products[2].astype(np.float32))
    add("good-float-0-1", products[3].astype(np.float64) / 255.0)
    add("good-png-file", _write(root, "p4.png", encode(".png", products[4])))
    add("good-jpeg-file", _write(root, "p5.jpg", encode(".jpg", products[5])))
    add("good-non-utf8-name", _write(root, b"caf\xe9-p6.png", encode(".png", products[6])))
    add("good-file-object", io.BytesIO(encode(".webp", products[7])))
    add("good-16-bit-png", _write(root, "p0-16.png", encode(".png", products[0].astype(np.uint16) * 257)))
    add("good-gif-file", _write(root, "p1.gif", encode(".gif", products[1])))
    add("good-pathlib", Path(_write(root, "p2.bmp", encode(".bmp", products[2]))))
    add("good-bytes", encode(".tiff", products[3]))
    # no keypoints: indexed (colour still describes them), flagged by has_features
    add("blank-black", np.zeros((200, 200, 3), np.uint8))
    add("blank-uniform-grey", np.full((300, 300), 128, np.uint8))
    add("blank-1x1", np.full((1, 1, 3), 90, np.uint8))
    add("blank-thin-strip", picture(3, 2, 600))
    if PILImage is not None:
        add("good-pil-rgb", PILImage.fromarray(np.ascontiguousarray(products[4][:, :, ::-1])))
        add("good-pil-file", PILImage.open(_write(root, "p5-pil.png", encode(".png", products[5]))))
    return keys, sources


def _mixed(good, corpus):
    """Good and bad items interleaved: (keys, sources, {bad key: (name, error class)})."""
    good_keys, good_sources = good
    keys, sources, bad = [], [], {}
    bad_items = list(corpus.items())
    for i in range(max(len(good_keys), len(bad_items))):
        if i < len(good_keys):
            keys.append(good_keys[i])
            sources.append(good_sources[i])
        for name, (source, error) in bad_items[i * len(bad_items) // len(good_keys):
                                              (i + 1) * len(bad_items) // len(good_keys)]:
            key = f"bad-{name}"
            keys.append(key)
            sources.append(source)
            bad[key] = (_expected_label(source, key), error)
    return keys, sources, bad


def _check_report(report, good_keys, bad) -> None:
    assert sorted(report.added) == sorted(good_keys), "good files lost"
    assert len(report.failed) == len(bad)
    by_source = {f.source: f for f in report.failed}
    assert len(by_source) == len(bad), "two failures share a name"
    wrong = [(label, f"{by_source[label].error_type} != {error.__name__}")
             for label, error in bad.values()
             if label not in by_source or by_source[label].error_type != error.__name__]
    assert not wrong, wrong
    for failure in report.failed:
        assert isinstance(failure, ImageFailure) and failure.source in failure.error


def _reopen_pil(sources):
    """PIL images opened from files are consumed by reading: open them again for a second batch."""
    out = []
    for s in sources:
        if PILImage is not None and isinstance(s, PILImage.Image) and getattr(s, "filename", ""):
            s = PILImage.open(s.filename)
        elif isinstance(s, io.BytesIO) and not s.closed:
            s.seek(0)
        out.append(s)
    return out


def test_build_indexes_every_good_image_beside_the_whole_corpus(good_items, fresh_corpus):
    keys, sources, bad = _mixed(good_items, fresh_corpus)
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=1, max_keypoints=300)
    report, error, seconds = run_limited(lambda: index.build(sources, keys=keys), BATCH_LIMIT,
                                         "build")
    assert error is None, repr(error)
    _check_report(report, good_items[0], bad)
    assert sorted(report.no_features) == sorted(k for k in good_items[0] if k.startswith("blank-"))
    assert len(index) == len(good_items[0])
    products = make_catalog(8, 0, seed=11, size=256).products
    assert index.search(products[6], top_k=3).best.key == "good-non-utf8-name"


def test_add_in_worker_processes_reports_every_bad_item(good_items, fresh_corpus):
    keys, sources, bad = _mixed(good_items, fresh_corpus)
    sources = _reopen_pil(sources)
    products = make_catalog(8, 0, seed=11, size=256).products
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=2, max_keypoints=300)
    index.fit(products)
    report, error, seconds = run_limited(lambda: index.add(sources, keys=keys), BATCH_LIMIT, "add")
    assert error is None, repr(error)
    _check_report(report, good_items[0], bad)
    assert sorted(report.no_features) == sorted(k for k in good_items[0] if k.startswith("blank-"))


def test_blank_images_have_no_features_and_good_ones_do(good_items):
    extractor = _extractor()
    for key, source in zip(*good_items):
        if isinstance(source, io.BytesIO):
            source.seek(0)
        if PILImage is not None and isinstance(source, PILImage.Image) and getattr(source, "filename", ""):
            source = PILImage.open(source.filename)
        described = extractor(source, key)
        assert isinstance(described, ImageDescription)
        assert described.has_features == (not key.startswith("blank-")), key


@pytest.fixture(scope="module")
def small_index():
    index = vbow.ImageIndex("sift", n_words=256, n_jobs=1, max_keypoints=300)
    index.build(make_catalog(4, 0, seed=11, size=256).products)
    return index


@pytest.mark.parametrize("name", ["png-69-bytes-claims-1e10-pixels", "file-fifo-named-jpg",
                                  "object-none", "array-nan", "file-dev-zero",
                                  "jpeg-frame-65535-squared"])
def test_search_with_a_bad_query_raises_its_typed_error(small_index, tmp_path, name):
    kind = next(k for k in KINDS if k.name == name)
    source = kind.make(tmp_path)
    _, error, _ = run_limited(lambda: small_index.search(source), DECODE_LIMIT, name)
    expected = kind.error
    assert type(error) is expected, repr(error)


def test_index_settings_set_the_limits(tmp_path):
    products = make_catalog(3, 0, seed=11, size=256).products
    paths = []
    for i, img in enumerate(products):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(encode(".png", img))
    small = vbow.ImageIndex("sift", n_words=128, n_jobs=1, max_keypoints=300,
                            max_pixels=256 * 256 - 1)
    with pytest.raises(vbow.InvalidInputError, match="65536 pixels, over the limit of 65535"):
        small.build(paths)  # every image refused: nothing to train on
    report = small.build(paths + [products[0]], keys=["a", "b", "c", "array"])
    assert report.added == ("array",) and {f.error_type for f in report.failed} == {"ImageTooLargeError"}
    capped = vbow.ImageIndex("sift", n_words=128, n_jobs=1, max_keypoints=300,
                             max_file_bytes=min(p.stat().st_size for p in paths) - 1)
    report = capped.build(paths + [products[0]], keys=["a", "b", "c", "array"])
    assert report.added == ("array",) and {f.error_type for f in report.failed} == {"ImageTooLargeError"}


# ----------------------------------------------------------------------------------- fuzzing

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ_FILES = {fmt: encode(ext, picture(1, 48, 64)) for fmt, ext in ENCODED.items()}


@settings(max_examples=150)
@given(fmt=st.sampled_from(sorted(ENCODED)), edits=st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "zero", "big"]), st.floats(0, 1),
              st.integers(1, 255)), min_size=1, max_size=4))
def test_mutated_files_give_an_image_or_a_typed_error(fmt, edits):
    """Byte flips, cuts, insertions, zeroed runs and large header values, mostly in the header:
    never an untyped error, never a hang."""
    data = bytearray(_FUZZ_FILES[fmt])
    for op, where, value in edits:
        at = int(where ** 3 * (len(data) - 1))  # cubed: most edits land in the first bytes
        if op == "flip":
            data[at] ^= value
        elif op == "cut":
            del data[at:]
        elif op == "big":  # a size field set to a large value
            at = int(where * min(40, len(data) - 1))
            data[at:at + 2] = b"\xff" + bytes([value])
        elif op == "insert":
            data[at:at] = bytes([value]) * (value % 7 + 1)
        else:
            data[at:at + value] = bytes(len(data[at:at + value]))
        if not data:
            break
    image, error, _ = run_limited(lambda: vbow.read_image(bytes(data), max_pixels=4_000_000),
                                  DECODE_LIMIT, f"{fmt} {edits}")
    if error is not None:
        assert isinstance(error, ImageError), f"{type(error).__name__}: {error}"
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
