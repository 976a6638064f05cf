"""vbow.eval.datasets: groundtruth.csv parsing, folder scanning, and the real datasets' files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_DATASETS

from vbow.eval.datasets import ROLES, load_source, read_groundtruth, scan_folder
from vbow.errors import DatasetError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_groundtruth(tmp_path):
    csv_path = write(tmp_path / "set" / "groundtruth.csv",
                     "image,group,role\n"
                     "db/a.jpg,1,db\n"
                     "q/a1.jpg,1,query\n"
                     "\n"
                     "both/b.png, 2 , both\n"
                     "noise/x.jpg,,distractor\n")
    ds = read_groundtruth(csv_path)
    assert ds.name == "set" and ds.root == tmp_path / "set"
    assert [im.relative for im in ds.images] == ["db/a.jpg", "q/a1.jpg", "both/b.png", "noise/x.jpg"]
    assert [im.group for im in ds.images] == ["1", "1", "2", None]
    assert ds.images[0].path == tmp_path / "set" / "db" / "a.jpg"
    assert [im.relative for im in ds.catalog] == ["db/a.jpg", "both/b.png", "noise/x.jpg"]
    assert [im.relative for im in ds.queries] == ["q/a1.jpg", "both/b.png"]
    assert ds.has_both
    assert load_source(csv_path).images == ds.images
    assert load_source(tmp_path / "set").images == ds.images


@pytest.mark.parametrize("text, line", [
    ("file,group,role\na.jpg,1,db\n", None),                  # bad header
    ("", None),                                                # no header
    ("image,group,role\na.jpg,1,db\nb.jpg,1,catalog\n", 3),    # unknown role
    ("image,group,role\na.jpg,1,db\n\nb.jpg,1\n", 4),          # missing column
    ("image,group,role\n,1,db\n", 2),                          # empty image path
])
def test_groundtruth_errors_name_the_file_and_line(tmp_path, text, line):
    csv_path = write(tmp_path / "d" / "groundtruth.csv", text)
    with pytest.raises(DatasetError) as info:
        read_groundtruth(csv_path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(csv_path) in message
    if line is not None:
        assert f"{csv_path}:{line}" in message


def test_unknown_role_message_lists_the_roles(tmp_path):
    csv_path = write(tmp_path / "groundtruth.csv", "image,group,role\na.jpg,1,catalogue\n")
    with pytest.raises(DatasetError) as info:
        read_groundtruth(csv_path)
    assert "catalogue" in str(info.value)
    assert all(role in str(info.value) for role in ROLES)


def test_missing_groundtruth(tmp_path):
    with pytest.raises(DatasetError, match="nope.csv"):
        read_groundtruth(tmp_path / "nope.csv")


def test_scan_folder_finds_images_recursively(tmp_path):
    files = ["a.jpg", "sub/b.PNG", "sub/deeper/c.jpeg", "sub/d.webp", "e.TIF"]
    for f in files:
        write(tmp_path / "imgs" / f, "x")
    write(tmp_path / "imgs" / "notes.txt", "x")
    write(tmp_path / "imgs" / "sub" / "data.csv", "x")
    (tmp_path / "imgs" / "folder.jpg").mkdir()                 # a directory, not an image
    ds = scan_folder(tmp_path / "imgs", role="distractor")
    assert sorted(im.relative for im in ds.images) == sorted(files)
    assert [im.path for im in ds.images] == sorted(im.path for im in ds.images)
    assert all(im.role == "distractor" and im.group is None for im in ds.images)
    assert all(im.path == tmp_path / "imgs" / im.relative for im in ds.images)
    assert load_source(tmp_path / "imgs").images == scan_folder(tmp_path / "imgs").images
    with pytest.raises(DatasetError):
        scan_folder(tmp_path / "imgs" / "a.jpg")
    with pytest.raises(DatasetError):
        load_source(tmp_path / "imgs" / "a.jpg")


def test_load_source_of_a_synthetic_catalog(tmp_path):
    from vbow.synthetic import make_catalog, write_catalog

    csv_path = write_catalog(make_catalog(3, 2, seed=0, size=64), tmp_path / "syn")
    ds = load_source(tmp_path / "syn")
    assert len(ds.catalog) == 3 and len(ds.queries) == 6
    assert all(im.path.is_file() for im in ds.images)
    assert ds == read_groundtruth(csv_path)


# --------------------------------------------------------------------------- real datasets

REAL = sorted(p.parent for p in SHARED_DATASETS.glob("*/groundtruth.csv")) \
    if SHARED_DATASETS.is_dir() else []


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(),
                    reason=f"real datasets not present at {SHARED_DATASETS}")
def test_real_datasets_exist():
    assert REAL, f"no groundtruth.csv under {SHARED_DATASETS}"


@pytest.mark.skipif(not REAL, reason=f"real datasets not present at {SHARED_DATASETS}")
@pytest.mark.parametrize("folder", REAL, ids=[p.name for p in REAL])
def test_real_groundtruth_files_parse(folder):
    ds = read_groundtruth(folder / "groundtruth.csv")
    assert ds.images, folder
    assert ds.catalog
    assert all(im.role in ROLES for im in ds.images)
    assert all(im.group for im in ds.images if im.role != "distractor")
    relatives = [im.relative for im in ds.images]
    assert len(set(relatives)) == len(relatives), "an image is listed twice"
    missing = [im.relative for im in ds.images if not im.path.is_file()]
    assert not missing, f"{len(missing)} listed images are missing, e.g. {missing[:3]}"
    if ds.queries:
        catalog_groups = {im.group for im in ds.catalog}
        assert all(im.group in catalog_groups for im in ds.queries), \
            "a query's group has no catalog image"


def test_groundtruth_with_a_byte_order_mark(tmp_path):
    """Spreadsheet programs save CSV as UTF-8 with a BOM."""
    csv_path = tmp_path / "groundtruth.csv"
    csv_path.write_bytes("image,group,role\nä.jpg,1,db\n".encode("utf-8-sig"))
    ds = read_groundtruth(csv_path)
    assert [im.relative for im in ds.images] == ["ä.jpg"]
