"""Segmented, resumable build (vbow.distributed.build) against ImageIndex.build, and the same
build on a real dask.distributed LocalCluster (2 worker processes), including a worker killed
mid-build."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vbow import ImageIndex
from vbow.distributed import build_index, load_entries, merge_segments, read_manifest
from vbow.distributed.catalog_source import CatalogEntry, make_batches
from vbow.distributed.segments import WorkDir
from vbow.errors import DatasetError, InvalidInputError
from vbow.persist.bundle import load_bundle
from vbow.synthetic import make_catalog, write_catalog

distributed = pytest.importorskip("distributed", reason="vbow[dask] extra not installed")

SETTINGS = dict(n_words=512, n_jobs=1, max_training_images=10)
N_PRODUCTS = 11


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    """11 synthetic products with photos, a manifest CSV with a metadata column and one
    unreadable file in the middle."""
    root = tmp_path_factory.mktemp("dcat")
    cat = make_catalog(N_PRODUCTS, 1, seed=7, difficulty=0.5)
    write_catalog(cat, root)
    (root / "catalog" / "broken.png").write_bytes(b"\x89PNG not really an image")
    images = sorted((root / "catalog").glob("SKU-*.png"))
    rows = [(f"sku-{i:02d}", f"catalog/{p.name}", cat.categories[i]) for i, p in enumerate(images)]
    rows.insert(5, ("sku-broken", "catalog/broken.png", "none"))
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "path", "category"])
        w.writerows(rows)
    return root, cat


@pytest.fixture(scope="module")
def reference(catalog_dir, tmp_path_factory):
    """ImageIndex.build over the manifest's images, keys and metadata (the local build)."""
    root, _ = catalog_dir
    entries = read_manifest(root / "manifest.csv")
    index = ImageIndex("sift", **SETTINGS)
    report = index.build([e.path for e in entries], keys=[e.key for e in entries],
                         metadata=[dict(e.metadata) for e in entries], progress=False)
    path = index.save(tmp_path_factory.mktemp("ref") / "ref.vbow")
    return path, report


@pytest.fixture(scope="module")
def segmented(catalog_dir, tmp_path_factory):
    """An uninterrupted local segmented build, batches of 3."""
    root, _ = catalog_dir
    out = tmp_path_factory.mktemp("seg") / "seg.vbow"
    report = build_index(root / "manifest.csv", out, batch_size=3, progress=False, **SETTINGS)
    return out, report


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as client:
        yield client


def bundle_arrays(path: Path) -> dict[str, np.ndarray]:
    _, arrays = load_bundle(path, "vbow-index", 99, mmap=False)
    return arrays


def assert_same_index(a: Path, b: Path, photos) -> None:
    """Same keys, metadata, the same stored arrays (postings, words, geometry, colour) and the
    same search results."""
    ia, ib = ImageIndex.load(a), ImageIndex.load(b)
    assert ia.keys == ib.keys
    assert [ia.metadata(k) for k in ia.keys] == [ib.metadata(k) for k in ib.keys]
    xa, xb = bundle_arrays(a), bundle_arrays(b)
    assert sorted(xa) == sorted(xb)
    for name in xa:
        np.testing.assert_array_equal(xa[name], xb[name], err_msg=name)
    for photo in photos:
        ra, rb = ia.search(photo.image, 5), ib.search(photo.image, 5)
        assert ra.keys == rb.keys
        np.testing.assert_allclose([m.score for m in ra], [m.score for m in rb], rtol=1e-6)


def test_manifest_reading(catalog_dir, tmp_path):
    root, cat = catalog_dir
    entries = read_manifest(root / "manifest.csv")
    assert len(entries) == N_PRODUCTS + 1
    assert entries[5].key == "sku-broken"
    assert entries[0].metadata == {"category": cat.categories[0]}
    assert Path(entries[0].path).is_file()
    assert load_entries(root / "manifest.csv") == entries
    bad = tmp_path / "dup.csv"
    bad.write_text("key,path\na,x.png\na,y.png\n")
    with pytest.raises(DatasetError, match="repeats line 2"):
        read_manifest(bad)
    (tmp_path / "nokey.csv").write_text("name,path\na,x.png\n")
    with pytest.raises(DatasetError, match="'key' and 'path'"):
        read_manifest(tmp_path / "nokey.csv")


def test_batches_are_contiguous_and_complete():
    entries = [CatalogEntry(f"k{i}", f"p{i}") for i in range(10)]
    batches = make_batches(entries, 4)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [e for b in batches for e in b] == entries
    with pytest.raises(InvalidInputError):
        make_batches(entries, 0)


def test_segmented_build_equals_local_build(catalog_dir, reference, segmented):
    root, cat = catalog_dir
    ref_path, ref_report = reference
    out, report = segmented
    assert report.n_batches == 4 and report.built == (0, 1, 2, 3) and report.reused == ()
    assert report.added == ref_report.added
    assert [f.source for f in report.failed] == [f.source for f in ref_report.failed]
    assert len(report.failed) == 1 and "broken.png" in report.failed[0].source
    assert_same_index(ref_path, out, cat.photos[:4])


