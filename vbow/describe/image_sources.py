"""Where encoded images come from: files, binary file objects and ``PIL.Image`` objects.

Files are read only if they are regular files, no larger than a cap, without ever blocking: a
named pipe or a device called ``x.jpg`` is refused from ``os.stat`` before it is opened, and the
file is opened non-blocking and checked again with ``os.fstat`` (it may have been swapped in
between). Pillow is not a dependency: a ``PIL.Image.Image`` is recognised by its class's module and
converted with the methods it carries.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import numpy as np

from vbow.describe.image_array import ImageArray
from vbow.errors import ImageDecodeError, ImageError, ImageTooLargeError, ImageTypeError

__all__ = ["display_name", "read_file", "read_stream", "is_pil_image", "is_binary_stream",
           "pil_to_array", "pil_encoded_bytes", "pil_source", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_FILE_BYTES"]

#: Pillow's ``Image.MAX_IMAGE_PIXELS``: its decompression-bomb warning threshold.
DEFAULT_MAX_PIXELS = 89_478_485
#: 512 MiB: room for an uncompressed 16-bit image at the pixel limit.
DEFAULT_MAX_FILE_BYTES = 1 << 29

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
_KINDS = ((stat.S_ISDIR, "is a directory, not an image file"),
          (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
          (stat.S_ISCHR, "is a character device, not a regular file"),
          (stat.S_ISBLK, "is a block device, not a regular file"),
          (stat.S_ISSOCK, "is a socket, not a regular file"))
#: PIL modes converted before reading the pixels, to the mode given.
_PIL_CONVERT = {"1": "L", "LA": "RGBA", "PA": "RGBA", "La": "RGBA", "RGBa": "RGBA", "RGBX": "RGB",
                "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def display_name(name: str | os.PathLike | bytes) -> str:
    """A printable, UTF-8-encodable form of a file name, for messages, reports and bundles.

    File names that are not valid UTF-8 reach Python as strings with lone surrogates
    (``os.fsdecode``); they are shown with their raw bytes escaped (``caf\\xe9.jpg``).
    """
    raw = os.fspath(name)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    try:
        raw.encode("utf-8")
        return raw
    except UnicodeEncodeError:
        pass
    try:
        encoded = raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8", "surrogatepass")
    return encoded.decode("utf-8", "backslashreplace")


def _refuse_kind(mode: int, label: str) -> None:
    for test, message in _KINDS:
        if test(mode):
            raise ImageError(message, label)
    if not stat.S_ISREG(mode):
        raise ImageError("is not a regular file", label)


def _check_size(size: int, max_bytes: int, label: str) -> None:
    if size > max_bytes:
        raise ImageTooLargeError(f"file is {size} bytes, over the limit of {max_bytes} "
                                 f"(Config.max_file_bytes)", label)


def _os_error(exc: OSError, path: str, label: str) -> ImageError:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return ImageError("is a dangling symbolic link (its target does not exist)", label)
        return ImageError("no such file", label)
    if exc.errno == errno.EISDIR:
        return ImageError("is a directory, not an image file", label)
    return ImageError(f"cannot read file: {exc.strerror or exc}", label)


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_FILE_BYTES,
              label: str | None = None) -> bytes:
    """Read a regular file's bytes, refusing anything else and anything over ``max_bytes``.

    Parameters
    ----------
    path : str or os.PathLike
        The file (symbolic links are followed).
    max_bytes : int
        Largest file size accepted.
    label : str, optional
        Name used in error messages (default: :func:`display_name` of the path).

    Returns
    -------
    bytes
        The file contents.

    Raises
    ------
    ImageError
        Missing file, dangling link, directory, FIFO, device, socket, permission denied, or
        another OS error; the message names the file.
    ImageTooLargeError
        The file is larger than ``max_bytes``.
    """
    label = display_name(path) if label is None else label
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise ImageTypeError(f"not a file path: {type(path).__name__}", label) from None
    try:
        st = os.stat(fspath)
    except OSError as exc:
        raise _os_error(exc, fspath, label) from None
    except ValueError as exc:  # embedded NUL byte
        raise ImageError(f"invalid file name: {exc}", label) from None
    _refuse_kind(st.st_mode, label)
    _check_size(st.st_size, max_bytes, label)
    try:
        fd = os.open(fspath, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(exc, fspath, label) from None
    try:
        st = os.fstat(fd)
        _refuse_kind(st.st_mode, label)  # swapped for something else since the stat
        _check_size(st.st_size, max_bytes, label)
        parts: list[bytes] = []
        total = 0
        while True:
            part = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
            if total > max_bytes:  # grew while being read
                _check_size(total, max_bytes, label)
    except OSError as exc:
        raise _os_error(exc, fspath, label) from None
    finally:
        os.close(fd)
    return b"".join(parts)


def is_binary_stream(obj: Any) -> bool:
    """True for objects with a ``read`` method (file objects, ``io.BytesIO``, ...)."""
    return callable(getattr(obj, "read", None)) and not isinstance(obj, (str, bytes, os.PathLike))


def read_stream(stream: Any, max_bytes: int = DEFAULT_MAX_FILE_BYTES,
                label: str = "<file object>") -> bytes:
    """Read a binary file object from its current position to its end, at most ``max_bytes``.

    Raises
    ------
    ImageTypeError
        A text-mode stream (``read`` returns ``str``) or one returning something else.
    ImageError
        The stream raised while being read (closed file, I/O error) or would block.
    ImageTooLargeError
        More than ``max_bytes`` bytes.
    """
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            part = stream.read(min(_CHUNK, max_bytes + 1 - total))
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot read the file object: {exc}", label) from None
        if part is None:
            raise ImageError("the file object has no data ready (non-blocking stream)", label)
        if isinstance(part, str):
            raise ImageTypeError("the file object is in text mode; open the file with 'rb'", label)
        if not isinstance(part, (bytes, bytearray, memoryview)):
            raise ImageTypeError(f"the file object's read() returned {type(part).__name__}, "
                                 f"not bytes", label)
        if not part:
            break
        parts.append(bytes(part))
        total += len(part)
        if total > max_bytes:
            raise ImageTooLargeError(f"file object holds more than {max_bytes} bytes "
                                     f"(Config.max_file_bytes)", label)
    return b"".join(parts)


def is_pil_image(obj: Any) -> bool:
    """True for a ``PIL.Image.Image`` (recognised without importing Pillow)."""
    module = type(obj).__module__ or ""
    return (module == "PIL" or module.startswith("PIL.")) and hasattr(obj, "mode") and \
        hasattr(obj, "size") and callable(getattr(obj, "convert", None))


def pil_encoded_bytes(image: Any, max_bytes: int = DEFAULT_MAX_FILE_BYTES,
                      label: str = "<PIL image>") -> bytes | None:
    """The encoded file behind a ``PIL.Image`` that is still as opened, else ``None``.

    ``Image.open`` reads only the header and keeps the file open until the pixels are loaded;
    while it is, the image is exactly its file, so vbow decodes the file itself and the result
    equals reading the file's path (same JPEG DCT downscaling and EXIF handling). An image that
    was loaded, converted or moved to another frame has no such file and is read by its pixels.
    """
    fp = getattr(image, "fp", None)
    state = vars(image) if hasattr(image, "__dict__") else {}
    pixels = state.get("_im", state.get("im"))  # Pillow >= 10.4 names it _im
    if fp is None or not getattr(image, "format", None) or pixels is not None:
        return None
    try:
        if image.tell() != 0:
            return None
        position = fp.tell()
        fp.seek(0)
    except (AttributeError, OSError, ValueError):
        return None
    try:
        return read_stream(fp, max_bytes, label)
    finally:
        try:
            fp.seek(position)
        except (OSError, ValueError):
            pass


def pil_to_array(image: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                 label: str = "<PIL image>") -> ImageArray:
    """The pixels of a ``PIL.Image`` as an :class:`ImageArray`, checking its size first.

    The size check comes before the pixels are loaded (``Image.open`` reads only the header).
    JPEG images are turned upright by their EXIF orientation, as vbow does for JPEG files, so a
    ``PIL.Image`` opened from a file gives the same canonical image as the file's path.

    Raises
    ------
    ImageTooLargeError
        More than ``max_pixels`` pixels.
    ImageDecodeError
        Pillow cannot load the pixels (truncated or corrupt file).
    ImageError
        An empty image or an unsupported mode.
    """
    from vbow.describe.image_input import apply_orientation

    width, height = (int(v) for v in image.size)
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height} pixels, over the "
                                 f"limit of {max_pixels} (Config.max_pixels)", label)
    if width == 0 or height == 0:
        raise ImageError(f"image is empty ({width}x{height})", label)
    orientation = 1
    try:
        image.load()
        if getattr(image, "format", None) == "JPEG" and callable(getattr(image, "getexif", None)):
            orientation = int(image.getexif().get(0x0112, 1) or 1)
        mode = image.mode
        if mode == "P":
            mode = "RGBA" if "transparency" in image.info else "RGB"
            image = image.convert(mode)
        elif mode in _PIL_CONVERT:
            mode = _PIL_CONVERT[mode]
            image = image.convert(mode)
        array = np.asarray(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"Pillow could not load the pixels: {exc}", label) from None
    if mode == "I" or (mode.startswith("I;16") and array.dtype != np.uint16):
        if array.size and (int(array.min()) < 0 or int(array.max()) > 65535):
            raise ImageError(f"32-bit integer image values span [{int(array.min())}, "
                             f"{int(array.max())}], outside 0..65535", label)
        array = array.astype(np.uint16)
    elif mode not in ("L", "RGB", "RGBA", "F") and not mode.startswith("I;16"):
        raise ImageError(f"unsupported PIL image mode {image.mode!r}", label)
    if orientation != 1:
        array = apply_orientation(np.ascontiguousarray(array), orientation)
    channels = "rgb" if array.ndim == 3 else "bgr"
    return ImageArray(np.ascontiguousarray(array), channels=channels)


def pil_source(image: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_FILE_BYTES, label: str = "<PIL image>"
               ) -> bytes | ImageArray:
    """What vbow reads for a ``PIL.Image``: its file's bytes while it is as opened
    (:func:`pil_encoded_bytes`), else its pixels (:func:`pil_to_array`)."""
    encoded = pil_encoded_bytes(image, max_bytes, label)
    if encoded is not None:
        return encoded
    return pil_to_array(image, max_pixels if max_pixels is not None else 1 << 62, label)
