"""Synthetic catalogs with shopper photos and exact ground truth, and their dataset folders."""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
import re
import time
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from vbow.errors import InvalidInputError
from vbow.synthetic._checks import (
    _MAX_PRODUCT_SIZE,
    _MIN_PRODUCT_SIZE,
    _check_difficulty,
    _check_int,
)
from vbow.synthetic.photos import make_shopper_photo
from vbow.synthetic.products import CATEGORIES, make_product_image

__all__ = ["SyntheticPhoto", "SyntheticCatalog", "make_catalog", "write_catalog"]

logger = logging.getLogger(__name__)

# Tags for the SeedSequence spawn keys of make_catalog.
_TAG_PRODUCT: Final[int] = 1
_TAG_PHOTO: Final[int] = 2
_TAG_CATEGORY: Final[int] = 3

_NAME_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
