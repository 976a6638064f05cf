"""vbow.apps.draw: outlines and match pictures."""

from __future__ import annotations

import cv2
import numpy as np

from vbow.apps.draw import draw_match, project_outline
from vbow.results import Match


def test_project_outline_matches_opencv():
    h = np.array([[1.1, 0.2, 30], [-0.1, 0.9, 40], [1e-4, 2e-4, 1]])
    out = project_outline(h, 320, 240)
    corners = np.float32([[0, 0], [320, 0], [320, 240], [0, 240]])[None]
    ref = cv2.perspectiveTransform(corners, h)[0]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_draw_match_picture():
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    catalog = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    pts = np.array([[10, 20, 5, 5], [150, 250, 90, 90]], np.float32)
    match = Match("SKU", 12.5, 0.4, 0.5, 2, np.diag([2.0, 3.0, 1.0]), pts, {}, 0)
    pic = draw_match(query, catalog, match, height=240)
    # catalog scaled to 240 high (240 wide), query to 240 high (160 wide)
    assert pic.shape == (240, 240 + 160, 3) and pic.dtype == np.uint8
    unverified = Match("SKU", 0.1, 0.1, 0.0, 0, None, np.zeros((0, 4), np.float32), {}, 1)
    assert draw_match(query, catalog, unverified, height=120).shape == (120, 120 + 80, 3)
