"""Re-listed copies of catalog images with known edits (duplicate and counterfeit listings).

Marketplaces see the same product photo uploaded again and again: byte-identical, cropped,
resized, re-compressed, watermarked, with a text banner, colour shifted, mirrored or padded onto a
new background; counterfeit listings reuse a brand's photo with part of the print replaced.
:func:`make_relisting` makes one such copy of an image and returns exactly what was done: the
kind, the map from source pixels to copy pixels, and for a counterfeit the replaced region.

Examples
--------
>>> import numpy as np
>>> from vbow.synthetic import make_catalog, make_relisting
>>> src = make_catalog(1, 0, seed=2).products[0]
>>> copy = make_relisting(src, "crop", np.random.default_rng(0))
>>> copy.kind, copy.image.shape[2], copy.homography.shape
('crop', 3, (3, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from vbow.errors import UnknownOptionError
from vbow.synthetic._checks import _check_product, _check_rng
from vbow.synthetic.drawing import _noise_texture, _random_colour
from vbow.synthetic.photos import _clutter_background

__all__ = ["EDIT_KINDS", "Relisting", "make_relisting"]

#: The edits :func:`make_relisting` knows; ``counterfeit`` replaces part of the print.
EDIT_KINDS: Final[tuple[str, ...]] = ("exact", "crop", "resize", "recompress", "watermark",
                                      "text", "colour_shift", "mirror", "padding", "counterfeit")


@dataclass(frozen=True, eq=False)
class Relisting:
    """A re-listed copy of an image and what was done to it.

    Attributes
    ----------
    image : numpy.ndarray
        ``(h, w, 3) uint8`` BGR copy.
    kind : str
        One of :data:`EDIT_KINDS`.
    homography : numpy.ndarray
        ``(3, 3) float64`` source pixels to copy pixels (``[2, 2] == 1``).
    region : tuple of int or None
        For ``counterfeit``: the replaced ``(x0, y0, x1, y1)`` in source pixels; else None.
    """

    image: np.ndarray
    kind: str
    homography: np.ndarray
    region: tuple[int, int, int, int] | None = None


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("cv2.imencode failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def make_relisting(image: np.ndarray, kind: str, rng: np.random.Generator) -> Relisting:
    """Make a re-listed copy of ``image`` with one known edit.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3) uint8`` BGR source image.
    kind : str
        One of :data:`EDIT_KINDS`:

        * ``exact``: the same pixels;
        * ``crop``: 70-85 % of each side kept, at a random offset;
        * ``resize``: scaled by 0.5-0.8 or 1.25-1.6;
        * ``recompress``: JPEG quality 25-45;
        * ``watermark``: a semi-transparent word tiled diagonally over the image;
        * ``text``: an opaque banner with a price over 12-18 % of the height;
        * ``colour_shift``: hue rotated by 15-40 (of 180) and saturation scaled;
        * ``mirror``: flipped left to right;
        * ``padding``: shrunk to 55-75 % and pasted on a new background;
        * ``counterfeit``: a block of 18-30 % of each side replaced by other print.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    Relisting
    """
    src = _check_product(image)
    _check_rng(rng)
    if kind not in EDIT_KINDS:
        raise UnknownOptionError("kind", kind, EDIT_KINDS)
    h, w = src.shape[:2]
    eye = np.eye(3)
    if kind == "exact":
        return Relisting(src.copy(), kind, eye)
    if kind == "crop":
        fw, fh = rng.uniform(0.7, 0.85, size=2)
        cw, ch = int(round(w * fw)), int(round(h * fh))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        hom = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        return Relisting(np.ascontiguousarray(src[y0:y0 + ch, x0:x0 + cw]), kind, hom)
    if kind == "resize":
        s = rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 1.6)
        nw, nh = max(8, int(round(w * s))), max(8, int(round(h * s)))
        out = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else
                         cv2.INTER_LINEAR)
        return Relisting(out, kind, np.diag([nw / w, nh / h, 1.0]))
    if kind == "recompress":
        return Relisting(_jpeg(src, int(rng.integers(25, 46))), kind, eye)
    if kind == "watermark":
        layer = np.zeros_like(src)
        word = ["SAMPLE", "SHOP", "DEALS", "STORE"][int(rng.integers(4))]
        scale = max(0.6, min(h, w) / 260.0)
        step = int(90 * scale)
        for yy in range(-h, 2 * h, step):
            for xx in range(-w, 2 * w, int(2.2 * step)):
                cv2.putText(layer, word, (xx + yy // 2, yy), cv2.FONT_HERSHEY_DUPLEX, scale,
                            (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
        alpha = rng.uniform(0.25, 0.4)
        mask = layer[..., :1].astype(np.float32) / 255.0 * alpha
        out = src.astype(np.float32) * (1 - mask) + layer.astype(np.float32) * mask
        return Relisting(np.clip(out + 0.5, 0, 255).astype(np.uint8), kind, eye)
    if kind == "text":
        out = src.copy()
        bh = int(round(h * rng.uniform(0.12, 0.18)))
        y0 = 0 if rng.random() < 0.5 else h - bh
        out[y0:y0 + bh] = _random_colour(rng)
        price = f"ONLY ${int(rng.integers(5, 99))}.99!"
        fs = bh / 40.0
        cv2.putText(out, price, (int(0.05 * w), y0 + int(0.75 * bh)), cv2.FONT_HERSHEY_DUPLEX,
                    fs, (255, 255, 255), max(1, int(2 * fs)), cv2.LINE_AA)
        return Relisting(out, kind, eye)
    if kind == "colour_shift":
        hsv = cv2.cvtColor(src, cv2.COLOR_BGR2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + int(rng.integers(15, 41))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.3), 0, 255)
        return Relisting(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR), kind, eye)
    if kind == "mirror":
        hom = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], np.float64)
        return Relisting(np.ascontiguousarray(src[:, ::-1]), kind, hom)
    if kind == "padding":
        s = rng.uniform(0.55, 0.75)
        nw, nh = int(round(w * s)), int(round(h * s))
        canvas = _clutter_background(rng, h, w)
        x0, y0 = int(rng.integers(0, w - nw + 1)), int(rng.integers(0, h - nh + 1))
        canvas[y0:y0 + nh, x0:x0 + nw] = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
        hom = np.array([[nw / w, 0, x0], [0, nh / h, y0], [0, 0, 1]], np.float64)
        return Relisting(canvas, kind, hom)
    # counterfeit: a block of the print replaced by other print
    fw, fh = rng.uniform(0.18, 0.30, size=2)
    bw, bh = int(round(w * fw)), int(round(h * fh))
    x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    out = src.copy()
    out[y0:y0 + bh, x0:x0 + bw] = _noise_texture(rng, bh, bw)
    return Relisting(out, kind, eye, (x0, y0, x0 + bw, y0 + bh))
