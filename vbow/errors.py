"""One exception hierarchy for vbow.

Every vbow error derives from :class:`VbowError` and also from the builtin exception a caller
would naturally catch (``ValueError``, ``OSError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os

__all__ = [
    "VbowError",
    "ImageError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "ImageTypeError",
    "InvalidInputError",
    "NotFittedError",
    "BundleError",
    "BundleFormatError",
    "BundleVersionError",
    "UnknownOptionError",
    "DatasetError",
]


class VbowError(Exception):
    """Base class of every error vbow raises on purpose."""


class InvalidInputError(VbowError, ValueError):
    """An argument has the wrong type, shape, dtype or value."""


class UnknownOptionError(InvalidInputError):
    """An option name or value is not one of the valid ones (the message lists them)."""

    def __init__(self, what: str, got: object, valid: "list[str] | tuple[str, ...]") -> None:
        self.what = what
        self.got = got
        self.valid = tuple(valid)
        super().__init__(f"unknown {what} {got!r}; valid: {', '.join(map(repr, self.valid))}")


class ImageError(VbowError, ValueError):
    """An image input cannot be used. ``source`` names the file (or describes the input)."""

    def __init__(self, message: str, source: "str | os.PathLike[str] | None" = None) -> None:
        self.source = None if source is None else os.fspath(source)
        super().__init__(f"{self.source}: {message}" if self.source else message)


class ImageDecodeError(ImageError):
    """The bytes are empty, truncated, corrupt, or not an image format OpenCV can decode."""


class ImageTooLargeError(ImageError):
    """The file or the image it declares exceeds ``Config.max_file_bytes`` / ``max_pixels``."""


class ImageTypeError(ImageError, InvalidInputError, TypeError):
    """An item given as an image is not a kind of image input vbow accepts (None, an int, ...)."""


class NotFittedError(VbowError, ValueError, AttributeError):
    """A model (vocabulary, index) is used before it was fitted."""


class BundleError(VbowError, OSError):
    """A saved vocabulary or index bundle cannot be read or written. ``path`` names the file."""

    def __init__(self, message: str, path: "str | os.PathLike[str] | None" = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class BundleFormatError(BundleError):
    """A bundle file is missing, truncated, corrupt or inconsistent with its manifest."""


class BundleVersionError(BundleError):
    """A bundle was written by a newer, unknown format version."""


class DatasetError(VbowError, ValueError):
    """A dataset folder or ``groundtruth.csv`` is malformed."""
