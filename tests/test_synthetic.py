"""Tests of the synthetic product-search data generator (vbow.synthetic)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections import Counter

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbow.errors import InvalidInputError, UnknownOptionError
from vbow.synthetic import (
    CATEGORIES,
    SyntheticCatalog,
    SyntheticPhoto,
    make_catalog,
    make_product_image,
    make_shopper_photo,
    write_catalog,
)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _corners(w: int, h: int) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def _project(hom: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a homography to (n, 2) points; returns (n, 2) and the (n,) homogeneous w."""
    ph = np.column_stack([pts, np.ones(len(pts))]) @ hom.T
    return ph[:, :2] / ph[:, 2:3], ph[:, 2]


def _polygon_area(poly: list[tuple[float, float]]) -> float:
    if len(poly) < 3:
        return 0.0
    xs, ys = zip(*poly)
    return 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(poly))))


def _clip_to_rect(poly: list[tuple[float, float]], w: float, h: float) -> list[tuple[float, float]]:
    """Sutherland-Hodgman clipping of a polygon to [0, w] x [0, h] (independent of the module)."""

    def clip(pts, inside, cross):
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(x0):
        return lambda p, q: (x0, p[1] + (q[1] - p[1]) * (x0 - p[0]) / (q[0] - p[0]))

    def at_y(y0):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y0 - p[1]) / (q[1] - p[1]), y0)

    for inside, cross in (
        (lambda p: p[0] >= 0, at_x(0.0)),
        (lambda p: p[0] <= w, at_x(float(w))),
        (lambda p: p[1] >= 0, at_y(0.0)),
        (lambda p: p[1] <= h, at_y(float(h))),
    ):
        if not poly:
            break
        poly = clip(poly, inside, cross)
    return poly


def _footprint(
    product: np.ndarray, hom: np.ndarray, out_hw: tuple[int, int], erode: int
) -> np.ndarray:
    """Boolean (h, w) mask of photo pixels well inside the warped product."""
    h, w = product.shape[:2]
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), hom, (out_hw[1], out_hw[0]),
                               flags=cv2.INTER_NEAREST)
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask > 0


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    return float((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum()))


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def small_catalog() -> SyntheticCatalog:
    return make_catalog(6, 2, seed=11)


# --------------------------------------------------------------------------- products


@pytest.mark.parametrize("size", [64, 160, 320])
def test_product_image_shape_and_dtype(size: int) -> None:
    img = make_product_image(_rng(0), size)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8
    assert img.flags.c_contiguous
    assert img.std() > 20  # not a flat image


def test_product_image_is_deterministic() -> None:
    a = make_product_image(_rng(42))
    b = make_product_image(_rng(42))
    c = make_product_image(_rng(43))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(np.int16) - c).mean() > 20


@pytest.mark.parametrize("category", CATEGORIES)
def test_product_image_every_category(category: str) -> None:
    img = make_product_image(_rng(5), 200, category=category)
    assert img.shape == (200, 200, 3) and img.dtype == np.uint8


def test_products_are_pairwise_distinct(small_catalog: SyntheticCatalog) -> None:
    prods = [p.astype(np.int16) for p in small_catalog.products]
    for a, b in itertools.combinations(prods, 2):
        assert np.abs(a - b).mean() > 25


def test_products_share_confusers() -> None:
    """Some products carry the very same brand bar: retrieval is not trivially easy."""
    cat = make_catalog(20, 0, seed=3)
    bh = round(0.12 * 320)
    strips = Counter(p[:bh].tobytes() for p in cat.products)
    strips.update(p[-bh:].tobytes() for p in cat.products)
    assert max(strips.values()) >= 2


