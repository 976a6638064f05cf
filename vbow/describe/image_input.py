"""Turn any image input into one canonical image.

Inputs: a file path, the encoded bytes of a file, a binary file object (``open(p, "rb")``,
``io.BytesIO``), a ``PIL.Image``, a numpy array (taken to be BGR(A), OpenCV's order) or a
:class:`~vbow.describe.image_array.ImageArray` (an array with its channel order stated, e.g.
``ImageArray(rgb, channels="rgb")``). Path strings are file names; ``bytes`` are file contents.

The canonical image is ``(h, w, 3) uint8`` in OpenCV's BGR order, upright (EXIF orientation
applied for JPEG input), alpha composited over white, 16-bit and float data scaled to 8 bits (see
:mod:`vbow.describe.image_array` for the float range rule), and downscaled so that its longer
side is at most ``max_side`` pixels (never upscaled).

Safety: files are read only if regular and at most ``max_file_bytes`` long
(:func:`vbow.describe.image_sources.read_file`); encoded data is decoded only if its format is
recognised and its header declares at most ``max_pixels`` pixels
(:mod:`vbow.describe.image_header`); OpenCV's errors become :class:`vbow.errors.ImageDecodeError`.
Every error names the input.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from vbow.describe.image_array import ImageArray, to_bgr8
from vbow.describe.image_header import FORMATS, sniff_image
from vbow.describe.image_sources import (DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, display_name,
                                         is_binary_stream, is_pil_image, pil_source, read_file,
                                         read_stream)
from vbow.errors import ImageDecodeError, ImageError, ImageTooLargeError, ImageTypeError
from vbow.describe.jpeg_header import is_jpeg, jpeg_looks_truncated, read_jpeg_header

__all__ = ["ImageInput", "ImageArray", "read_image", "load_image", "decode_image", "to_bgr8",
           "apply_orientation", "resize_max_side", "source_name", "is_image_input",
           "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_FILE_BYTES"]

logger = logging.getLogger(__name__)

#: What vbow accepts as one image (``Any`` stands for ``PIL.Image.Image`` and binary file
#: objects, which are recognised by duck typing).
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, ImageArray, Any]

# How OpenCV's cv2.rotate / cv2.flip realise each EXIF orientation (1 = as stored).
_ORIENTATION_OPS = {
    2: ("flip", 1),
    3: ("rotate", cv2.ROTATE_180),
    4: ("flip", 0),
    5: ("transpose", None),
    6: ("rotate", cv2.ROTATE_90_CLOCKWISE),
    7: ("transverse", None),
    8: ("rotate", cv2.ROTATE_90_COUNTERCLOCKWISE),
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def source_name(source: ImageInput, name: str | None = None) -> str:
    """Describe an image input for messages: its file path, or the kind of object.

    Always valid UTF-8: file names that are not are shown with their bytes escaped (see
    :func:`vbow.describe.image_sources.display_name`).
    """
    if name is not None:
        return display_name(name) if isinstance(name, (str, bytes, os.PathLike)) else \
            f"<{type(name).__name__}>"
    if isinstance(source, (str, os.PathLike)):
        try:
            return display_name(source)
        except TypeError:
            return f"<{type(source).__name__}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, ImageArray):
        return f"<{source.channels} array {source.array.shape} {source.array.dtype}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if is_pil_image(source):
        return f"<PIL image {getattr(source, 'mode', '?')} {getattr(source, 'size', '?')}>"
    file_name = getattr(source, "name", None)
    if is_binary_stream(source) and isinstance(file_name, (str, bytes)):
        return display_name(file_name)
    return f"<{type(source).__name__}>"


def is_image_input(obj: Any) -> bool:
    """True if ``obj`` is one image input rather than a sequence of them.

    Paths, bytes, arrays, :class:`ImageArray`, ``PIL.Image`` objects and binary file objects are
    single images (file objects are iterable by lines, so ``list(f)`` would split one).
    """
    return isinstance(obj, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray,
                            ImageArray)) or is_pil_image(obj) or is_binary_stream(obj)


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an image stored with EXIF ``orientation`` (1..8) so that it is upright.

    Parameters
    ----------
    image : np.ndarray
        ``(h, w)`` or ``(h, w, c)`` image as stored in the file.
    orientation : int
        EXIF orientation tag value; values outside 2..8 leave the image unchanged.

    Returns
    -------
    np.ndarray
        The upright image (``(w, h, ...)`` for orientations 5..8).
    """
    op = _ORIENTATION_OPS.get(int(orientation))
    if op is None:
        return image
    kind, code = op
    if kind == "flip":
        return cv2.flip(image, code)
    if kind == "rotate":
        return cv2.rotate(image, code)
    if kind == "transpose":
        return np.ascontiguousarray(np.swapaxes(image, 0, 1))
    # transverse: transpose then rotate 180
    return cv2.rotate(np.ascontiguousarray(np.swapaxes(image, 0, 1)), cv2.ROTATE_180)


