"""Deterministic synthetic product-search data with exact ground truth.

The generator draws "listing" images of made-up packaged products (cereal boxes, tea tins,
book covers, ...) and "shopper photos" of them: the product seen under a random perspective,
on a cluttered background, partly cropped, blurred, badly lit, noisy and JPEG compressed.
Nothing is downloaded: everything is drawn with OpenCV primitives from a seeded
:class:`numpy.random.Generator`, so the same seed always gives the same pixels.

Each photo carries the exact 3x3 homography of its geometric warp (catalog pixel
coordinates to photo pixel coordinates), so a recovered homography can be checked by
reprojecting the catalog corners.

Products are made to be *hard enough*: they are rich in local texture (text, shapes, noise
patches, logos) so SIFT and ORB find hundreds of keypoints, but many of them also share
elements (a few brand bars, barcodes, badges and shared label texts) and dominant colours
come from a small palette, so neither a few common features nor a colour histogram alone
identifies a product.

Examples
--------
>>> cat = make_catalog(n_products=5, photos_per_product=1, seed=3)
>>> len(cat.products), len(cat.photos)
(5, 5)
>>> cat.products[0].shape, cat.photos[0].image.shape
((320, 320, 3), (480, 360, 3))
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import pathlib
import re
import statistics
import time
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from vbow.errors import InvalidInputError, UnknownOptionError

__all__ = [
    "CATEGORIES",
    "SyntheticPhoto",
    "SyntheticCatalog",
    "make_product_image",
    "make_shopper_photo",
    "make_catalog",
    "write_catalog",
]

logger = logging.getLogger(__name__)

#: The product categories :func:`make_catalog` assigns (balanced, in shuffled blocks).
CATEGORIES: Final[tuple[str, ...]] = ("cereal", "tea", "books", "coffee", "snacks")

#: Smallest visible fraction of the product's area in a shopper photo.
MIN_VISIBLE_FRACTION: Final[float] = 0.6

_MIN_PRODUCT_SIZE: Final[int] = 64
_MAX_PRODUCT_SIZE: Final[int] = 4096
_MIN_PHOTO_SIDE: Final[int] = 64
_MAX_PHOTO_SIDE: Final[int] = 8192

# Seed of the elements shared by many products (brand bars, barcodes, badges). It does not
# depend on the catalog seed: every catalog has the same few confusers.
_SHARED_SEED: Final[int] = 0x5EED_B4A4D
_N_BRANDS: Final[int] = 6
_N_BARCODES: Final[int] = 3
_BADGE_WORDS: Final[tuple[str, ...]] = ("NEW", "BIO", "XL", "-20%", "TOP")
_SHARED_LINES: Final[tuple[str, ...]] = (
    "NET WT 500 g",
    "BEST BEFORE: SEE SIDE",
    "KEEP DRY",
    "100% NATURAL",
    "FAMILY SIZE",
)

# Tags for the SeedSequence spawn keys of make_catalog.
_TAG_PRODUCT: Final[int] = 1
_TAG_PHOTO: Final[int] = 2
_TAG_CATEGORY: Final[int] = 3

_FONTS: Final[tuple[int, ...]] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
_BOLD_FONTS: Final[tuple[int, ...]] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
)
# Dominant hues (OpenCV hue units, 0..180): few on purpose, so colour is only a weak cue.
_HUES: Final[tuple[int, ...]] = (0, 12, 24, 60, 88, 105, 125, 150)
_CATEGORY_HUES: Final[dict[str, tuple[int, ...]]] = {
    "cereal": (0, 12, 24, 105),
    "tea": (60, 88, 150, 0),
    "books": _HUES,
    "coffee": (12, 24, 0, 125),
    "snacks": (0, 24, 105, 125, 150),
}
_COLORMAPS: Final[tuple[int, ...]] = (
    cv2.COLORMAP_JET,
    cv2.COLORMAP_HSV,
    cv2.COLORMAP_OCEAN,
    cv2.COLORMAP_SPRING,
    cv2.COLORMAP_SUMMER,
    cv2.COLORMAP_AUTUMN,
    cv2.COLORMAP_PINK,
    cv2.COLORMAP_RAINBOW,
    cv2.COLORMAP_PARULA,
    cv2.COLORMAP_TWILIGHT_SHIFTED,
)
_NAME_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Color = tuple[int, int, int]


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True, eq=False)
class SyntheticPhoto:
    """A shopper-style photo of one catalog product, with its exact geometry.

    Attributes
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` ``uint8`` BGR photo.
    product : int
        Index of the catalog product the photo shows.
    homography : numpy.ndarray
        ``(3, 3)`` ``float64``; maps catalog-image pixel coordinates ``(x, y, 1)`` to photo
        pixel coordinates (up to scale; normalised so ``homography[2, 2] == 1``).

    Notes
    -----
    Equality is identity (``eq=False``): comparing arrays field by field is ambiguous.
    """

    image: np.ndarray
    product: int
    homography: np.ndarray


@dataclass(frozen=True, eq=False)
class SyntheticCatalog:
    """A synthetic product catalog with shopper photos and exact ground truth.

    Attributes
    ----------
    products : list of numpy.ndarray
        Catalog ("listing") images, each ``(h, w, 3)`` ``uint8`` BGR.
    names : list of str
        Product keys, ``"SKU-0000"``, ``"SKU-0001"``, ...; one per product.
    categories : list of str
        A category per product, one of :data:`CATEGORIES`.
    photos : list of SyntheticPhoto
        Shopper photos; ``photo.product`` indexes ``products``.
    """

    products: list[np.ndarray]
    names: list[str]
    categories: list[str]
    photos: list[SyntheticPhoto]

    def __post_init__(self) -> None:
        n = len(self.products)
        if len(self.names) != n or len(self.categories) != n:
            raise InvalidInputError(
                f"products, names and categories must have the same length, got "
                f"{n}, {len(self.names)} and {len(self.categories)}"
            )
        for photo in self.photos:
            if not 0 <= photo.product < n:
                raise InvalidInputError(
                    f"photo.product {photo.product} is out of range for {n} products"
                )


# --------------------------------------------------------------------------- validation


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


# --------------------------------------------------------------------------- small helpers


def _bgr(hue: float, sat: float, val: float) -> Color:
    """BGR colour of an OpenCV HSV triple (hue 0..180, sat and val 0..255)."""
    hsv = np.array([[[int(hue) % 180, int(np.clip(sat, 0, 255)), int(np.clip(val, 0, 255))]]],
                   dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _random_color(rng: np.random.Generator) -> Color:
    c = rng.integers(0, 256, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _luma(color: Color) -> float:
    b, g, r = color
    return 0.114 * b + 0.587 * g + 0.299 * r


def _contrasting(color: Color, rng: np.random.Generator) -> Color:
    """A dark or light colour that reads well on ``color``."""
    if _luma(color) > 128:
        v = int(rng.integers(0, 60))
        return _bgr(rng.integers(0, 180), rng.integers(0, 200), v)
    v = int(rng.integers(215, 256))
    return _bgr(rng.integers(0, 180), rng.integers(0, 60), v)


def _word(rng: np.random.Generator, lo: int, hi: int, *, upper: bool | None = None) -> str:
    n = int(rng.integers(lo, hi + 1))
    letters = rng.integers(0, 26, size=n)
    word = "".join(chr(ord("a") + int(i)) for i in letters)
    if upper is None:
        upper = bool(rng.random() < 0.5)
    return word.upper() if upper else word.capitalize()


def _fit_text(text: str, font: int, thickness: int, max_w: float, max_h: float) -> float:
    """Largest font scale (<= 8) at which ``text`` fits in ``max_w`` x ``max_h`` pixels."""
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min(max_w / max(tw, 1), max_h / max(th + base, 1))
    return float(max(0.2, min(scale, 8.0)))


def _put_text(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    font: int,
    scale: float,
    color: Color,
    thickness: int,
    outline: Color | None = None,
) -> None:
    if outline is not None:
        cv2.putText(img, text, org, font, scale, outline, thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, color, thickness, cv2.LINE_AA)


def _gradient(
    h: int, w: int, c0: Color, c1: Color, angle: float, extra: np.ndarray | None = None
) -> np.ndarray:
    """``(h, w, 3)`` uint8 linear gradient from ``c0`` to ``c1`` along ``angle`` (radians).

    ``extra`` is an optional ``(h, w)`` float32 field in [-1, 1] that bends the gradient
    parameter (blotches); the colour always stays on the segment from ``c0`` to ``c1``.
    """
    ca, sa = math.cos(angle), math.sin(angle)
    xs = np.arange(w, dtype=np.float32) * np.float32(ca)
    ys = np.arange(h, dtype=np.float32) * np.float32(sa)
    lo = min(0.0, float(xs[-1])) + min(0.0, float(ys[-1]))
    hi = max(0.0, float(xs[-1])) + max(0.0, float(ys[-1]))
    k = np.float32(255.0 / max(hi - lo, 1e-6))
    t = (ys[:, None] - np.float32(lo)) * k + xs[None, :] * k
    if extra is not None:
        t += extra * np.float32(128.0)
    t8 = np.clip(t, 0, 255, out=t).astype(np.uint8)
    ramp = np.linspace(0.0, 1.0, 256)[:, None]
    lut = np.asarray(c0, np.float64) + ramp * (np.asarray(c1, np.float64) - c0)
    lut8 = np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(cv2.merge([t8, t8, t8]), lut8)


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ``(h, w, 3)`` uint8 texture: colour-mapped smooth noise, camouflage or mosaic."""
    kind = int(rng.integers(3))
    if kind == 2:  # mosaic of random tiles (pixel art / packaging pattern)
        cell = int(rng.integers(4, 10))
        gh, gw = max(1, -(-h // cell)), max(1, -(-w // cell))
        tiles = rng.integers(0, 256, size=(gh, gw, 3), dtype=np.uint8)
        big = cv2.resize(tiles, (gw * cell, gh * cell), interpolation=cv2.INTER_NEAREST)
        return np.ascontiguousarray(big[:h, :w])
    # two octaves of smooth noise
    coarse = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7))), dtype=np.float32)
    fine = rng.random((max(2, h // 6), max(2, w // 6)), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field += 0.5 * cv2.resize(fine, (w, h), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    field /= max(float(field.max()), 1e-6)
    if kind == 1:  # two-level camouflage, sharp edges
        levels = int(rng.integers(2, 5))
        q = np.floor(field * levels * 0.999).astype(np.int64)
        palette = rng.integers(0, 256, size=(levels, 3)).astype(np.uint8)
        return np.ascontiguousarray(palette[q])
    u8 = (field * 255).astype(np.uint8)
    cmap = _COLORMAPS[int(rng.integers(len(_COLORMAPS)))]
    return cv2.applyColorMap(u8, cmap)


def _draw_shape(
    img: np.ndarray,
    rng: np.random.Generator,
    region: tuple[int, int, int, int],
    color: Color,
    unit: float,
) -> None:
    """Draw one random rectangle, circle, ellipse, polygon, line or stripe group."""
    x0, y0, x1, y1 = region
    kind = int(rng.integers(6))
    cx = int(rng.integers(x0, max(x0 + 1, x1)))
    cy = int(rng.integers(y0, max(y0 + 1, y1)))
    span = max(4, min(x1 - x0, y1 - y0))
    r = int(rng.integers(max(2, span // 20), max(3, span // 4)))
    filled = rng.random() < 0.6
    thick = -1 if filled else int(rng.integers(1, max(2, round(4 * unit)) + 1))
    if kind == 0:
        w2 = int(rng.integers(2, max(3, span // 3)))
        h2 = int(rng.integers(2, max(3, span // 3)))
        cv2.rectangle(img, (cx - w2, cy - h2), (cx + w2, cy + h2), color, thick, cv2.LINE_AA)
    elif kind == 1:
        cv2.circle(img, (cx, cy), r, color, thick, cv2.LINE_AA)
    elif kind == 2:
        axes = (r, max(1, int(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, color, thick,
                    cv2.LINE_AA)
    elif kind == 3:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, size=k))
        rad = r * rng.uniform(0.4, 1.0, size=k)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
        pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        if filled:
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
        else:
            cv2.polylines(img, [pts], True, color, thick, cv2.LINE_AA)
    elif kind == 4:
        ex = int(rng.integers(x0, max(x0 + 1, x1)))
        ey = int(rng.integers(y0, max(y0 + 1, y1)))
        cv2.line(img, (cx, cy), (ex, ey), color, max(1, abs(thick)), cv2.LINE_AA)
    else:
        n = int(rng.integers(3, 7))
        gap = max(2, int(r * rng.uniform(0.2, 0.5)))
        ang = rng.uniform(0, np.pi)
        dx, dy = math.cos(ang), math.sin(ang)
        for i in range(n):
            ox, oy = -dy * gap * i, dx * gap * i
            p0 = (int(cx + ox - dx * r), int(cy + oy - dy * r))
            p1 = (int(cx + ox + dx * r), int(cy + oy + dy * r))
            cv2.line(img, p0, p1, color, max(1, gap // 2), cv2.LINE_AA)


def _paste(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Paste ``src`` into ``dst`` with its top-left corner at ``(x, y)``, clipped."""
    h, w = src.shape[:2]
    H, W = dst.shape[:2]
    xa, ya = max(x, 0), max(y, 0)
    xb, yb = min(x + w, W), min(y + h, H)
    if xa < xb and ya < yb:
        dst[ya:yb, xa:xb] = src[ya - y:yb - y, xa - x:xb - x]


# --------------------------------------------------------------------------- shared elements


@functools.lru_cache(maxsize=8)
def _shared_elements(size: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The brand bars and barcodes shared by many products, for a product of ``size`` px.

    Returns read-only ``(bars, barcodes)``: bars are ``(round(0.12 * size), size, 3)`` uint8,
    barcodes ``(round(0.16 * size), round(0.32 * size), 3)`` uint8.
    """
    rng = np.random.default_rng(_SHARED_SEED)
    bh = max(8, round(0.12 * size))
    unit = size / 320.0
    bars = []
    for _ in range(_N_BRANDS):
        color = _bgr(rng.integers(0, 180), rng.integers(150, 256), rng.integers(60, 200))
        bar = np.empty((bh, size, 3), np.uint8)
        bar[:] = color
        ink = _contrasting(color, rng)
        # emblem: a ring with a polygon inside, at the left
        cx, cy, r = bh // 2 + 2, bh // 2, max(3, int(bh * 0.38))
        cv2.circle(bar, (cx, cy), r, ink, max(1, round(2 * unit)), cv2.LINE_AA)
        k = int(rng.integers(3, 7))
        ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, np.pi)
        pts = np.stack([cx + 0.6 * r * np.cos(ang), cy + 0.6 * r * np.sin(ang)], 1)
        cv2.fillPoly(bar, [np.round(pts).astype(np.int32)], ink, cv2.LINE_AA)
        name = _word(rng, 4, 7, upper=True)
        font = _BOLD_FONTS[int(rng.integers(len(_BOLD_FONTS)))]
        th = max(1, round(2 * unit))
        scale = _fit_text(name, font, th, 0.45 * size, 0.7 * bh)
        (tw, tht), _ = cv2.getTextSize(name, font, scale, th)
        _put_text(bar, name, (cx + r + 6, (bh + tht) // 2), font, scale, ink, th)
        slogan = _word(rng, 3, 6) + " " + _word(rng, 3, 7)
        s2 = _fit_text(slogan, cv2.FONT_HERSHEY_PLAIN, 1, 0.3 * size, 0.35 * bh)
        cv2.putText(bar, slogan, (int(0.66 * size), (bh + int(12 * s2)) // 2),
                    cv2.FONT_HERSHEY_PLAIN, s2, ink, 1, cv2.LINE_AA)
        bar.setflags(write=False)
        bars.append(bar)
    codes = []
    ch, cw = max(8, round(0.16 * size)), max(16, round(0.32 * size))
    for _ in range(_N_BARCODES):
        code = np.full((ch, cw, 3), 255, np.uint8)
        modules = rng.integers(1, 4, size=60)
        x = max(2, cw // 16)
        stripe_h = int(ch * 0.72)
        bar_on = True
        for m in modules:
            wpx = max(1, int(m * unit))
            if x + wpx >= cw - max(2, cw // 16):
                break
            if bar_on:
                code[2:stripe_h, x:x + wpx] = 0
            x += wpx
            bar_on = not bar_on
        digits = "".join(str(int(v)) for v in rng.integers(0, 10, size=12))
        s = _fit_text(digits, cv2.FONT_HERSHEY_PLAIN, 1, 0.9 * cw, ch - stripe_h - 2)
        cv2.putText(code, digits, (max(2, cw // 20), ch - 3), cv2.FONT_HERSHEY_PLAIN, s,
                    (0, 0, 0), 1, cv2.LINE_AA)
        code.setflags(write=False)
        codes.append(code)
    return tuple(bars), tuple(codes)


def _draw_badge(img: np.ndarray, rng: np.random.Generator, center: tuple[int, int],
                radius: int, word: str) -> None:
    """A shared-looking sticker: starburst in red/yellow with a shared word."""
    cx, cy = center
    spikes = 12
    ang = np.linspace(0, 2 * np.pi, 2 * spikes, endpoint=False)
    rad = np.where(np.arange(2 * spikes) % 2 == 0, radius, radius * 0.78)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
    color = (0, 215, 255) if rng.random() < 0.5 else (40, 40, 220)
    cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color, cv2.LINE_AA)
    ink = (255, 255, 255) if color[2] == 220 and color[0] == 40 else (20, 20, 20)
    th = max(1, radius // 14)
    scale = _fit_text(word, cv2.FONT_HERSHEY_DUPLEX, th, 1.2 * radius, 0.7 * radius)
    (tw, tht), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, th)
    cv2.putText(img, word, (cx - tw // 2, cy + tht // 2), cv2.FONT_HERSHEY_DUPLEX, scale, ink,
                th, cv2.LINE_AA)


# --------------------------------------------------------------------------- products


def make_product_image(
    rng: np.random.Generator, size: int = 320, *, category: str | None = None
) -> np.ndarray:
    """Draw one synthetic catalog ("listing") image of a packaged product or book cover.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the image is a pure function of the generator's state.
    size : int, default 320
        Side of the square image in pixels, in ``[64, 4096]``.
    category : str, optional
        One of :data:`CATEGORIES`; picks the palette and a motif. Drawn from ``rng``
        when omitted.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` ``uint8`` BGR image.

    Raises
    ------
    vbow.errors.InvalidInputError
        If ``rng`` is not a Generator, ``size`` is out of range or ``category`` unknown.
    """
    _check_rng(rng)
    S = _check_int(size, "size", _MIN_PRODUCT_SIZE, _MAX_PRODUCT_SIZE)
    if category is None:
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    elif category not in CATEGORIES:
        raise UnknownOptionError("category", category, CATEGORIES)
    u = S / 320.0
    bars, codes = _shared_elements(S)

    # ---- background: gradient of the dominant colour
    hues = _CATEGORY_HUES[category]
    hue = int(hues[int(rng.integers(len(hues)))]) + int(rng.integers(-6, 7))
    val_lo, val_hi = (40, 120) if category == "coffee" else (120, 245)
    sat = int(rng.integers(110, 256))
    val = int(rng.integers(val_lo, val_hi))
    dominant = _bgr(hue, sat, val)
    second = _bgr(hue + int(rng.integers(-10, 11)), sat - int(rng.integers(0, 80)),
                  val + int(rng.integers(-60, 61)))
    img = _gradient(S, S, dominant, second, float(rng.uniform(0, 2 * np.pi)))
    accent = _bgr(hue + int(rng.integers(50, 130)), int(rng.integers(120, 256)),
                  int(rng.integers(120, 256)))
    ink = _contrasting(dominant, rng)

    # ---- faint background pattern (diagonal stripes or dots) in a shade of the dominant
    pattern = int(rng.integers(3))
    shade = _bgr(hue, sat, val + (30 if val < 180 else -30))
    if pattern == 0:
        step = int(rng.integers(max(6, S // 30), max(8, S // 10)))
        for k in range(-S, 2 * S, step):
            cv2.line(img, (k, 0), (k + S, S), shade, max(1, step // 4), cv2.LINE_AA)
    elif pattern == 1:
        step = int(rng.integers(max(8, S // 24), max(10, S // 10)))
        for yy in range(step // 2, S, step):
            for xx in range((yy // step % 2) * step // 2, S, step):
                cv2.circle(img, (xx, yy), max(1, step // 5), shade, -1, cv2.LINE_AA)

    # ---- illustration: random shapes over the whole cover
    palette = [accent, ink, _random_color(rng), _random_color(rng), second]
    for _ in range(int(rng.integers(14, 26))):
        color = palette[int(rng.integers(len(palette)))] if rng.random() < 0.7 else \
            _random_color(rng)
        _draw_shape(img, rng, (0, 0, S, S), color, u)

    # ---- category motif
    if category == "cereal":  # a bowl
        cx, cy, r = int(S * rng.uniform(0.3, 0.7)), int(S * rng.uniform(0.55, 0.7)), int(S * 0.2)
        cv2.ellipse(img, (cx, cy), (r, r), 0, 0, 180, _random_color(rng), -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, cy), (r, r // 4), 0, 0, 360, (230, 240, 250), -1, cv2.LINE_AA)
        for _ in range(int(rng.integers(8, 16))):
            px = cx + int(rng.integers(-r + 6, r - 5))
            py = cy + int(rng.integers(-r // 5, r // 6))
            cv2.circle(img, (px, py), max(2, int(rng.integers(3, 7) * u)),
                       _bgr(20, 200, int(rng.integers(120, 230))), -1, cv2.LINE_AA)
    elif category == "tea":  # ornamental double frame
        m = int(S * 0.04)
        cv2.rectangle(img, (m, m), (S - m, S - m), accent, max(1, round(3 * u)), cv2.LINE_AA)
        cv2.rectangle(img, (2 * m, 2 * m), (S - 2 * m, S - 2 * m), accent, 1, cv2.LINE_AA)
    elif category == "coffee":  # beans
        for _ in range(int(rng.integers(5, 10))):
            bx, by = int(rng.integers(0, S)), int(rng.integers(S // 3, S))
            a = float(rng.uniform(0, 180))
            r1 = max(4, int(rng.integers(8, 16) * u))
            cv2.ellipse(img, (bx, by), (r1, int(r1 * 0.7)), a, 0, 360, (30, 60, 100), -1,
                        cv2.LINE_AA)
            cv2.ellipse(img, (bx, by), (r1, 1), a, 0, 360, (10, 25, 45), max(1, round(u)),
                        cv2.LINE_AA)
    elif category == "snacks":  # starburst
        cx, cy = int(rng.integers(S // 4, 3 * S // 4)), int(rng.integers(S // 3, 3 * S // 4))
        for k in range(16):
            a = k * np.pi / 8 + rng.uniform(-0.1, 0.1)
            p1 = (int(cx + S * math.cos(a)), int(cy + S * math.sin(a)))
            cv2.line(img, (cx, cy), p1, accent, max(1, round(3 * u)), cv2.LINE_AA)

    # ---- noise texture patch ("photo" / pattern window)
    pw = int(S * rng.uniform(0.22, 0.42))
    ph = int(S * rng.uniform(0.18, 0.36))
    px, py = int(rng.integers(0, S - pw)), int(rng.integers(int(S * 0.15), S - ph))
    patch = _noise_texture(rng, ph, pw)
    if rng.random() < 0.5:  # round window
        mask = np.zeros((ph, pw), np.uint8)
        cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2 - 1, ph // 2 - 1), 0, 0, 360, 255, -1)
        roi = img[py:py + ph, px:px + pw]
        roi[mask > 0] = patch[mask > 0]
    else:
        img[py:py + ph, px:px + pw] = patch
        cv2.rectangle(img, (px, py), (px + pw - 1, py + ph - 1), ink, max(1, round(2 * u)))

    # ---- logo made of random shapes
    lr = int(S * rng.uniform(0.07, 0.11))
    lx, ly = int(rng.integers(lr + 2, S - lr - 2)), int(rng.integers(lr + 2, S // 2))
    cv2.circle(img, (lx, ly), lr, accent, -1, cv2.LINE_AA)
    cv2.circle(img, (lx, ly), lr, ink, max(1, round(2 * u)), cv2.LINE_AA)
    logo_region = (lx - lr, ly - lr, lx + lr, ly + lr)
    for _ in range(int(rng.integers(2, 5))):
        _draw_shape(img, rng, logo_region, _random_color(rng), u * 0.5)
    letter = chr(ord("A") + int(rng.integers(26)))
    lfont = _BOLD_FONTS[int(rng.integers(len(_BOLD_FONTS)))]
    ls = _fit_text(letter, lfont, max(1, round(2 * u)), lr, lr)
    (tw, tht), _ = cv2.getTextSize(letter, lfont, ls, max(1, round(2 * u)))
    cv2.putText(img, letter, (lx - tw // 2, ly + tht // 2), lfont, ls, ink,
                max(1, round(2 * u)), cv2.LINE_AA)

    # ---- shared brand bar (top or bottom), a confuser common to many products
    top = bottom = 0
    if rng.random() < 0.8:
        bar = bars[int(rng.integers(len(bars)))]
        if rng.random() < 0.5:
            img[: bar.shape[0]] = bar
            top = bar.shape[0]
        else:
            img[S - bar.shape[0]:] = bar
            bottom = bar.shape[0]

    # ---- title and subtitle, product specific
    n_words = int(rng.integers(1, 3))
    title = " ".join(_word(rng, 3, 8) for _ in range(n_words))
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    if rng.random() < 0.25:
        font |= cv2.FONT_ITALIC
    th = int(rng.integers(max(1, round(u)), max(2, round(4 * u)) + 1))
    scale = _fit_text(title, font, th, 0.88 * S, float(rng.uniform(0.09, 0.16)) * S)
    (tw, tht), base = cv2.getTextSize(title, font, scale, th)
    margin = max(1, int(0.03 * S))
    tx = int(rng.integers(margin, max(margin + 1, S - tw - margin)))
    ty = top + tht + int(rng.integers(int(0.02 * S), int(0.08 * S)))
    title_color = ink if rng.random() < 0.6 else accent
    outline = _contrasting(title_color, rng) if rng.random() < 0.4 else None
    _put_text(img, title, (tx, ty), font, scale, title_color, th, outline)
    sub = " ".join(_word(rng, 2, 7, upper=False) for _ in range(int(rng.integers(1, 4))))
    if category == "books":
        sub = "by " + _word(rng, 3, 7, upper=False) + " " + _word(rng, 4, 9, upper=False)
    sfont = _FONTS[int(rng.integers(6))]
    sscale = _fit_text(sub, sfont, 1, 0.6 * S, 0.06 * S)
    cv2.putText(img, sub, (tx, ty + base + int(0.07 * S)), sfont, sscale, ink, 1, cv2.LINE_AA)

    # ---- small print: a panel of tiny random text lines (plus one shared line)
    if category != "books" or rng.random() < 0.5:
        n_lines = int(rng.integers(3, 7))
        lh = max(7, round(9 * u))
        pw2 = int(S * rng.uniform(0.35, 0.55))
        ph2 = n_lines * lh + 5
        px2 = int(rng.integers(2, S - pw2 - 2))
        py2 = int(rng.integers(S // 2, max(S // 2 + 1, S - ph2 - bottom - 2)))
        panel_bg = (245, 245, 245) if rng.random() < 0.5 else dominant
        panel = np.empty((ph2, pw2, 3), np.uint8)
        panel[:] = panel_bg
        pink = _contrasting(panel_bg, rng)
        shared_at = int(rng.integers(n_lines))
        for k in range(n_lines):
            if k == shared_at:
                line = _SHARED_LINES[int(rng.integers(len(_SHARED_LINES)))]
            else:
                line = " ".join(_word(rng, 2, 8, upper=False) for _ in range(6))
            cv2.putText(panel, line, (3, lh * (k + 1)), cv2.FONT_HERSHEY_PLAIN, 0.55 * u, pink,
                        1, cv2.LINE_AA)
        cv2.rectangle(panel, (0, 0), (pw2 - 1, ph2 - 1), pink, 1)
        _paste(img, panel, px2, py2)

    # ---- shared barcode and badge
    if category != "books" and rng.random() < 0.6:
        code = codes[int(rng.integers(len(codes)))]
        ch, cw = code.shape[:2]
        cx0 = int(rng.integers(2, S - cw - 2))
        cy0 = S - bottom - ch - int(rng.integers(2, max(3, int(0.05 * S))))
        _paste(img, code, cx0, cy0)
    if rng.random() < 0.35:
        word = _BADGE_WORDS[int(rng.integers(len(_BADGE_WORDS)))]
        r = int(S * 0.09)
        _draw_badge(img, rng, (int(rng.integers(r, S - r)), int(rng.integers(r, S - r))), r,
                    word)
    return img


# --------------------------------------------------------------------------- photos


def _visible_fraction(quad: np.ndarray, width: int, height: int) -> float:
    """Fraction of the convex quadrilateral ``quad`` ((4, 2) float) inside the frame."""
    q = np.asarray(quad, np.float32).reshape(-1, 1, 2)
    area = abs(float(cv2.contourArea(q)))
    if area <= 0:
        return 0.0
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    if cv2.contourArea(q, oriented=True) < 0:
        frame = frame[::-1].copy()
    inter, _ = cv2.intersectConvexConvex(q, frame.reshape(-1, 1, 2))
    return float(inter) / area


def _random_homography(
    rng: np.random.Generator, w: int, h: int, out_w: int, out_h: int, d: float
) -> np.ndarray:
    """A camera-like homography: 3-D tilt, in-plane roll, scale, placement and edge crop."""
    roll = math.radians(rng.uniform(-30.0, 30.0) * d)
    tilt = math.radians(rng.uniform(0.0, 35.0) * d)
    tilt_axis = rng.uniform(0.0, 2 * math.pi)
    frac = rng.uniform(0.75 - 0.25 * d, 0.75 + 0.25 * d)
    focal = rng.uniform(1.5, 3.0) * max(w, h)

    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    obj = np.column_stack([src - [w / 2.0, h / 2.0], np.zeros(4)])
    axis = np.array([math.cos(tilt_axis), math.sin(tilt_axis), 0.0]) * tilt
    r_tilt, _ = cv2.Rodrigues(axis)
    c, s = math.cos(roll), math.sin(roll)
    r_roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    cam = obj @ (r_roll @ r_tilt).T + [0.0, 0.0, focal]
    uv = focal * cam[:, :2] / cam[:, 2:3]

    extent = uv.max(0) - uv.min(0)
    uv *= frac / max(extent[0] / out_w, extent[1] / out_h)
    lo = -uv.min(0)
    hi = np.array([out_w, out_h], np.float64) - uv.max(0)
    dst = uv + rng.uniform(lo, np.maximum(hi, lo))

    if rng.random() < 0.5 * d:  # partial crop at the frame edge
        target = rng.uniform(1.0 - (1.0 - MIN_VISIBLE_FRACTION - 0.02) * d, 1.0)
        ang = rng.uniform(0.0, 2 * math.pi)
        direction = np.array([math.cos(ang), math.sin(ang)])
        a, b = 0.0, float(out_w + out_h)
        for _ in range(40):  # visible fraction is non-increasing along the ray
            mid = 0.5 * (a + b)
            if _visible_fraction(dst + mid * direction, out_w, out_h) >= target:
                a = mid
            else:
                b = mid
        dst = dst + a * direction

    hom = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    return np.asarray(hom / hom[2, 2], np.float64)


def _clutter_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ``(h, w, 3)`` uint8 cluttered scene: gradient, blotches, shapes, tiles, stripes."""
    c0, c1 = _random_color(rng), _random_color(rng)
    blotch = rng.random((int(rng.integers(3, 8)), int(rng.integers(3, 8))), dtype=np.float32)
    blotch = cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)
    blotch = (blotch - np.float32(0.5)) * np.float32(rng.uniform(0.2, 0.8))
    canvas = _gradient(h, w, c0, c1, float(rng.uniform(0, 2 * np.pi)), blotch)
    unit = min(h, w) / 320.0
    # a "table" or "shelf": regular stripes or checker tiles in a band
    kind = int(rng.integers(3))
    if kind == 0:
        y0 = int(rng.integers(0, h))
        step = int(rng.integers(8, 30))
        col = _random_color(rng)
        for yy in range(y0, h, step):
            cv2.line(canvas, (0, yy), (w, yy + int(rng.integers(-3, 4))), col,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
    elif kind == 1:
        tile = int(rng.integers(12, 40))
        ca, cb = _random_color(rng), _random_color(rng)
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        for ty in range(y0, h, tile):
            for tx in range(x0, w, tile):
                col = ca if ((tx - x0) // tile + (ty - y0) // tile) % 2 == 0 else cb
                cv2.rectangle(canvas, (tx, ty), (tx + tile - 1, ty + tile - 1), col, -1)
    for _ in range(int(rng.integers(10, 30))):
        _draw_shape(canvas, rng, (-w // 8, -h // 8, w + w // 8, h + h // 8),
                    _random_color(rng), unit)
    # one or two texture patches (fabric, packaging of other things)
    for _ in range(int(rng.integers(0, 3))):
        ph, pw = int(rng.integers(h // 8, h // 3)), int(rng.integers(w // 8, w // 3))
        _paste(canvas, _noise_texture(rng, ph, pw), int(rng.integers(-pw // 2, w)),
               int(rng.integers(-ph // 2, h)))
    sigma = float(rng.uniform(0.0, 2.5))
    if sigma > 0.3:  # depth of field
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    return canvas


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """``(256, 1)`` float32 standard-normal quantiles at ``(k + 0.5) / 256``."""
    nd = statistics.NormalDist()
    return np.array([[nd.inv_cdf((k + 0.5) / 256.0)] for k in range(256)], np.float32)


def _degrade(img: np.ndarray, rng: np.random.Generator, d: float) -> np.ndarray:
    """Photometric distortions scaled by ``d``: light, glare, blur, colour, gamma, noise.

    ``img`` and the result are ``(h, w, 3)`` uint8.
    """
    h, w = img.shape[:2]
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)
    # uneven illumination (a linear light gradient) and specular glare (a Gaussian blob)
    gx, gy = rng.uniform(-0.35, 0.35, size=2) * d
    light = (np.float32(1.0) + np.float32(gy) * ys)[:, None] + (np.float32(gx) * xs)[None, :]
    u8 = cv2.multiply(img, cv2.cvtColor(light, cv2.COLOR_GRAY2BGR), dtype=cv2.CV_8U)
    if rng.random() < 0.3 * d:
        cx, cy = rng.uniform(-0.6, 0.6, size=2)
        sg = float(rng.uniform(0.1, 0.36) * min(h, w))
        amp = np.float32(rng.uniform(40, 110) * d)
        fx = np.exp(-(((xs - cx) * (w / 2)) ** 2) / (2 * sg * sg)).astype(np.float32)
        fy = np.exp(-(((ys - cy) * (h / 2)) ** 2) / (2 * sg * sg)).astype(np.float32)
        glare = (amp * fy)[:, None] * fx[None, :]
        u8 = cv2.add(u8, cv2.cvtColor(glare, cv2.COLOR_GRAY2BGR), dtype=cv2.CV_8U)
    # optics: defocus and a little motion blur
    sigma = rng.uniform(0.0, 1.6) * d
    if sigma > 0.25:
        u8 = cv2.GaussianBlur(u8, (0, 0), sigma)
    if rng.random() < 0.25 * d:
        length = int(rng.integers(3, 4 + max(1, int(5 * d))))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                      float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        u8 = cv2.filter2D(u8, -1, kernel)
    # camera processing as a per-channel tone curve: contrast, brightness, cast, gamma
    alpha = rng.uniform(1.0 - 0.35 * d, 1.0 + 0.15 * d)
    beta = rng.uniform(-35.0, 35.0) * d
    cast = 1.0 + rng.uniform(-0.12, 0.12, size=3) * d
    gamma = math.exp(rng.uniform(-0.4, 0.4) * d)
    v = np.arange(256, dtype=np.float64)
    curves = [((v - 128.0) * alpha + 128.0 + beta) * c for c in cast]
    lut = np.stack([255.0 * (np.clip(cv, 0, 255) / 255.0) ** gamma for cv in curves], 1)
    u8 = cv2.LUT(u8, np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(256, 1, 3))
    # sensor noise: random bytes through the inverse normal CDF
    noise_sigma = rng.uniform(0.0, 7.0) * d
    if noise_sigma > 0.2:
        table = _normal_quantiles() * np.float32(noise_sigma)
        raw = np.frombuffer(rng.bytes(u8.size), np.uint8).reshape(u8.shape)
        u8 = cv2.add(u8, cv2.LUT(raw, table), dtype=cv2.CV_8U)
    return u8


def make_shopper_photo(
    product: np.ndarray,
    rng: np.random.Generator,
    *,
    out_size: tuple[int, int] = (480, 360),
    difficulty: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph a catalog image the way a shopper's phone would.

    The product is warped by a random camera-like homography (in-plane rotation up to
    ±30°, out-of-plane tilt up to 35°, size 0.5 to 1.0 of the frame), composited on a
    cluttered background, optionally pushed past a frame edge (at least 60 % of its area
    stays visible), then blurred, re-lit (illumination gradient, glare, brightness,
    contrast, colour cast, gamma), noised and JPEG compressed (quality 60 to 90).

    Parameters
    ----------
    product : numpy.ndarray
        ``(h, w, 3)`` ``uint8`` BGR catalog image.
    rng : numpy.random.Generator
        Source of randomness; the result is a pure function of ``product`` and its state.
    out_size : tuple of int, default (480, 360)
        ``(height, width)`` of the photo, numpy order (the default is a portrait photo).
    difficulty : float, default 1.0
        In ``[0, 1]``; scales every distortion. ``0`` gives an upright, uncropped product
        at 0.75 of the frame with no photometric change and no JPEG: the product region
        equals ``cv2.warpPerspective(product, homography, ...)`` exactly.

    Returns
    -------
    photo : numpy.ndarray
        ``(height, width, 3)`` ``uint8`` BGR photo.
    homography : numpy.ndarray
        ``(3, 3)`` ``float64`` exact homography of the warp, mapping catalog pixel
        coordinates ``(x, y, 1)`` to photo pixel coordinates; ``homography[2, 2] == 1``.

    Raises
    ------
    vbow.errors.InvalidInputError
        If an argument has the wrong type, shape, dtype or value.
    """
    product = _check_product(product)
    _check_rng(rng)
    out_h, out_w = _check_out_size(out_size)
    d = _check_difficulty(difficulty)
    h, w = product.shape[:2]

    photo = _clutter_background(rng, out_h, out_w)
    hom = _random_homography(rng, w, h, out_w, out_h, d)
    # warp straight onto the background: pixels that map outside the product keep the
    # background, so inside the product's footprint the photo is exactly the warp
    photo = cv2.warpPerspective(product, hom, (out_w, out_h), dst=photo,
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    if d > 0:
        photo = _degrade(photo, rng, d)
        quality = int(rng.integers(round(90 - 30 * d), 91))
        ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("cv2.imencode failed to JPEG-encode the photo")
        photo = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(photo), hom


# --------------------------------------------------------------------------- catalogs


def _child_rng(seed: int, tag: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(tag, *keys)))


def make_catalog(
    n_products: int = 50,
    photos_per_product: int = 2,
    *,
    seed: int = 0,
    size: int = 320,
    difficulty: float = 1.0,
) -> SyntheticCatalog:
    """Make a catalog of synthetic products and shopper photos with exact ground truth.

    Every product and photo has its own random stream derived from ``(seed, index)``, so
    the first ``k`` products (and their photos) are the same whatever ``n_products`` is.
    Categories are assigned in shuffled blocks of ``len(CATEGORIES)``, so they are
    balanced.

    Parameters
    ----------
    n_products : int, default 50
        Number of catalog products, ``>= 1``.
    photos_per_product : int, default 2
        Shopper photos per product, ``>= 0``.
    seed : int, default 0
        Non-negative seed; the same seed gives bit-identical output.
    size : int, default 320
        Side of the square catalog images, in ``[64, 4096]``.
    difficulty : float, default 1.0
        In ``[0, 1]``; passed to :func:`make_shopper_photo`.

    Returns
    -------
    SyntheticCatalog
        ``products`` are ``(size, size, 3)`` uint8; photos are ``(480, 360, 3)`` uint8,
        ordered product by product (``photos[i * photos_per_product + j]`` shows product
        ``i``).

    Raises
    ------
    vbow.errors.InvalidInputError
        If an argument has the wrong type or value.
    """
    n = _check_int(n_products, "n_products", 1)
    per = _check_int(photos_per_product, "photos_per_product", 0)
    seed = _check_int(seed, "seed", 0)
    size = _check_int(size, "size", _MIN_PRODUCT_SIZE, _MAX_PRODUCT_SIZE)
    d = _check_difficulty(difficulty)
    t0 = time.perf_counter()

    k = len(CATEGORIES)
    categories: list[str] = []
    for block in range(-(-n // k)):
        order = _child_rng(seed, _TAG_CATEGORY, block).permutation(k)
        categories.extend(CATEGORIES[int(i)] for i in order)
    categories = categories[:n]

    products: list[np.ndarray] = []
    photos: list[SyntheticPhoto] = []
    for i in range(n):
        img = make_product_image(_child_rng(seed, _TAG_PRODUCT, i), size,
                                 category=categories[i])
        products.append(img)
        for j in range(per):
            image, hom = make_shopper_photo(img, _child_rng(seed, _TAG_PHOTO, i, j),
                                            difficulty=d)
            photos.append(SyntheticPhoto(image=image, product=i, homography=hom))
    names = [f"SKU-{i:04d}" for i in range(n)]
    logger.debug("made synthetic catalog: %d products, %d photos, seed=%d, difficulty=%.2f "
                 "in %.2f s", n, len(photos), seed, d, time.perf_counter() - t0)
    return SyntheticCatalog(products=products, names=names, categories=categories,
                            photos=photos)


def _write_image(path: pathlib.Path, image: np.ndarray, params: list[int]) -> None:
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:  # pragma: no cover - only for images OpenCV cannot encode
        raise InvalidInputError(f"cannot encode image of shape {image.shape} as {path.suffix}")
    path.write_bytes(buf.tobytes())


def write_catalog(catalog: SyntheticCatalog, folder: str | os.PathLike[str]) -> pathlib.Path:
    """Write a synthetic catalog as a dataset folder with ground truth.

    Layout (paths in the files are relative to ``folder``, with ``/`` separators)::

        folder/catalog/SKU-0000.png    catalog images (PNG, lossless)
        folder/photos/photo-0000.jpg   shopper photos (JPEG, quality 95)
        folder/groundtruth.csv         image,group,role  (group = product index,
                                       role = "db" for catalog images, "query" for photos)
        folder/homographies.json       {"photos/photo-0000.jpg": [[...], [...], [...]], ...}
        folder/metadata.csv            image,name,category  (one row per catalog image)

    Existing files of the same names are overwritten; other files are left alone. Photo
    names carry no hint of their product. Output bytes are deterministic.

    Parameters
    ----------
    catalog : SyntheticCatalog
        The catalog to write.
    folder : str or os.PathLike
        Destination folder; created if missing.

    Returns
    -------
    pathlib.Path
        Path of ``groundtruth.csv``.

    Raises
    ------
    vbow.errors.InvalidInputError
        If ``catalog`` is not a SyntheticCatalog or a product name is not a safe file name.
    OSError
        If the folder or a file cannot be written.
    """
    if not isinstance(catalog, SyntheticCatalog):
        raise InvalidInputError(
            f"catalog must be a SyntheticCatalog, got {type(catalog).__name__}"
        )
    root = pathlib.Path(folder)
    for name in catalog.names:
        if not _NAME_RE.fullmatch(name):
            raise InvalidInputError(f"product name {name!r} is not a safe file name")
    if len(set(catalog.names)) != len(catalog.names):
        raise InvalidInputError("product names must be unique")
    (root / "catalog").mkdir(parents=True, exist_ok=True)
    (root / "photos").mkdir(parents=True, exist_ok=True)

    rows: list[tuple[str, int, str]] = []
    meta: list[tuple[str, str, str]] = []
    for i, (img, name, category) in enumerate(
        zip(catalog.products, catalog.names, catalog.categories)
    ):
        rel = f"catalog/{name}.png"
        _write_image(root / rel, img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        rows.append((rel, i, "db"))
        meta.append((rel, name, category))
    homographies: dict[str, list[list[float]]] = {}
    width = max(4, len(str(max(len(catalog.photos) - 1, 0))))
    for k, photo in enumerate(catalog.photos):
        rel = f"photos/photo-{k:0{width}d}.jpg"
        _write_image(root / rel, photo.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append((rel, int(photo.product), "query"))
        homographies[rel] = np.asarray(photo.homography, np.float64).tolist()

    csv_path = root / "groundtruth.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("image", "group", "role"))
        writer.writerows(rows)
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("image", "name", "category"))
        writer.writerows(meta)
    with open(root / "homographies.json", "w", encoding="utf-8") as f:
        json.dump(homographies, f, indent=1)
        f.write("\n")
    logger.debug("wrote %d catalog images and %d photos to %s", len(catalog.products),
                 len(catalog.photos), root)
    return csv_path