def test_rerun_reuses_every_segment(catalog_dir, segmented):
    root, _ = catalog_dir
    out, first = segmented
    again = build_index(root / "manifest.csv", out, batch_size=3, progress=False, **SETTINGS)
    assert again.reused == (0, 1, 2, 3) and again.built == ()
    assert again.added == first.added


def test_other_plan_in_same_work_dir_is_refused(catalog_dir, segmented):
    root, _ = catalog_dir
    out, _ = segmented
    with pytest.raises(InvalidInputError, match="batch_size"):
        build_index(root / "manifest.csv", out, batch_size=4, progress=False, **SETTINGS)


_KILLED_BUILD = """
import sys
from vbow.distributed import build_index
build_index(sys.argv[1], sys.argv[2], batch_size=2, progress=False,
            n_words=512, n_jobs=1, max_training_images=10)
"""


def test_killed_build_resumes_without_redoing_or_losing(catalog_dir, segmented, tmp_path):
    """SIGKILL a real build process after its second segment is published; the rerun builds only
    the missing batches and ends equal to an uninterrupted build."""
    root, cat = catalog_dir
    out = tmp_path / "killed.vbow"
    segs = Path(f"{out}.segments") / "segments"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(root / "manifest.csv"),
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(segs.glob("batch-*"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the build finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = sorted(int(p.name.split("-")[1]) for p in segs.glob("batch-*"))
    assert len(finished) >= 2 and not out.exists()
    report = build_index(root / "manifest.csv", out, batch_size=2, progress=False, **SETTINGS)
    assert report.reused == tuple(finished)
    assert set(report.built) == set(range(report.n_batches)) - set(finished)
    assert not list(segs.glob(".batch-*"))  # temporary copies of the killed attempt removed
    assert_same_index(segmented[0], out, cat.photos[:3])


def test_merge_refuses_missing_segments(tmp_path, catalog_dir):
    root, _ = catalog_dir
    entries = read_manifest(root / "manifest.csv")[:4]
    build_index(entries, None, work_dir=tmp_path / "w", batch_size=2, merge=False,
                progress=False, **SETTINGS)
    import shutil
    shutil.rmtree(tmp_path / "w" / "segments" / "batch-000001")
    with pytest.raises(InvalidInputError, match="1 of 2 segments"):
        merge_segments(tmp_path / "w")


def test_dask_build_equals_local_build(cluster, catalog_dir, segmented, tmp_path):
    root, cat = catalog_dir
    out = tmp_path / "dask.vbow"
    report = build_index(root / "manifest.csv", out, batch_size=3, client=cluster,
                         progress=False, **SETTINGS)
    local = segmented[1]
    assert report.added == local.added
    assert [(f.source, f.error_type) for f in report.failed] == \
        [(f.source, f.error_type) for f in local.failed]
    work = WorkDir(f"{out}.segments")
    workers = {work.info(b).worker for b in range(report.n_batches)}
    assert len(workers) == 2, f"segments were built by {workers}; expected both workers"
    assert_same_index(segmented[0], out, cat.photos[:3])


def test_dask_build_survives_a_killed_worker(cluster, catalog_dir, segmented, tmp_path):
    """Kill one worker process while segment tasks are running: the scheduler reschedules its
    tasks (the nanny restarts the worker) and no image is lost."""
    root, cat = catalog_dir
    out = tmp_path / "dask-kill.vbow"
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = build_index(root / "manifest.csv", out, batch_size=1,
                                           client=cluster, progress=False, **SETTINGS)
        except BaseException as exc:  # surfaced below
            result["error"] = exc

    pids_before = cluster.run(os.getpid)
    thread = threading.Thread(target=run)
    thread.start()
    segs = Path(f"{out}.segments") / "segments"
    deadline = time.monotonic() + 120
    killed = None
    while time.monotonic() < deadline and thread.is_alive():
        processing = cluster.processing()
        busy = [w for w, tasks in processing.items()
                if any(str(t).startswith("vbow-segment") for t in tasks)]
        if busy and list(segs.glob("batch-*")):
            killed = pids_before[busy[0]]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.02)
    thread.join(300)
    assert killed is not None, "no segment task was seen running"
    assert "error" not in result, result.get("error")
    report = result["report"]
    assert report.added == segmented[1].added
    assert killed not in cluster.run(os.getpid).values()
    assert_same_index(segmented[0], out, cat.photos[:2])


def test_cli_index_on_a_scheduler(cluster, catalog_dir, segmented, tmp_path, capsys):
    from vbow.apps.cli import main

    root, cat = catalog_dir
    out = tmp_path / "cli.vbow"
    code = main(["index", str(root / "manifest.csv"), "--out", str(out), "--scheduler",
                 cluster.scheduler.address, "--batch-size", "3", "--preset", "sift"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "broken.png" in captured.err
    assert ImageIndex.load(out).keys == ImageIndex.load(segmented[0]).keys