def resize_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (area interpolation); never upscale."""
    if max_side is None:
        return image
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _jpeg_reduce_flag(width: int | None, height: int | None, max_side: int | None) -> tuple[int, int]:
    """Pick libjpeg's DCT downscaling (1, 2, 4 or 8) that still leaves >= max_side pixels."""
    if max_side is None or width is None or height is None:
        return cv2.IMREAD_COLOR, 1
    longest = max(width, height)
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest // factor >= max_side:
            return flag, factor
    return cv2.IMREAD_COLOR, 1


def decode_image(data: bytes | bytearray | memoryview, *, max_side: int | None = None,
                 name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, TIFF, WebP, BMP, ...) to the canonical form.

    See :func:`_decode` for parameters; returns the ``(h, w, 3) uint8`` BGR image only.
    """
    return _decode(data, max_side, name, max_pixels)[0]


def _check_header(data: bytes | bytearray | memoryview, max_pixels: int | None, name: str) -> str:
    """Refuse unknown formats, unreadable sizes and images over ``max_pixels``; return the format."""
    header = sniff_image(data)
    if header is None:
        start = bytes(data[:8])
        raise ImageDecodeError(f"not an image in a supported format (starts with {start!r}; "
                               f"supported: {', '.join(FORMATS)})", name)
    pixels = header.pixels
    if pixels is None:
        raise ImageDecodeError(f"{header.format.upper()} header is cut short or malformed: "
                               f"no image size in it", name)
    if pixels == 0:
        raise ImageDecodeError(f"{header.format.upper()} header declares an empty image "
                               f"({header.width}x{header.height})", name)
    if max_pixels is not None and pixels > max_pixels:
        raise ImageTooLargeError(f"{header.format.upper()} header declares {header.width}x"
                                 f"{header.height} = {pixels} pixels, over the limit of "
                                 f"{max_pixels} (Config.max_pixels)", name)
    return header.format


def _imdecode(buf: np.ndarray, flag: int, name: str) -> np.ndarray | None:
    try:
        return cv2.imdecode(buf, flag)
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        raise ImageDecodeError(f"OpenCV could not decode it: {detail}", name) from None
    except MemoryError:
        raise ImageTooLargeError("ran out of memory while decoding", name) from None


def _decode(data: bytes | bytearray | memoryview, max_side: int | None, name: str,
            max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an encoded image (JPEG, PNG, TIFF, WebP, BMP, ...) to the canonical form.

    Parameters
    ----------
    data : bytes
        The encoded file contents.
    max_side : int or None
        Longest side of the result in pixels; ``None`` keeps the decoded size.
    name : str
        File name used in error messages.
    max_pixels : int or None
        Largest ``width * height`` the header may declare (``None``: no limit but OpenCV's).

    Returns
    -------
    image : np.ndarray
        ``(h, w, 3) uint8`` BGR, upright.
    original_size : tuple of int
        ``(width, height)`` of the upright image at full resolution.

    Raises
    ------
    ImageDecodeError
        Empty, truncated, corrupt, not an image, or not a supported format.
    ImageTooLargeError
        The header declares more than ``max_pixels`` pixels.
    """
    if len(data) == 0:
        raise ImageDecodeError("file is empty", name)
    kind = _check_header(data, max_pixels, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    if kind == "jpeg":
        if jpeg_looks_truncated(data):
            raise ImageDecodeError("JPEG data is truncated (no end-of-image marker)", name)
        header = read_jpeg_header(data)
        flag, _ = _jpeg_reduce_flag(header.width, header.height, max_side)
        decoded = _imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION, name)
        if decoded is None:
            raise ImageDecodeError("OpenCV could not decode this JPEG (corrupt data)", name)
        full = (header.width or decoded.shape[1], header.height or decoded.shape[0])
        decoded = apply_orientation(decoded, header.orientation)
        original = (full[1], full[0]) if header.orientation >= 5 else full
    else:
        if kind == "png" and _png_looks_truncated(data):
            raise ImageDecodeError("PNG data is truncated (no IEND chunk)", name)
        decoded = _imdecode(buf, cv2.IMREAD_UNCHANGED, name)
        if decoded is None:
            raise ImageDecodeError(f"corrupt {kind.upper()} data: OpenCV could not decode it",
                                   name)
        original = (int(decoded.shape[1]), int(decoded.shape[0]))
        if decoded.dtype.kind == "f":  # HDR, PFM, float TIFF: linear 0..1, brighter clips
            decoded = np.clip(np.nan_to_num(decoded, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    try:
        return resize_max_side(to_bgr8(decoded, name), max_side), original
    except cv2.error as exc:
        raise ImageDecodeError(f"OpenCV could not convert the decoded image: {exc}", name) from None


def _png_looks_truncated(data: bytes | bytearray | memoryview) -> bool:
    """True unless walking the PNG chunks from the signature reaches a complete IEND chunk.

    libpng may return a partly grey image for a cut file; bytes after IEND (some tools append
    data) are allowed.
    """
    view = memoryview(data)
    pos, n = len(_PNG_SIGNATURE), len(view)
    while pos + 8 <= n:
        length = int.from_bytes(view[pos:pos + 4], "big")
        end = pos + 12 + length  # length, type, data, CRC
        if end > n:
            return True
        if bytes(view[pos + 4:pos + 8]) == b"IEND":
            return False
        pos = end
    return True


def read_image(source: ImageInput, *, max_side: int | None = 1024, name: str | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> np.ndarray:
    """Load any supported image input as an upright ``(h, w, 3) uint8`` BGR array.

    Parameters
    ----------
    source : image input
        A file path (``str`` or ``os.PathLike``), the encoded bytes of a file, a binary file
        object, a ``PIL.Image``, a numpy array (taken to be BGR or BGRA, OpenCV's order; see
        :mod:`vbow.describe.image_array` for layouts and value ranges) or an
        :class:`ImageArray` stating the channel order (``ImageArray(rgb, channels="rgb")``).
    max_side : int or None
        Downscale so the longer side is at most this many pixels; ``None`` keeps the size.
    name : str or None
        How to name the input in error messages (defaults to the path).
    max_pixels : int or None
        Refuse encoded images (and ``PIL.Image`` objects) whose header declares more pixels,
        before decoding; ``None``: no limit but OpenCV's own (2^30).
    max_file_bytes : int
        Refuse files and file objects longer than this.

    Returns
    -------
    np.ndarray
        ``(h, w, 3) uint8`` BGR image.

    Raises
    ------
    ImageError
        The file is missing, not a regular file or unreadable, or the data is empty, truncated,
        corrupt, or not an image. The message names the file.
    ImageTooLargeError
        Over ``max_file_bytes`` or ``max_pixels``.
    ImageTypeError
        ``source`` is not an image input (None, a number, a list, ...).
    """
    return load_image(source, max_side=max_side, name=name, max_pixels=max_pixels,
                      max_file_bytes=max_file_bytes)[0]


def load_image(source: ImageInput, *, max_side: int | None = 1024, name: str | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[np.ndarray, tuple[int, int]]:
    """Like :func:`read_image`, also returning the ``(width, height)`` at full resolution."""
    label = source_name(source, name)
    if is_pil_image(source):
        source = pil_source(source, max_pixels, max_file_bytes, label)
    if isinstance(source, (np.ndarray, ImageArray)):
        try:
            image = to_bgr8(source, label)
            return resize_max_side(image, max_side), (int(image.shape[1]), int(image.shape[0]))
        except cv2.error as exc:
            raise ImageError(f"OpenCV could not convert the array: {exc}", label) from None
    if isinstance(source, (str, os.PathLike)):
        return _decode(read_file(source, max_file_bytes, label), max_side, label, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if isinstance(source, memoryview) and (source.ndim != 1 or source.itemsize != 1):
            source = source.cast("B") if source.c_contiguous else source.tobytes()
        return _decode(source, max_side, label, max_pixels)
    if is_binary_stream(source):
        return _decode(read_stream(source, max_file_bytes, label), max_side, label, max_pixels)
    raise ImageTypeError(f"not an image input: got {type(source).__name__}; expected a file path, "
                         f"bytes, a binary file object, a numpy array, vbow.ImageArray or a "
                         f"PIL.Image", label)
