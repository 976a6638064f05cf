"""Turn a file path, encoded bytes or a numpy array into one canonical image.

The canonical image is ``(h, w, 3) uint8`` in OpenCV's BGR order, upright (EXIF orientation
applied for JPEG input), alpha composited over white, 16-bit and float data scaled to 8 bits, and
downscaled so that its longer side is at most ``max_side`` pixels (never upscaled).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from vbow.errors import ImageDecodeError, ImageError, InvalidInputError
from vbow.describe.jpeg_header import is_jpeg, jpeg_looks_truncated, read_jpeg_header

__all__ = ["ImageInput", "read_image", "load_image", "decode_image", "to_bgr8", "apply_orientation",
           "resize_max_side", "source_name"]

logger = logging.getLogger(__name__)

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

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
    """Describe an image input for error messages: the file path, or the kind of object."""
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


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


def to_bgr8(array: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert gray, BGRA, 16-bit or float images to ``(h, w, 3) uint8`` BGR.

    Parameters
    ----------
    array : np.ndarray
        ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` BGR or ``(h, w, 4)`` BGRA; dtype uint8, uint16
        (full 0..65535 range), or float32/float64 in 0..1. Alpha is composited over white.
    name : str
        Used in error messages.

    Returns
    -------
    np.ndarray
        ``(h, w, 3) uint8`` BGR image.

    Raises
    ------
    ImageError
        Wrong number of dimensions or channels, an unsupported dtype, or an empty image.
    """
    if not isinstance(array, np.ndarray):
        raise InvalidInputError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"image must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4); got shape "
                         f"{array.shape}", name)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image is empty (shape {array.shape})", name)
    if array.dtype == np.uint8:
        img8 = array
    elif array.dtype == np.uint16:
        img8 = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        if not np.all(np.isfinite(array)):
            raise ImageError("float image contains NaN or infinity", name)
        img8 = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    elif array.dtype == np.bool_:
        img8 = array.astype(np.uint8) * 255
    else:
        raise ImageError(f"unsupported image dtype {array.dtype}; expected uint8, uint16, float32 "
                         f"or float64", name)
    if img8.ndim == 2:
        return cv2.cvtColor(img8, cv2.COLOR_GRAY2BGR)
    if img8.shape[2] == 4:
        alpha = img8[:, :, 3:4].astype(np.float32) * (1.0 / 255.0)
        colour = img8[:, :, :3].astype(np.float32)
        return np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img8)


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
                 name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, TIFF, WebP, BMP, ...) to the canonical form.

    See :func:`_decode` for parameters; returns the ``(h, w, 3) uint8`` BGR image only.
    """
    return _decode(data, max_side, name)[0]


def _decode(data: bytes | bytearray | memoryview, max_side: int | None,
            name: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an encoded image (JPEG, PNG, TIFF, WebP, BMP, ...) to the canonical form.

    Parameters
    ----------
    data : bytes
        The encoded file contents.
    max_side : int or None
        Longest side of the result in pixels; ``None`` keeps the decoded size.
    name : str
        File name used in error messages.

    Returns
    -------
    image : np.ndarray
        ``(h, w, 3) uint8`` BGR, upright.
    original_size : tuple of int
        ``(width, height)`` of the upright image at full resolution.

    Raises
    ------
    ImageDecodeError
        Empty, truncated, corrupt, or not an image.
    """
    if len(data) == 0:
        raise ImageDecodeError("file is empty", name)
    buf = np.frombuffer(data, dtype=np.uint8)
    if is_jpeg(data):
        if jpeg_looks_truncated(data):
            raise ImageDecodeError("JPEG data is truncated (no end-of-image marker)", name)
        header = read_jpeg_header(data)
        flag, _ = _jpeg_reduce_flag(header.width, header.height, max_side)
        decoded = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
        if decoded is None:
            raise ImageDecodeError("OpenCV could not decode this JPEG (corrupt data)", name)
        full = (header.width or decoded.shape[1], header.height or decoded.shape[0])
        decoded = apply_orientation(decoded, header.orientation)
        original = (full[1], full[0]) if header.orientation >= 5 else full
    else:
        if bytes(data[:8]) == _PNG_SIGNATURE and _png_looks_truncated(data):
            raise ImageDecodeError("PNG data is truncated (no IEND chunk)", name)
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ImageDecodeError("not an image, or a corrupt one: OpenCV could not decode it",
                                   name)
        original = (int(decoded.shape[1]), int(decoded.shape[0]))
    return resize_max_side(to_bgr8(decoded, name), max_side), original


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


def read_image(source: ImageInput, *, max_side: int | None = 1024,
               name: str | None = None) -> np.ndarray:
    """Load any supported image input as an upright ``(h, w, 3) uint8`` BGR array.

    Parameters
    ----------
    source : str, os.PathLike, bytes or np.ndarray
        A file path, the encoded bytes of a file, or a decoded array (see :func:`to_bgr8` for
        the accepted array layouts; arrays are taken to be BGR(A) like OpenCV's).
    max_side : int or None
        Downscale so the longer side is at most this many pixels; ``None`` keeps the size.
    name : str or None
        How to name the input in error messages (defaults to the path).

    Returns
    -------
    np.ndarray
        ``(h, w, 3) uint8`` BGR image.

    Raises
    ------
    ImageError
        The file is missing or unreadable, or the data is empty, truncated, corrupt, or not an
        image. The message names the file.
    """
    return load_image(source, max_side=max_side, name=name)[0]


def load_image(source: ImageInput, *, max_side: int | None = 1024,
               name: str | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Like :func:`read_image`, also returning the ``(width, height)`` at full resolution."""
    label = source_name(source, name)
    if isinstance(source, np.ndarray):
        image = to_bgr8(source, label)
        return resize_max_side(image, max_side), (int(image.shape[1]), int(image.shape[0]))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ImageError("is a directory, not an image file", label) from None
        except FileNotFoundError:
            raise ImageError("no such file", label) from None
        except OSError as exc:
            raise ImageError(f"cannot read file: {exc.strerror or exc}", label) from exc
        return _decode(data, max_side, label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(source, max_side, label)
    raise InvalidInputError(f"image input must be a path, bytes or a numpy array; got "
                            f"{type(source).__name__}")
