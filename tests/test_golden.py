"""A bundle written by an earlier vbow (tests/data/golden-index-v*) must keep loading and working.

The golden bundles are committed; tests/data/make_golden.py documents how each was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vbow
from vbow.synthetic import make_catalog

DATA = Path(__file__).parent / "data"
GOLDEN = sorted(DATA.glob("golden-index-v*"))
# must match tests/data/make_golden.py
GOLDEN_CATALOG = dict(n_products=3, photos_per_product=1, seed=7, size=192, difficulty=0.3)


def test_there_is_a_golden_bundle():
    assert GOLDEN, f"no golden bundle in {DATA}"


@pytest.mark.parametrize("bundle", GOLDEN, ids=[p.name for p in GOLDEN])
@pytest.mark.parametrize("mmap", [True, False])
def test_golden_bundle_loads_and_finds_its_products(bundle, mmap):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "vbow-index"
    index = vbow.ImageIndex.load(bundle, mmap=mmap, verify_checksums=True)
    cat = make_catalog(**GOLDEN_CATALOG)
    assert index.keys == cat.names
    assert [index.metadata(k)["category"] for k in cat.names] == cat.categories
    hits = sum(index.search(p.image, top_k=3).best.key == cat.names[p.product] for p in cat.photos)
    assert hits >= len(cat.photos) - 1


@pytest.mark.parametrize("bundle", GOLDEN, ids=[p.name for p in GOLDEN])
def test_settings_missing_from_an_old_bundle_keep_how_it_was_built(bundle):
    """Extraction settings added later (upscaling, colour backdrop suppression, soft
    colour bins, colour bands) default to
    'off' for a bundle written before them, so its queries are described as its images were."""
    saved = json.loads((bundle / "manifest.json").read_text())["config"]
    index = vbow.ImageIndex.load(bundle)
    if "min_side" not in saved:
        assert index.config.min_side == 0
    if "border_suppression" not in saved.get("colour", {}):
        assert index.config.colour.border_suppression == 0
    if "soft_binning" not in saved.get("colour", {}):
        assert index.config.colour.soft_binning is False
    if "bands" not in saved.get("colour", {}):
        assert index.config.colour.bands == 0
    for name, value in saved.get("colour", {}).items():
        assert getattr(index.config.colour, name) == value
    for name, value in saved.items():
        if name != "colour":
            assert getattr(index.config, name) == value


@pytest.mark.parametrize("bundle", GOLDEN, ids=[p.name for p in GOLDEN])
def test_a_golden_bundle_saved_again_is_checksummed_and_answers_the_same(bundle, tmp_path):
    """Re-saving an old bundle writes today's format (with the manifest's own CRC) and keeps
    every answer; the copy passes the default checks (checksums and structure)."""
    from vbow.persist.bundle import MANIFEST_CHECKSUM
    old = vbow.ImageIndex.load(bundle)
    new = vbow.ImageIndex.load(old.save(tmp_path / "again"))
    assert MANIFEST_CHECKSUM in json.loads((tmp_path / "again" / "manifest.json").read_text())
    cat = make_catalog(**GOLDEN_CATALOG)
    assert new.keys == old.keys
    for p in cat.photos:
        a, b = old.search(p.image, top_k=3), new.search(p.image, top_k=3)
        assert [(m.key, m.score, m.inliers) for m in a.matches] == \
            [(m.key, m.score, m.inliers) for m in b.matches]


@pytest.mark.parametrize("bundle", GOLDEN, ids=[p.name for p in GOLDEN])
def test_golden_bundle_files_are_plain_regular_files(bundle):
    """The committed bundle must pass the no-symlink rule itself (a checkout could turn files
    into links, e.g. with git-lfs or annex, which loading refuses)."""
    assert all(p.is_file() and not p.is_symlink() for p in bundle.iterdir())
