"""Shopper-style photos of a catalog image: camera homography, clutter, light, noise, JPEG."""

from __future__ import annotations

import functools
import math
import statistics
from typing import Final

import cv2
import numpy as np

from vbow.synthetic._checks import (
    _check_difficulty,
    _check_out_size,
    _check_product,
    _check_rng,
)
from vbow.synthetic.drawing import _draw_shape, _gradient, _noise_texture, _paste, _random_colour

__all__ = ["MIN_VISIBLE_FRACTION", "make_shopper_photo"]

#: Smallest visible fraction of the product's area in a shopper photo.
MIN_VISIBLE_FRACTION: Final[float] = 0.6


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
    c0, c1 = _random_colour(rng), _random_colour(rng)
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
        col = _random_colour(rng)
        for yy in range(y0, h, step):
            cv2.line(canvas, (0, yy), (w, yy + int(rng.integers(-3, 4))), col,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
    elif kind == 1:
        tile = int(rng.integers(12, 40))
        ca, cb = _random_colour(rng), _random_colour(rng)
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        for ty in range(y0, h, tile):
            for tx in range(x0, w, tile):
                col = ca if ((tx - x0) // tile + (ty - y0) // tile) % 2 == 0 else cb
                cv2.rectangle(canvas, (tx, ty), (tx + tile - 1, ty + tile - 1), col, -1)
    for _ in range(int(rng.integers(10, 30))):
        _draw_shape(canvas, rng, (-w // 8, -h // 8, w + w // 8, h + h // 8),
                    _random_colour(rng), unit)
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