def test_dominant_colours_repeat() -> None:
    """Colour is a weak cue: several products share a dominant hue bin."""
    cat = make_catalog(20, 0, seed=4)
    bins = []
    for p in cat.products:
        hue = cv2.cvtColor(p, cv2.COLOR_BGR2HSV)[..., 0]
        hist = np.bincount((hue // 15).ravel(), minlength=12)
        bins.append(int(hist.argmax()))
    assert max(Counter(bins).values()) >= 3


def test_sift_and_orb_find_many_keypoints(small_catalog: SyntheticCatalog) -> None:
    sift = cv2.SIFT_create()
    orb = cv2.ORB_create(nfeatures=1000)
    for img in small_catalog.products:
        g = _gray(img)
        assert len(sift.detect(g, None)) >= 200
        assert len(orb.detect(g, None)) >= 200


# --------------------------------------------------------------------------- photos


def test_photo_shape_dtype_and_homography() -> None:
    product = make_product_image(_rng(1))
    photo, hom = make_shopper_photo(product, _rng(2))
    assert photo.shape == (480, 360, 3) and photo.dtype == np.uint8
    assert hom.shape == (3, 3) and hom.dtype == np.float64
    assert hom[2, 2] == 1.0
    assert abs(np.linalg.det(hom)) > 1e-9


def test_photo_out_size_is_height_width() -> None:
    product = make_product_image(_rng(1), 128)
    photo, _ = make_shopper_photo(product, _rng(2), out_size=(200, 300))
    assert photo.shape == (200, 300, 3)


def test_photo_is_deterministic() -> None:
    product = make_product_image(_rng(1))
    p1, h1 = make_shopper_photo(product, _rng(9), difficulty=0.7)
    p2, h2 = make_shopper_photo(product, _rng(9), difficulty=0.7)
    p3, h3 = make_shopper_photo(product, _rng(10), difficulty=0.7)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(h1, h2)
    assert not np.array_equal(p1, p3)
    assert not np.allclose(h1, h3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_homography_is_exact_at_difficulty_zero(seed: int) -> None:
    """With no photometric change, the footprint equals the warp by H, pixel for pixel."""
    product = make_product_image(_rng(100 + seed))
    photo, hom = make_shopper_photo(product, _rng(seed), difficulty=0.0)
    ref = cv2.warpPerspective(product, hom, (360, 480), flags=cv2.INTER_LINEAR)
    inside = _footprint(product, hom, (480, 360), erode=2)
    assert inside.mean() > 0.2  # the product occupies a real part of the frame
    diff = np.abs(photo.astype(np.int16) - ref)
    assert diff[inside].mean() < 0.5
    # a homography off by just 2 px does not fit
    off = cv2.warpPerspective(product, _shift(2, 0) @ hom, (360, 480), flags=cv2.INTER_LINEAR)
    assert np.abs(photo.astype(np.int16) - off)[inside].mean() > 10
    # outside the footprint the photo shows the background, not the product
    outside = ~_footprint(product, hom, (480, 360), erode=0)
    outside = cv2.erode(outside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert diff[outside].mean() > 10
    # difficulty 0: upright and fully in frame
    pts, _ = _project(hom, _corners(320, 320))
    assert (pts >= -1e-6).all()
    assert (pts[:, 0] <= 360 + 1e-6).all() and (pts[:, 1] <= 480 + 1e-6).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_homography_is_exact_under_full_difficulty(seed: int) -> None:
    """Under blur, noise, lighting and JPEG, the NCC of photo vs warp peaks at zero shift."""
    product = make_product_image(_rng(200 + seed))
    photo, hom = make_shopper_photo(product, _rng(seed), difficulty=1.0)
    g = _gray(photo)
    pg = _gray(product)
    inside = _footprint(product, hom, (480, 360), erode=3)
    scores = {
        (dx, dy): _ncc(g, cv2.warpPerspective(pg, _shift(dx, dy) @ hom, (360, 480)), inside)
        for dx in (-2, -1, 0, 1, 2)
        for dy in (-2, -1, 0, 1, 2)
    }
    assert max(scores, key=scores.__getitem__) == (0, 0)
    assert scores[(0, 0)] > 0.7


def test_difficulty_scales_distortion() -> None:
    """Photometric error inside the footprint grows with difficulty (none at 0)."""
    product = make_product_image(_rng(7))
    errs = []
    for d in (0.0, 0.5, 1.0):
        vals = []
        for seed in range(4):
            photo, hom = make_shopper_photo(product, _rng(seed), difficulty=d)
            ref = cv2.warpPerspective(product, hom, (360, 480))
            inside = _footprint(product, hom, (480, 360), erode=2)
            vals.append(np.abs(photo.astype(np.int16) - ref)[inside].mean())
        errs.append(float(np.mean(vals)))
    assert errs[0] < 0.5
    assert errs[0] < errs[1] < errs[2]
    assert errs[2] > 15


def test_full_difficulty_crops_but_keeps_60_percent_visible() -> None:
    product = make_product_image(_rng(0), 64)
    fractions = []
    for seed in range(60):
        _, hom = make_shopper_photo(product, _rng(seed), out_size=(160, 120), difficulty=1.0)
        pts, _ = _project(hom, _corners(64, 64))
        poly = [tuple(p) for p in pts]
        fractions.append(_polygon_area(_clip_to_rect(poly, 120, 160)) / _polygon_area(poly))
    fractions_arr = np.array(fractions)
    assert fractions_arr.min() >= 0.6 - 1e-6
    assert (fractions_arr < 0.9).sum() >= 5  # partial crops do happen
    assert (fractions_arr > 0.999).sum() >= 10  # and so do uncropped photos


def test_photo_of_non_square_product() -> None:
    product = np.ascontiguousarray(make_product_image(_rng(3), 256)[:, 40:200])
    photo, hom = make_shopper_photo(product, _rng(4), difficulty=0.0)
    ref = cv2.warpPerspective(product, hom, (360, 480))
    inside = _footprint(product, hom, (480, 360), erode=2)
    assert np.abs(photo.astype(np.int16) - ref)[inside].mean() < 0.5


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    difficulty=st.floats(0.0, 1.0, allow_nan=False),
    size=st.integers(64, 240),
    out_hw=st.sampled_from([(480, 360), (360, 480), (256, 256), (200, 300)]),
)
def test_any_seed_gives_a_valid_photo(
    seed: int, difficulty: float, size: int, out_hw: tuple[int, int]
) -> None:
    rng = _rng(seed)
    product = make_product_image(rng, size)
    photo, hom = make_shopper_photo(product, rng, out_size=out_hw, difficulty=difficulty)
    assert photo.shape == (*out_hw, 3) and photo.dtype == np.uint8
    assert hom.shape == (3, 3) and np.isfinite(hom).all()
    assert np.linalg.cond(hom) < 1e8
    pts, wh = _project(hom, _corners(size, size))
    assert (wh > 0).all()  # the whole product is in front of the camera
    # convex, consistently oriented quadrilateral (no fold-over)
    edges = [pts[(i + 1) % 4] - pts[i] for i in range(4)]
    cross = [
        edges[i][0] * edges[(i + 1) % 4][1] - edges[i][1] * edges[(i + 1) % 4][0]
        for i in range(4)
    ]
    assert all(c > 0 for c in cross) or all(c < 0 for c in cross)
    area = _polygon_area([tuple(p) for p in pts])
    visible = _polygon_area(_clip_to_rect([tuple(p) for p in pts], out_hw[1], out_hw[0]))
    assert visible >= 0.6 * area - 1e-6
    # scale: the product's bounding box spans 0.5 to 1.0 of the frame (largest ratio)
    extent = pts.max(0) - pts.min(0)
    ratio = max(extent[0] / out_hw[1], extent[1] / out_hw[0])
    assert 0.5 - 1e-6 <= ratio <= 1.0 + 1e-6


# --------------------------------------------------------------------------- catalogs


def test_catalog_structure(small_catalog: SyntheticCatalog) -> None:
    cat = small_catalog
    assert len(cat.products) == len(cat.names) == len(cat.categories) == 6
    assert cat.names == [f"SKU-{i:04d}" for i in range(6)]
    assert set(cat.categories) <= set(CATEGORIES)
    assert len(cat.photos) == 12
    assert [p.product for p in cat.photos] == [i for i in range(6) for _ in range(2)]
    for img in cat.products:
        assert img.shape == (320, 320, 3) and img.dtype == np.uint8
    for photo in cat.photos:
        assert isinstance(photo, SyntheticPhoto)
        assert photo.image.shape == (480, 360, 3) and photo.image.dtype == np.uint8
        assert photo.homography.shape == (3, 3) and photo.homography.dtype == np.float64


def test_categories_are_balanced() -> None:
    cat = make_catalog(2 * len(CATEGORIES), 0, seed=1)
    assert Counter(cat.categories) == {c: 2 for c in CATEGORIES}


def test_catalog_is_deterministic() -> None:
    a = make_catalog(3, 2, seed=5, size=128)
    b = make_catalog(3, 2, seed=5, size=128)
    c = make_catalog(3, 2, seed=6, size=128)
    assert a.names == b.names and a.categories == b.categories
    for x, y in zip(a.products, b.products):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.photos, b.photos):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.homography, y.homography)
        assert x.product == y.product
    assert all(not np.array_equal(x, y) for x, y in zip(a.products, c.products))
    assert all(not np.array_equal(x.image, y.image) for x, y in zip(a.photos, c.photos))


def test_catalog_prefix_is_stable() -> None:
    """Product i and its photos do not depend on how many products are made."""
    a = make_catalog(2, 1, seed=8, size=96)
    b = make_catalog(4, 1, seed=8, size=96)
    for i in range(2):
        np.testing.assert_array_equal(a.products[i], b.products[i])
        np.testing.assert_array_equal(a.photos[i].image, b.photos[i].image)


def test_photos_match_their_product_by_sift_and_ransac() -> None:
    """Difficulty 1 is still solvable: own product wins with many RANSAC inliers."""
    cat = make_catalog(5, 1, seed=0, difficulty=1.0)
    sift = cv2.SIFT_create()
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    feats = [sift.detectAndCompute(_gray(p), None) for p in cat.products]
    own_inliers = []
    for photo in cat.photos:
        kq, dq = sift.detectAndCompute(_gray(photo.image), None)
        counts = []
        for kp, dp in feats:
            pairs = matcher.knnMatch(dq, dp, k=2)
            good = [
                m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.75 * n.distance
            ]
            if len(good) < 4:
                counts.append(0)
                continue
            src = np.float32([kp[m.trainIdx].pt for m in good])
            dst = np.float32([kq[m.queryIdx].pt for m in good])
            _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
            counts.append(0 if mask is None else int(mask.sum()))
        assert int(np.argmax(counts)) == photo.product
        own_inliers.append(counts[photo.product])
    assert sum(n >= 25 for n in own_inliers) >= 4


def test_catalog_validates_lengths() -> None:
    img = make_product_image(_rng(0), 64)
    with pytest.raises(InvalidInputError):
        SyntheticCatalog(products=[img], names=["a", "b"], categories=["tea"], photos=[])
    photo = SyntheticPhoto(image=img, product=3, homography=np.eye(3))
    with pytest.raises(InvalidInputError):
        SyntheticCatalog(products=[img], names=["a"], categories=["tea"], photos=[photo])


# --------------------------------------------------------------------------- writing


def test_write_catalog(tmp_path) -> None:
    cat = make_catalog(3, 2, seed=2, size=96)
    csv_path = write_catalog(cat, tmp_path / "data")
    root = tmp_path / "data"
    assert csv_path == root / "groundtruth.csv"
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "group", "role"]
    body = rows[1:]
    assert len(body) == 3 + 6
    db = [r for r in body if r[2] == "db"]
    queries = [r for r in body if r[2] == "query"]
    assert [(r[0], int(r[1])) for r in db] == [(f"catalog/SKU-{i:04d}.png", i) for i in range(3)]
    assert [int(r[1]) for r in queries] == [p.product for p in cat.photos]
    for (rel, group, _), img in zip(db, cat.products):
        np.testing.assert_array_equal(cv2.imread(str(root / rel)), img)  # PNG is lossless
    for (rel, group, _), photo in zip(queries, cat.photos):
        assert rel.startswith("photos/") and rel.endswith(".jpg")
        back = cv2.imread(str(root / rel))
        assert back.shape == photo.image.shape
        assert np.abs(back.astype(np.int16) - photo.image).mean() < 3
    homs = json.loads((root / "homographies.json").read_text(encoding="utf-8"))
    assert sorted(homs) == sorted(r[0] for r in queries)
    for (rel, _, _), photo in zip(queries, cat.photos):
        np.testing.assert_array_equal(np.array(homs[rel]), photo.homography)
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        meta = list(csv.DictReader(f))
    assert [m["category"] for m in meta] == cat.categories
    assert [m["name"] for m in meta] == cat.names


