"""Drawing primitives of the synthetic data: colours, words, text, gradients, textures, shapes.

Every function draws from a seeded :class:`numpy.random.Generator` only, so its output is a pure
function of the generator's state.
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np

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

Colour = tuple[int, int, int]



def _bgr(hue: float, sat: float, val: float) -> Colour:
    """BGR colour of an OpenCV HSV triple (hue 0..180, sat and val 0..255)."""
    hsv = np.array([[[int(hue) % 180, int(np.clip(sat, 0, 255)), int(np.clip(val, 0, 255))]]],
                   dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _random_colour(rng: np.random.Generator) -> Colour:
    c = rng.integers(0, 256, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _luma(colour: Colour) -> float:
    b, g, r = colour
    return 0.114 * b + 0.587 * g + 0.299 * r


def _contrasting(colour: Colour, rng: np.random.Generator) -> Colour:
    """A dark or light colour that reads well on ``colour``."""
    if _luma(colour) > 128:
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
    colour: Colour,
    thickness: int,
    outline: Colour | None = None,
) -> None:
    if outline is not None:
        cv2.putText(img, text, org, font, scale, outline, thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, colour, thickness, cv2.LINE_AA)


def _gradient(
    h: int, w: int, c0: Colour, c1: Colour, angle: float, extra: np.ndarray | None = None
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
    colour: Colour,
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
        cv2.rectangle(img, (cx - w2, cy - h2), (cx + w2, cy + h2), colour, thick, cv2.LINE_AA)
    elif kind == 1:
        cv2.circle(img, (cx, cy), r, colour, thick, cv2.LINE_AA)
    elif kind == 2:
        axes = (r, max(1, int(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, thick,
                    cv2.LINE_AA)
    elif kind == 3:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, size=k))
        rad = r * rng.uniform(0.4, 1.0, size=k)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
        pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        if filled:
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        else:
            cv2.polylines(img, [pts], True, colour, thick, cv2.LINE_AA)
    elif kind == 4:
        ex = int(rng.integers(x0, max(x0 + 1, x1)))
        ey = int(rng.integers(y0, max(y0 + 1, y1)))
        cv2.line(img, (cx, cy), (ex, ey), colour, max(1, abs(thick)), cv2.LINE_AA)
    else:
        n = int(rng.integers(3, 7))
        gap = max(2, int(r * rng.uniform(0.2, 0.5)))
        ang = rng.uniform(0, np.pi)
        dx, dy = math.cos(ang), math.sin(ang)
        for i in range(n):
            ox, oy = -dy * gap * i, dx * gap * i
            p0 = (int(cx + ox - dx * r), int(cy + oy - dy * r))
            p1 = (int(cx + ox + dx * r), int(cy + oy + dy * r))
            cv2.line(img, p0, p1, colour, max(1, gap // 2), cv2.LINE_AA)


def _paste(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Paste ``src`` into ``dst`` with its top-left corner at ``(x, y)``, clipped."""
    h, w = src.shape[:2]
    H, W = dst.shape[:2]
    xa, ya = max(x, 0), max(y, 0)
    xb, yb = min(x + w, W), min(y + h, H)
    if xa < xb and ya < yb:
        dst[ya:yb, xa:xb] = src[ya - y:yb - y, xa - x:xb - x]

