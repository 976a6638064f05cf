"""Synthetic shelf scenes: several catalog products in one photo, with known placement.

Products stand side by side on shelves (a grid of slots), each under its own mild camera-like
homography (scale to its slot, small roll and tilt), on a cluttered background; the whole scene
is then re-lit, blurred, noised and JPEG compressed like a shopper photo. Each placement records
its exact homography (catalog pixels to scene pixels) and the product's outline in the scene.

Examples
--------
>>> import numpy as np
>>> from vbow.synthetic import make_catalog, make_shelf_scene
>>> cat = make_catalog(8, 0, seed=1)
>>> scene = make_shelf_scene(cat.products, np.random.default_rng(0), n_items=4)
>>> scene.image.shape, len(scene.placements)
((768, 1024, 3), 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from vbow.errors import InvalidInputError
from vbow.synthetic._checks import (
    _check_difficulty,
    _check_int,
    _check_out_size,
    _check_product,
    _check_rng,
)
from vbow.synthetic.photos import _clutter_background, _degrade

__all__ = ["Placement", "ShelfScene", "make_shelf_scene"]


@dataclass(frozen=True, eq=False)
class Placement:
    """One product in a shelf scene.

    Attributes
    ----------
    product : int
        Index of the product in the list given to :func:`make_shelf_scene`.
    homography : numpy.ndarray
        ``(3, 3) float64``, product-image pixels to scene pixels, ``[2, 2] == 1``.
    outline : numpy.ndarray
        ``(4, 2) float64`` the product image's corners in the scene (top-left, top-right,
        bottom-right, bottom-left).
    """

    product: int
    homography: np.ndarray
    outline: np.ndarray


@dataclass(frozen=True, eq=False)
class ShelfScene:
    """A shelf photo and the exact placement of every product in it.

    Attributes
    ----------
    image : numpy.ndarray
        ``(h, w, 3) uint8`` BGR scene.
    placements : tuple of Placement
        In shelf order (row by row, left to right); products do not overlap.
    """

    image: np.ndarray
    placements: tuple[Placement, ...]


def _slot_homography(rng: np.random.Generator, w: int, h: int, box: tuple[float, float, float, float],
                     d: float) -> np.ndarray:
    """Map a ``w`` x ``h`` product into the slot ``box = (x0, y0, x1, y1)``, with small roll/tilt."""
    x0, y0, x1, y1 = box
    fill = rng.uniform(0.78, 0.92)
    s = fill * min((x1 - x0) / w, (y1 - y0) / h)
    roll = math.radians(rng.uniform(-6.0, 6.0) * d)
    c, sn = math.cos(roll), math.sin(roll)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    centred = (src - [w / 2.0, h / 2.0]) * s
    rot = centred @ np.array([[c, sn], [-sn, c]])
    # a slight perspective: one side a few percent taller than the other
    k = rng.uniform(-0.05, 0.05) * d
    rot[:, 1] *= 1.0 + k * np.sign(rot[:, 0])
    cx = (x0 + x1) / 2.0 + rng.uniform(-0.04, 0.04) * (x1 - x0)
    cy = (y0 + y1) / 2.0 + rng.uniform(-0.04, 0.04) * (y1 - y0)
    dst = rot + [cx, cy]
    hom = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    return np.asarray(hom / hom[2, 2], np.float64)


def make_shelf_scene(
    products: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    n_items: int | None = None,
    out_size: tuple[int, int] = (768, 1024),
    difficulty: float = 0.6,
    repeat: bool = False,
) -> ShelfScene:
    """Place several catalog products on a synthetic shelf, with known placement.

    Parameters
    ----------
    products : sequence of numpy.ndarray
        Candidate product images, each ``(h, w, 3) uint8`` BGR.
    rng : numpy.random.Generator
        Source of randomness; the scene is a pure function of the inputs and its state.
    n_items : int, optional
        Products in the scene, in ``[1, 12]``; default drawn from 2..8.
    out_size : tuple of int, default (768, 1024)
        ``(height, width)`` of the scene.
    difficulty : float, default 0.6
        In ``[0, 1]``; scales roll, tilt and the photometric distortions. ``0`` gives upright
        products and no photometric change (the product regions are exact warps).
    repeat : bool, default False
        Allow a product to appear more than once (facings); else products are distinct
        (``n_items`` must not exceed ``len(products)``).

    Returns
    -------
    ShelfScene
    """
    _check_rng(rng)
    if not isinstance(products, Sequence) or len(products) == 0:
        raise InvalidInputError("products must be a non-empty sequence of images")
    imgs = [_check_product(p) for p in products]
    out_h, out_w = _check_out_size(out_size)
    d = _check_difficulty(difficulty)
    n = int(rng.integers(2, 9)) if n_items is None else _check_int(n_items, "n_items", 1, 12)
    if not repeat and n > len(imgs):
        raise InvalidInputError(f"n_items={n} distinct products requested, but only "
                                f"{len(imgs)} products given (pass repeat=True)")
    chosen = rng.choice(len(imgs), size=n, replace=bool(repeat))
    rows = 1 if n <= 3 else 2 if n <= 8 else 3
    per_row = -(-n // rows)
    canvas = _clutter_background(rng, out_h, out_w)
    margin_y = 0.04 * out_h
    row_h = (out_h - 2 * margin_y) / rows
    col_w = out_w / per_row
    placements = []
    for k, idx in enumerate(chosen.tolist()):
        r, c = divmod(k, per_row)
        y0 = margin_y + r * row_h
        cv2.line(canvas, (0, int(y0 + row_h - 2)), (out_w, int(y0 + row_h - 2)), (60, 60, 60), 6)
        box = (c * col_w, y0, (c + 1) * col_w, y0 + row_h)
        ph, pw = imgs[idx].shape[:2]
        hom = _slot_homography(rng, pw, ph, box, d)
        canvas = cv2.warpPerspective(imgs[idx], hom, (out_w, out_h), dst=canvas,
                                     flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
        corners = np.array([[0, 0, 1], [pw, 0, 1], [pw, ph, 1], [0, ph, 1]], np.float64)
        p = corners @ hom.T
        placements.append(Placement(int(idx), hom, p[:, :2] / p[:, 2:3]))
    if d > 0:
        canvas = _degrade(canvas, rng, 0.6 * d)
        quality = int(rng.integers(round(92 - 20 * d), 93))
        ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("cv2.imencode failed to JPEG-encode the scene")
        canvas = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return ShelfScene(np.ascontiguousarray(canvas), tuple(placements))
