"""Synthetic catalog ("listing") images of made-up packaged products and book covers."""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np

from vbow.errors import UnknownOptionError
from vbow.synthetic._checks import _MAX_PRODUCT_SIZE, _MIN_PRODUCT_SIZE, _check_int, _check_rng
from vbow.synthetic.drawing import (
    _BOLD_FONTS,
    _FONTS,
    _bgr,
    _contrasting,
    _draw_shape,
    _fit_text,
    _gradient,
    _noise_texture,
    _paste,
    _put_text,
    _random_colour,
    _word,
)
from vbow.synthetic.shared import _BADGE_WORDS, _SHARED_LINES, _draw_badge, _shared_elements

__all__ = ["CATEGORIES", "make_product_image"]

#: The product categories :func:`make_catalog` assigns (balanced, in shuffled blocks).
CATEGORIES: Final[tuple[str, ...]] = ("cereal", "tea", "books", "coffee", "snacks")


# Dominant hues (OpenCV hue units, 0..180): few on purpose, so colour is only a weak cue.
_HUES: Final[tuple[int, ...]] = (0, 12, 24, 60, 88, 105, 125, 150)
_CATEGORY_HUES: Final[dict[str, tuple[int, ...]]] = {
    "cereal": (0, 12, 24, 105),
    "tea": (60, 88, 150, 0),
    "books": _HUES,
    "coffee": (12, 24, 0, 125),
    "snacks": (0, 24, 105, 125, 150),
}


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
    palette = [accent, ink, _random_colour(rng), _random_colour(rng), second]
    for _ in range(int(rng.integers(14, 26))):
        colour = palette[int(rng.integers(len(palette)))] if rng.random() < 0.7 else \
            _random_colour(rng)
        _draw_shape(img, rng, (0, 0, S, S), colour, u)

    # ---- category motif
    if category == "cereal":  # a bowl
        cx, cy, r = int(S * rng.uniform(0.3, 0.7)), int(S * rng.uniform(0.55, 0.7)), int(S * 0.2)
        cv2.ellipse(img, (cx, cy), (r, r), 0, 0, 180, _random_colour(rng), -1, cv2.LINE_AA)
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
        _draw_shape(img, rng, logo_region, _random_colour(rng), u * 0.5)
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
    title_colour = ink if rng.random() < 0.6 else accent
    outline = _contrasting(title_colour, rng) if rng.random() < 0.4 else None
    _put_text(img, title, (tx, ty), font, scale, title_colour, th, outline)
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

