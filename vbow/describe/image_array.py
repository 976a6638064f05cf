"""Decoded pixel arrays: their channel order, their value range, and the canonical BGR form.

A bare ``np.ndarray`` given to vbow is taken to be in OpenCV's order: ``(h, w, 3)`` is **BGR** and
``(h, w, 4)`` is BGRA, as ``cv2.imread`` returns. Arrays from PIL, imageio, scikit-image or
matplotlib are RGB: wrap them, ``vbow.ImageArray(array, channels="rgb")``, or pass the
``PIL.Image`` itself. Gray arrays ``(h, w)`` need no wrapper.

Value ranges: uint8 is 0..255, uint16 is 0..65535, bool is False/True. Float arrays have no
standard range, so vbow applies one rule: values in [0, 1] are taken as 0..1 (scikit-image,
matplotlib); otherwise, values in [0, 255] are taken as 0..255 (``np.asarray(img, float)``); values
outside both are refused. An all-dark 0..255 float image (every value <= 1) would be read as 0..1:
say ``ImageArray(array, value_range=255)`` to remove the guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vbow.errors import ImageError, ImageTypeError, InvalidInputError, UnknownOptionError

__all__ = ["ImageArray", "CHANNEL_ORDERS", "to_bgr8", "float_range"]

CHANNEL_ORDERS: tuple[str, ...] = ("bgr", "rgb")

#: Half a grey level: values this far outside the range still round into it.
_HALF_LEVEL = 0.5 / 255.0


@dataclass(frozen=True)
class ImageArray:
    """A decoded image array with its channel order and (for floats) its value range stated.

    Parameters
    ----------
    array : np.ndarray
        ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)`` (alpha last); uint8, uint16,
        bool, float32 or float64.
    channels : {"bgr", "rgb"}
        Order of the colour channels (alpha, if any, is always last). ``"bgr"`` is what a bare
        array is assumed to be.
    value_range : float or None
        For float arrays, the value meaning full intensity (1.0 or 255.0, or any positive number);
        ``None`` applies the rule in the module docstring. Ignored for integer arrays.

    Examples
    --------
    >>> import numpy as np, vbow
    >>> rgb = np.zeros((64, 64, 3), np.uint8); rgb[..., 0] = 255      # pure red, RGB order
    >>> vbow.read_image(vbow.ImageArray(rgb, channels="rgb"))[0, 0].tolist()   # BGR out
    [0, 0, 255]
    """

    array: np.ndarray
    channels: Literal["bgr", "rgb"] = "bgr"
    value_range: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise ImageTypeError(f"ImageArray needs a numpy array; got {type(self.array).__name__}")
        if self.channels not in CHANNEL_ORDERS:
            raise UnknownOptionError("channel order", self.channels, CHANNEL_ORDERS)
        if self.value_range is not None:
            ok = isinstance(self.value_range, (int, float, np.number)) and \
                not isinstance(self.value_range, bool) and np.isfinite(self.value_range) and \
                self.value_range > 0
            if not ok:
                raise InvalidInputError(f"value_range must be a positive finite number or None; "
                                        f"got {self.value_range!r}")

    def __repr__(self) -> str:
        return (f"ImageArray(<{self.array.shape} {self.array.dtype}>, channels={self.channels!r}, "
                f"value_range={self.value_range!r})")


def float_range(array: np.ndarray, name: str = "<array>") -> float:
    """The full-intensity value of a float image by the module's rule: 1.0 or 255.0.

    Parameters
    ----------
    array : np.ndarray
        Float image of any shape (finite values).

    Returns
    -------
    float
        1.0 if every value is in [0, 1], else 255.0 if every value is in [0, 255].

    Raises
    ------
    ImageError
        Values below 0 or above 255.
    """
    lo, hi = float(array.min()), float(array.max())
    if lo < -_HALF_LEVEL:
        raise ImageError(f"float image has negative values (minimum {lo:g}); expected values "
                         f"in [0, 1] or [0, 255]", name)
    if hi <= 1.0 + _HALF_LEVEL:
        return 1.0
    if hi <= 255.5:
        return 255.0
    raise ImageError(f"float image values reach {hi:g}; expected [0, 1] or [0, 255] (state the "
                     f"range with vbow.ImageArray(array, value_range=...))", name)


def _float_to_8(array: np.ndarray, value_range: float | None, name: str) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise ImageError("float image contains NaN or infinity", name)
    top = float_range(array, name) if value_range is None else float(value_range)
    if value_range is not None:
        lo, hi = float(array.min()), float(array.max())
        slack = top * _HALF_LEVEL
        if lo < -slack or hi > top + slack:
            raise ImageError(f"float image values span [{lo:g}, {hi:g}], outside the stated "
                             f"value_range [0, {top:g}]", name)
    scaled = array.astype(np.float32) * np.float32(255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_bgr8(array: np.ndarray | ImageArray, name: str = "<array>") -> np.ndarray:
    """Convert gray, BGR(A)/RGB(A), 16-bit, bool or float images to ``(h, w, 3) uint8`` BGR.

    Parameters
    ----------
    array : np.ndarray or ImageArray
        ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``; a bare array is BGR(A). Alpha
        is composited over white. Value ranges as in the module docstring.
    name : str
        Used in error messages.

    Returns
    -------
    np.ndarray
        ``(h, w, 3) uint8`` BGR image, C-contiguous.

    Raises
    ------
    ImageTypeError
        Not an array.
    ImageError
        Wrong number of dimensions or channels, an unsupported dtype, an empty image, NaN or
        infinite values, or float values outside the accepted ranges.
    """
    channels, value_range = "bgr", None
    if isinstance(array, ImageArray):
        channels, value_range, array = array.channels, array.value_range, array.array
    if not isinstance(array, np.ndarray):
        raise ImageTypeError(f"expected a numpy array, got {type(array).__name__}", name)
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
    elif array.dtype in (np.float16, np.float32, np.float64):
        img8 = _float_to_8(array, value_range, name)
    elif array.dtype == np.bool_:
        img8 = array.astype(np.uint8) * 255
    else:
        raise ImageError(f"unsupported image dtype {array.dtype}; expected uint8, uint16, bool, "
                         f"float16, float32 or float64", name)
    if img8.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(img8), cv2.COLOR_GRAY2BGR)
    if channels == "rgb":
        img8 = img8[:, :, [2, 1, 0, 3][: img8.shape[2]]]
    if img8.shape[2] == 4:
        alpha = img8[:, :, 3:4].astype(np.float32) * (1.0 / 255.0)
        colour = img8[:, :, :3].astype(np.float32)
        return np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img8)
