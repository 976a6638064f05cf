"""vbow.eval.datasets: groundtruth.csv parsing, folder scanning, and the real datasets' files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SHARED_DATASETS
from hypothesis import given
from hypothesis import strategies as st

from vbow.eval.datasets import ROLES, load_source, read_groundtruth, read_manifest, scan_folder
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


# --------------------------------------------------------------------------- safety and manifests

def test_scan_includes_gif(tmp_path):
    write(tmp_path / "imgs" / "anim.GIF", "x")
    write(tmp_path / "imgs" / "still.gif", "x")
    assert [im.relative for im in scan_folder(tmp_path / "imgs").images] == ["anim.GIF", "still.gif"]


def test_scan_reports_links_it_does_not_follow(tmp_path):
    root = tmp_path / "imgs"
    write(root / "real.jpg", "x")
    write(tmp_path / "outside" / "secret.jpg", "x")
    (root / "sub").mkdir()
    (root / "sub" / "inside-link.jpg").symlink_to(root / "real.jpg")       # stays inside: kept
    (root / "escape.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")  # leaves the folder
    (root / "dangling.png").symlink_to(root / "gone.png")
    (root / "linked-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    os.mkfifo(root / "pipe.jpg")
    ds = scan_folder(root)
    assert [im.relative for im in ds.images] == ["real.jpg", "sub/inside-link.jpg"]
    reasons = {Path(s.split(": ", 1)[0]).name: s.split(": ", 1)[1] for s in ds.skipped}
    assert set(reasons) == {"escape.jpg", "dangling.png", "linked-dir", "pipe.jpg"}
    assert "outside" in reasons["escape.jpg"]
    assert "dangling" in reasons["dangling.png"] and "gone.png" in reasons["dangling.png"]
    assert "not a regular file" in reasons["pipe.jpg"]
    assert "not entered" in reasons["linked-dir"]
    assert not any("secret" in im.relative for im in ds.images)


@pytest.mark.parametrize("rel", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg",
                                 "c:x.jpg", "\\\\server\\share\\x.jpg", "a/..\\..\\x.jpg",
                                 "sub/escape.jpg", "bad\x00name.jpg"])
@pytest.mark.parametrize("kind", ["groundtruth", "manifest"])
def test_csv_paths_must_stay_in_the_folder(tmp_path, rel, kind):
    root = tmp_path / "set"
    write(tmp_path / "x.jpg", "x")
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "escape.jpg").symlink_to(tmp_path / "x.jpg")
    if kind == "groundtruth":
        text = f"image,group,role\nok.jpg,1,db\n\"{rel}\",1,db\n"
    else:
        text = f"key,path\nk1,ok.jpg\nk2,\"{rel}\"\n"
    csv_path = write(root / f"{kind}.csv", text)
    with pytest.raises(DatasetError) as info:
        load_source(csv_path)
    assert f"{csv_path}:3" in str(info.value)
    assert isinstance(info.value, ValueError)


SEGMENTS = st.sampled_from(["a", "b", "..", ".", "c.jpg", "", "link", "d.png"])


@given(parts=st.lists(SEGMENTS, min_size=1, max_size=5), absolute=st.booleans())
def test_accepted_csv_paths_resolve_inside_the_folder(tmp_path_factory, parts, absolute):
    """Property: a groundtruth path is refused, or it resolves inside the csv's folder."""
    base = tmp_path_factory.mktemp("prop")
    root = base / "set"
    root.mkdir()
    (root / "link").symlink_to(base, target_is_directory=True)          # a link out of the set
    rel = ("/" if absolute else "") + "/".join(parts)
    if not rel.strip("/"):
        return
    csv_path = write(root / "groundtruth.csv", f"image,group,role\n\"{rel}\",1,db\n")
    try:
        ds = read_groundtruth(csv_path)
    except DatasetError:
        return
    assert not absolute and ".." not in parts and "link" not in parts
    (image,) = ds.images
    assert image.path.resolve().is_relative_to(root.resolve())


def test_read_manifest_keys_and_metadata(tmp_path):
    csv_path = write(tmp_path / "shop" / "catalog.csv",
                     "key,path,category,brand\n"
                     "SKU-1,img/a.jpg,tea,Acme\n"
                     "SKU-2, img/b.png ,coffee,\n"
                     "\n"
                     "SKU-ä,img/c.gif,,Björk\n")
    ds = load_source(csv_path)
    assert ds == read_manifest(csv_path)
    assert [im.catalog_key for im in ds.images] == ["SKU-1", "SKU-2", "SKU-ä"]
    assert [im.relative for im in ds.images] == ["img/a.jpg", "img/b.png", "img/c.gif"]
    assert ds.images[1].path == tmp_path / "shop" / "img" / "b.png"
    assert [dict(im.metadata) for im in ds.images] == [
        {"category": "tea", "brand": "Acme"}, {"category": "coffee"}, {"brand": "Björk"}]
    assert all(im.role == "db" for im in ds.images) and len(ds.catalog) == 3 and not ds.queries


def test_manifest_without_key_column_keys_by_path(tmp_path):
    csv_path = write(tmp_path / "m.csv", "path,colour\nx/1.jpg,red\n2.jpg,blue\n")
    ds = load_source(csv_path)
    assert [im.catalog_key for im in ds.images] == ["x/1.jpg", "2.jpg"]
    assert [im.key for im in ds.images] == ["x/1.jpg", "2.jpg"]


@pytest.mark.parametrize("text, fragment", [
    ("key,file\nk,a.jpg\n", "'path' column"),
    ("key,path,key\nk,a.jpg,k\n", "more than once"),
    ("key,path,\nk,a.jpg,x\n", "empty column name"),
    ("key,path\nk,a.jpg\nk,b.jpg\n", "already used on line 2"),
    ("key,path\nk,a.jpg,extra\n", "expected 2 columns"),
    ("key,path\nk,\n", "empty path"),
    ("key,path\n,a.jpg\n", "empty key"),
])
def test_manifest_errors(tmp_path, text, fragment):
    csv_path = write(tmp_path / "m.csv", text)
    with pytest.raises(DatasetError, match=fragment) as info:
        read_manifest(csv_path)
    assert str(csv_path) in str(info.value)


def test_a_csv_of_neither_kind_is_refused(tmp_path):
    csv_path = write(tmp_path / "notes.csv", "name,size\na,1\n")
    with pytest.raises(DatasetError, match="neither"):
        load_source(csv_path)


def test_a_csv_that_is_not_utf8_is_a_dataset_error(tmp_path):
    csv_path = tmp_path / "groundtruth.csv"
    csv_path.write_bytes("image,group,role\ncafé.jpg,1,db\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="UTF-8"):
        read_groundtruth(csv_path)


def test_scan_reports_names_that_are_not_utf8(tmp_path):
    root = tmp_path / "imgs"
    write(root / "good.jpg", "x")
    latin1 = os.path.join(os.fsencode(root), "café.jpg".encode("latin-1"))
    with open(latin1, "wb") as fh:
        fh.write(b"x")
    ds = scan_folder(root)
    assert [im.relative for im in ds.images] == ["good.jpg"]
    (problem,) = ds.skipped
    assert "not valid UTF-8" in problem and "caf\\xe9.jpg" in problem
    problem.encode("utf-8")                             # the report itself prints anywhere
