"""Tests of duplicate and counterfeit listings (vbow.apps.duplicates, vbow.apps.edits)."""

from __future__ import annotations

import numpy as np
import pytest

import vbow
from vbow.apps.duplicates import find_duplicates
from vbow.apps.edits import classify_pair
from vbow.synthetic import EDIT_KINDS, make_catalog, make_relisting

KINDS = [k for k in EDIT_KINDS if k != "exact"] + ["exact"]


@pytest.fixture(scope="module")
def relisted():
    """8 products; product i is re-listed with edit KINDS[i] (and 2 more for i < 2)."""
    cat = make_catalog(len(KINDS) + 2, 0, seed=11)
    images = {name: img for name, img in zip(cat.names, cat.products)}
    truth = {}
    for i, kind in enumerate(KINDS):
        copy = make_relisting(cat.products[i], kind, np.random.default_rng(100 + i))
        key = f"COPY-{i:02d}-{kind}"
        images[key] = copy.image
        truth[frozenset((key, cat.names[i]))] = (kind, copy.region)
    index = vbow.ImageIndex("sift", n_words=2048, n_jobs=1)
    index.build(list(images.values()), keys=list(images))
    return index, images, truth, cat


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_classify_pair_with_the_true_transform(kind):
    # exact ground truth: the generator's own transform; every kind must come out as made
    src = make_catalog(3, 0, seed=5).products
    hits = 0
    for i, s in enumerate(src):
        r = make_relisting(s, kind, np.random.default_rng(7 * i + 1))
        got = classify_pair(r.image, s, r.homography, mirrored=kind == "mirror")
        hits += got.kind == kind
        if kind == "counterfeit" and got.kind == kind:
            x0, y0, x1, y1 = got.unexplained
            tx0, ty0, tx1, ty1 = r.region
            inter = max(0, min(x1, tx1) - max(x0, tx0)) * max(0, min(y1, ty1) - max(y0, ty0))
            union = (x1 - x0) * (y1 - y0) + (tx1 - tx0) * (ty1 - ty0) - inter
            assert inter / union > 0.7
    assert hits >= 2


def test_a_different_photo_is_the_same_product_not_a_copy():
    cat = make_catalog(1, 1, seed=3)
    photo = cat.photos[0]
    got = classify_pair(photo.image, cat.products[0], photo.homography)
    assert got.kind == "same_product"


def test_find_duplicates_pairs_every_copy_with_its_source(relisted):
    index, images, truth, cat = relisted
    report = find_duplicates(index, images, progress=False)
    found = {frozenset((p.a, p.b)): p for p in report.pairs}
    # every true pair found; few pairs between different products. The synthetic products share
    # brand bars, barcodes and badges on purpose; a few of them verify between products with
    # coverage above min_coverage (3 false pairs of 13 when this was written: a known limit)
    recall = np.mean([t in found for t in truth])
    assert recall >= 0.9
    precision = np.mean([t in truth for t in found])
    assert precision >= 0.7, sorted(map(sorted, set(found) - set(truth)))
    kinds_right = np.mean([found[t].kind == truth[t][0] for t in truth if t in found])
    assert kinds_right >= 0.7
    cf = [p for t, p in found.items() if truth.get(t, ("",))[0] == "counterfeit"]
    assert cf and all(p.counterfeit and p.unexplained is not None for p in cf)
    # every copy is grouped with its source
    group_of = {k: g for g in report.groups for k in g}
    assert all(set(t) <= set(group_of[next(iter(t))]) for t in truth if t in found)
    assert report.to_dict()["pairs"]


def test_find_duplicates_rejects_unknown_keys(relisted):
    index, images, _, _ = relisted
    with pytest.raises(vbow.InvalidInputError):
        find_duplicates(index, {"NOT-A-KEY": next(iter(images.values()))})


@pytest.mark.parametrize("seed", range(4))
def test_a_crop_reads_as_a_crop_from_either_side(seed):
    # whichever direction of the pair verified, the smaller image is the crop of the larger
    from vbow.apps.edits import contains_at_unit_scale

    src = make_catalog(1, 0, seed=20 + seed).products[0]
    r = make_relisting(src, "crop", np.random.default_rng(seed))
    # r.homography maps src pixels to crop pixels; its inverse maps the crop into src
    assert contains_at_unit_scale(src.shape, r.image.shape, np.linalg.inv(r.homography))
    assert not contains_at_unit_scale(r.image.shape, src.shape, r.homography)
    assert classify_pair(r.image, src, r.homography).kind == "crop"
    # a padded copy is shrunk onto its canvas: not read the other way round
    p = make_relisting(src, "padding", np.random.default_rng(seed))
    assert not contains_at_unit_scale(p.image.shape, src.shape, p.homography)


def test_a_small_product_on_a_plain_background_pairs_with_its_re_upload():
    # a product shot that fills a tenth of a white listing image: the inliers cover a tenth of
    # the image but all of its textured part, and that is the share that counts
    import cv2

    cat = make_catalog(4, 0, seed=31)
    images, truth = {}, set()
    for i, p in enumerate(cat.products):
        h, w = p.shape[:2]
        canvas = np.full((h * 3, w * 3, 3), 255, np.uint8)
        y, x = (h * 3 - h) // 2 + (i - 2) * 7, (w * 3 - w) // 2
        canvas[y:y + h, x:x + w] = p
        images[f"LIST-{i}"] = canvas
        images[f"REUP-{i}"] = cv2.resize(canvas, None, fx=0.8, fy=0.8,
                                         interpolation=cv2.INTER_AREA)
        truth.add(frozenset((f"LIST-{i}", f"REUP-{i}")))
    index = vbow.ImageIndex("sift", n_words=1024, n_jobs=1)
    index.build(list(images.values()), keys=list(images))
    found = {frozenset((p.a, p.b)) for p in find_duplicates(index, images, progress=False).pairs}
    assert truth <= found
