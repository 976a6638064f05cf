"""Argument checks shared by the synthetic-data generators (typed errors naming the value)."""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from vbow.errors import InvalidInputError

_MIN_PRODUCT_SIZE: Final[int] = 64
_MAX_PRODUCT_SIZE: Final[int] = 4096
_MIN_PHOTO_SIDE: Final[int] = 64
_MAX_PHOTO_SIDE: Final[int] = 8192


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_int(value: object, what: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{what} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise InvalidInputError(f"{what} must be {bound}, got {v}")
    return v


def _check_difficulty(difficulty: object) -> float:
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, np.number)):
        raise InvalidInputError(
            f"difficulty must be a number in [0, 1], got {type(difficulty).__name__}"
        )
    d = float(difficulty)  # type: ignore[arg-type]
    if not math.isfinite(d) or not 0.0 <= d <= 1.0:
        raise InvalidInputError(f"difficulty must be in [0, 1], got {difficulty!r}")
    return d


def _check_product(product: object) -> np.ndarray:
    if not isinstance(product, np.ndarray):
        raise InvalidInputError(
            f"product must be a numpy array, got {type(product).__name__}"
        )
    if product.ndim != 3 or product.shape[2] != 3 or product.dtype != np.uint8:
        raise InvalidInputError(
            f"product must be an (h, w, 3) uint8 BGR image, got shape {product.shape} "
            f"and dtype {product.dtype}"
        )
    if min(product.shape[:2]) < 8:
        raise InvalidInputError(f"product image is too small: {product.shape[:2]}")
    return np.ascontiguousarray(product)


def _check_out_size(out_size: object) -> tuple[int, int]:
    if not isinstance(out_size, (tuple, list)) or len(out_size) != 2:
        raise InvalidInputError(f"out_size must be a (height, width) pair, got {out_size!r}")
    h = _check_int(out_size[0], "out_size height", _MIN_PHOTO_SIDE, _MAX_PHOTO_SIDE)
    w = _check_int(out_size[1], "out_size width", _MIN_PHOTO_SIDE, _MAX_PHOTO_SIDE)
    return h, w