def test_write_catalog_is_byte_deterministic(tmp_path) -> None:
    cat1 = make_catalog(2, 1, seed=9, size=64)
    cat2 = make_catalog(2, 1, seed=9, size=64)
    write_catalog(cat1, tmp_path / "a")
    write_catalog(cat2, tmp_path / "b")
    root_a = tmp_path / "a"
    files = sorted(p.relative_to(root_a) for p in root_a.rglob("*") if p.is_file())
    assert len(files) == 2 + 2 + 3
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_write_catalog_rejects_unsafe_names(tmp_path) -> None:
    img = make_product_image(_rng(0), 64)
    cat = SyntheticCatalog(products=[img], names=["../evil"], categories=["tea"], photos=[])
    with pytest.raises(InvalidInputError):
        write_catalog(cat, tmp_path)
    assert not (tmp_path / "catalog").exists()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call",
    [
        lambda: make_product_image(np.random.RandomState(0)),  # legacy RNG
        lambda: make_product_image(_rng(0), 10),
        lambda: make_product_image(_rng(0), 320.0),
        lambda: make_shopper_photo(np.zeros((50, 50), np.uint8), _rng(0)),
        lambda: make_shopper_photo(np.zeros((50, 50, 3), np.float32), _rng(0)),
        lambda: make_shopper_photo(np.zeros((50, 50, 3), np.uint8), _rng(0), difficulty=1.5),
        lambda: make_shopper_photo(
            np.zeros((50, 50, 3), np.uint8), _rng(0), difficulty=float("nan")
        ),
        lambda: make_shopper_photo(np.zeros((50, 50, 3), np.uint8), _rng(0), out_size=(480,)),
        lambda: make_catalog(0),
        lambda: make_catalog(2, -1),
        lambda: make_catalog(2, seed=-1),
        lambda: make_catalog(2, difficulty=-0.1),
        lambda: write_catalog("not a catalog", "x"),  # type: ignore[arg-type]
    ],
)
def test_invalid_inputs_raise(call) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_unknown_category_lists_valid_ones() -> None:
    with pytest.raises(UnknownOptionError, match="cereal"):
        make_product_image(_rng(0), category="shoes")
