"""Elements shared by many synthetic products: brand bars, barcodes, badges, shared label lines.

They are the deliberate confusers of the synthetic catalogs: their seed does not depend on the
catalog seed, so every catalog has the same few.
"""

from __future__ import annotations

import functools
from typing import Final

import cv2
import numpy as np

from vbow.synthetic.drawing import _BOLD_FONTS, _bgr, _contrasting, _fit_text, _put_text, _word

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
        colour = _bgr(rng.integers(0, 180), rng.integers(150, 256), rng.integers(60, 200))
        bar = np.empty((bh, size, 3), np.uint8)
        bar[:] = colour
        ink = _contrasting(colour, rng)
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
    colour = (0, 215, 255) if rng.random() < 0.5 else (40, 40, 220)
    cv2.fillPoly(img, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)
    ink = (255, 255, 255) if colour[2] == 220 and colour[0] == 40 else (20, 20, 20)
    th = max(1, radius // 14)
    scale = _fit_text(word, cv2.FONT_HERSHEY_DUPLEX, th, 1.2 * radius, 0.7 * radius)
    (tw, tht), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, th)
    cv2.putText(img, word, (cx - tw // 2, cy + tht // 2), cv2.FONT_HERSHEY_DUPLEX, scale, ink,
                th, cv2.LINE_AA)

