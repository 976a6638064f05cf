"""Tests of the plane geometry of matches (vbow.apps.geometry)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbow.apps.geometry import MAX_SCALE_DISTORTION, polygon_area, scale_distortion

_coef = st.floats(-3, 3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(a=_coef, b=_coef, c=_coef, d=_coef, tx=st.floats(-500, 500), ty=st.floats(-500, 500))
def test_an_affine_map_scales_evenly(a, b, c, d, tx, ty):
    t = np.array([[a, b, tx], [c, d, ty], [0, 0, 1]], np.float64)
    got = scale_distortion(t, (320, 240))
    det = np.linalg.det(t)
    if det != 0:
        assert abs(got - 1.0) < 1e-9
    else:
        assert got == float("inf")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-60, 60), min_size=8, max_size=8))
def test_distortion_matches_the_ratio_of_local_areas(jitter):
    # differential: the local area scale at a corner, measured as the mapped area of a small
    # square there, against the closed form
    w, h = 320.0, 240.0
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32(jitter).reshape(4, 2) + np.float32([100, 100])
    t = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    eps = 1e-3
    local = []
    for x, y in src.astype(np.float64):
        sq = np.array([[x, y], [x + eps, y], [x + eps, y + eps], [x, y + eps]])
        local.append(polygon_area(_map(t, sq)) / eps ** 2)
    expected = max(local) / min(local)
    assert abs(scale_distortion(t, (w, h)) - expected) < 1e-3 * expected


def _map(t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ t.T
    return p[:, :2] / p[:, 2:3]


def test_a_far_edge_two_and_a_half_times_as_far_is_the_limit():
    # a square seen with its far edge at depth 2.5 and its near edge at depth 1
    t = np.array([[1, 0, 0], [0, 1, 0], [0, 1.5 / 100, 1]], np.float64)
    assert abs(scale_distortion(t, (100, 100)) - 2.5 ** 3) < 1e-9
    assert scale_distortion(t, (100, 100)) <= MAX_SCALE_DISTORTION
    behind = np.array([[1, 0, 0], [0, 1, 0], [0, -0.02, 1]], np.float64)  # horizon crossed
    assert scale_distortion(behind, (100, 100)) == float("inf")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-60, 60), min_size=8, max_size=8),
       st.lists(st.floats(0, 1), min_size=6, max_size=40))
def test_distortion_inside_the_image_is_at_most_that_at_its_corners(jitter, uv):
    # the depth h3 . p is affine in p, so over the image rectangle its extremes (and those of
    # the local area scale) are at the corners: any points inside measure no more
    w, h = 320.0, 240.0
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32(jitter).reshape(4, 2) + np.float32([100, 100])
    t = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    pts = np.array(uv[: len(uv) // 2 * 2], np.float64).reshape(-1, 2) * [w, h]
    corners = scale_distortion(t, (w, h))
    assert scale_distortion(t, (w, h), points=src) == pytest.approx(corners)
    assert 1.0 <= scale_distortion(t, (w, h), points=pts) <= corners * (1 + 1e-9)


def test_no_points_measure_as_degenerate():
    assert scale_distortion(np.eye(3), (10, 10), points=np.zeros((0, 2))) == float("inf")
