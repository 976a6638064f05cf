"""Shared fixtures: a small synthetic catalog and a SIFT index built on it (session scoped).

Everything here is generated; nothing is read from ../shared. Vocabularies are small and
``n_jobs=1`` so that the default suite stays fast on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import vbow
from vbow.synthetic import make_catalog

settings.register_profile(
    "vbow", deadline=None, max_examples=40, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])
settings.load_profile(os.environ.get("VBOW_HYPOTHESIS_PROFILE", "vbow"))

#: Real datasets (only the read_groundtruth smoke test and slow tests use them).
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

N_PRODUCTS = 12          # indexed by the session index
N_HELD_OUT = 2           # extra products of the same catalog, never in the session index
PHOTOS_PER_PRODUCT = 2
DIFFICULTY = 0.6
CATALOG_SEED = 1
SIFT_SETTINGS = dict(n_words=2048, n_jobs=1)


def corners(width: float, height: float) -> np.ndarray:
    """The four corners of a width x height image, ``(4, 2) float64``."""
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)


def project(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to ``(n, 2)`` points (independent of vbow)."""
    p = np.c_[points, np.ones(len(points))] @ np.asarray(h, np.float64).T
    return p[:, :2] / p[:, 2:3]


def corner_errors(estimated: np.ndarray, truth: np.ndarray, width: float, height: float) -> np.ndarray:
    """Distances (px) between the catalog corners mapped by two homographies."""
    c = corners(width, height)
    return np.linalg.norm(project(estimated, c) - project(truth, c), axis=1)


@pytest.fixture(scope="session")
def full_catalog():
    """12 + 2 products, 2 photos each, difficulty 0.6 (the first 12 are indexed)."""
    return make_catalog(N_PRODUCTS + N_HELD_OUT, PHOTOS_PER_PRODUCT, seed=CATALOG_SEED,
                        difficulty=DIFFICULTY)


@pytest.fixture(scope="session")
def catalog(full_catalog):
    """The indexed part: products 0..11 with their photos."""
    from vbow.synthetic import SyntheticCatalog

    n = N_PRODUCTS
    return SyntheticCatalog(full_catalog.products[:n], full_catalog.names[:n],
                            full_catalog.categories[:n],
                            [p for p in full_catalog.photos if p.product < n])


@pytest.fixture(scope="session")
def held_out(full_catalog):
    """Products (and their photos) that are not in the session index."""
    n = N_PRODUCTS
    return ([(full_catalog.names[i], full_catalog.products[i], full_catalog.categories[i])
             for i in range(n, n + N_HELD_OUT)],
            [p for p in full_catalog.photos if p.product >= n])


@pytest.fixture(scope="session")
def sift_index(catalog):
    """A SIFT index built on the 12 catalog products (do not mutate: use ``index_bundle``)."""
    index = vbow.ImageIndex("sift", **SIFT_SETTINGS)
    report = index.build(catalog.products, keys=catalog.names,
                         metadata=[{"category": c, "n": i} for i, c in enumerate(catalog.categories)])
    assert report.ok and len(report.added) == N_PRODUCTS
    return index


@pytest.fixture(scope="session")
def sift_results(sift_index, catalog):
    """Search results (top 12, default settings) for every photo, in photo order."""
    return [sift_index.search(p.image, top_k=N_PRODUCTS) for p in catalog.photos]


@pytest.fixture(scope="session")
def index_bundle(sift_index, tmp_path_factory) -> Path:
    """The session index saved once; tests that mutate an index load their own copy."""
    return sift_index.save(tmp_path_factory.mktemp("bundle") / "catalog.vbow")
