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

Modules
-------
``drawing``     colours, words, text, gradients, textures and shapes
``shared``      brand bars, barcodes and badges shared by many products (the confusers)
``products``    catalog images (:func:`make_product_image`)
``photos``      shopper photos with their exact homography (:func:`make_shopper_photo`)
``catalogs``    catalogs and dataset folders (:func:`make_catalog`, :func:`write_catalog`)
``shelves``     shelf scenes of several products with known placement (:func:`make_shelf_scene`)
``relisting``   re-listed copies of catalog images with known edits (:func:`make_relisting`)
"""

from __future__ import annotations

from vbow.synthetic.catalogs import SyntheticCatalog, SyntheticPhoto, make_catalog, write_catalog
from vbow.synthetic.photos import MIN_VISIBLE_FRACTION, make_shopper_photo
from vbow.synthetic.products import CATEGORIES, make_product_image
from vbow.synthetic.relisting import EDIT_KINDS, Relisting, make_relisting
from vbow.synthetic.shelves import Placement, ShelfScene, make_shelf_scene

__all__ = [
    "CATEGORIES",
    "MIN_VISIBLE_FRACTION",
    "SyntheticPhoto",
    "SyntheticCatalog",
    "make_product_image",
    "make_shopper_photo",
    "make_catalog",
    "write_catalog",
    "Placement",
    "ShelfScene",
    "make_shelf_scene",
    "EDIT_KINDS",
    "Relisting",
    "make_relisting",
]
