"""Tests of detect (vbow.apps.detect) on synthetic shelf scenes with known placement, and logos."""

from __future__ import annotations

import numpy as np
import pytest

import vbow
from vbow.apps.detect import detect
from vbow.apps.geometry import polygon_iou
from vbow.synthetic import make_shelf_scene
from vbow.synthetic.drawing import _noise_texture


def _score(dets, truth_keys, truth_outlines):
    """(true positives, ious of the true positives); one detection per placement at most."""
    used, ious = set(), []
    for d in dets:
        cands = [(polygon_iou(d.outline, o), j) for j, (k, o) in
                 enumerate(zip(truth_keys, truth_outlines)) if k == d.key and j not in used]
        if cands:
            iou, j = max(cands)
            if iou > 0.5:
                used.add(j)
                ious.append(iou)
    return len(used), ious


def test_every_indexed_product_on_a_shelf_is_found_with_its_outline(sift_index, full_catalog):
    n_indexed = len(sift_index)
    tp = fp = n_true = 0
    ious = []
    for seed in range(2):
        scene = make_shelf_scene(full_catalog.products, np.random.default_rng(seed), n_items=4,
                                 difficulty=0.5)
        keys = [full_catalog.names[p.product] for p in scene.placements]
        indexed = [p.product < n_indexed for p in scene.placements]
        dets = detect(sift_index, scene.image, max_objects=8)
        t, iou = _score(dets, [k for k, i in zip(keys, indexed) if i],
                        [p.outline for p, i in zip(scene.placements, indexed) if i])
        tp += t
        fp += len(dets) - t
        n_true += sum(indexed)
        ious += iou
    assert tp / n_true >= 0.85
    assert fp == 0
    assert np.median(ious) >= 0.9


def test_the_cap_limits_the_detections(sift_index, full_catalog):
    scene = make_shelf_scene(full_catalog.products[:12], np.random.default_rng(5), n_items=4,
                             difficulty=0.3)
    assert len(detect(sift_index, scene.image, max_objects=1)) == 1
    with pytest.raises(vbow.InvalidInputError):
        detect(sift_index, scene.image, max_objects=0)


def test_nothing_is_found_in_a_blank_or_unrelated_photo(sift_index):
    assert detect(sift_index, np.full((480, 640, 3), 128, np.uint8)) == []
    clutter = _noise_texture(np.random.default_rng(3), 480, 640)
    assert detect(sift_index, clutter) == []


@pytest.fixture(scope="module")
def logo_index():
    """A catalog of 6 synthetic logos (the brand emblems of vbow.synthetic's shared bars)."""
    from vbow.synthetic.shared import _shared_elements

    bars, _ = _shared_elements(480)
    logos = [np.ascontiguousarray(np.vstack([b, b[::-1]])) for b in bars]
    index = vbow.ImageIndex("sift", n_words=1024, n_jobs=1)
    index.build(logos, keys=[f"BRAND-{i}" for i in range(len(logos))])
    return index, logos


def test_logo_recognition_is_detect_on_a_logo_catalog(logo_index):
    index, logos = logo_index
    # a poster with two of the logos placed at known spots on clutter
    rng = np.random.default_rng(0)
    scene = make_shelf_scene(logos, rng, n_items=2, difficulty=0.2, out_size=(600, 900))
    found = detect(index, scene.image, max_objects=4)
    truth = {f"BRAND-{p.product}": p.outline for p in scene.placements}
    assert {d.key for d in found} == set(truth)
    assert all(polygon_iou(d.outline, truth[d.key]) > 0.8 for d in found)
