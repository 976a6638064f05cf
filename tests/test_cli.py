"""The ``vbow`` command (vbow.apps.cli.main with argument lists) on a generated dataset folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vbow.apps.cli import main
from vbow.synthetic import make_catalog, write_catalog


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """8 products, one photo each, written as a dataset folder with groundtruth.csv."""
    root = tmp_path_factory.mktemp("cli") / "shop"
    write_catalog(make_catalog(8, 1, seed=2, difficulty=0.5), root)
    return root


def groundtruth(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(catalog image -> group, query image -> group) read with the csv module."""
    catalog, queries = {}, {}
    with open(root / "groundtruth.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            (catalog if row["role"] == "db" else queries)[row["image"]] = row["group"]
    return catalog, queries


@pytest.fixture(scope="module")
def bundle(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-index") / "shop.vbow"
    assert main(["index", str(dataset), "--out", str(out), "--jobs", "1"]) == 0
    assert (out / "manifest.json").is_file()
    return out


def test_index_then_query_json(dataset, bundle, capsys):
    capsys.readouterr()
    catalog, queries = groundtruth(dataset)
    photos = sorted(queries)
    paths = [str(dataset / p) for p in photos]
    assert main(["query", str(bundle), *paths, "--json", "--top", "3"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == len(photos)
    right = 0
    for path, rel, line in zip(paths, photos, lines):
        record = json.loads(line)
        assert record["query"] == path
        assert 1 <= len(record["results"]) <= 3
        for res in record["results"]:
            assert set(res) >= {"key", "score", "inliers"}
            assert res["key"] in catalog
            assert isinstance(res["inliers"], int) and isinstance(res["score"], float)
        right += catalog[record["results"][0]["key"]] == queries[rel]
    assert right >= len(photos) - 1


def test_query_text_output_and_no_rerank(dataset, bundle, capsys):
    capsys.readouterr()
    _, queries = groundtruth(dataset)
    photo = str(dataset / sorted(queries)[0])
    assert main(["query", str(bundle), photo, "--no-rerank", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert all(r["inliers"] == 0 for r in record["results"])
    assert main(["query", str(bundle), photo]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{photo}:") and "inliers" in out


def test_query_with_an_unreadable_photo(dataset, bundle, tmp_path, capsys):
    capsys.readouterr()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    _, queries = groundtruth(dataset)
    good = str(dataset / sorted(queries)[1])
    assert main(["query", str(bundle), str(bad), good, "--json"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["results"] == [] and str(bad) in first["error"]
    assert json.loads(lines[1])["results"]
    assert str(bad) in captured.err


def test_bad_bundle_path_exits_2_naming_the_file(tmp_path, capsys, dataset):
    capsys.readouterr()
    missing = tmp_path / "no-such-index.vbow"
    _, queries = groundtruth(dataset)
    assert main(["query", str(missing), str(dataset / sorted(queries)[0])]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "error" in err
    # a directory that is not a bundle names its manifest
    (tmp_path / "empty.vbow").mkdir()
    assert main(["query", str(tmp_path / "empty.vbow"), str(dataset / sorted(queries)[0])]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_index_of_a_missing_folder_exits_2(tmp_path, capsys):
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert main(["index", str(missing), "--out", str(tmp_path / "x.vbow"), "--jobs", "1"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_unknown_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["index", "somewhere", "--out", "x", "--preset", "surf"])
    assert info.value.code == 2
    assert "orb" in capsys.readouterr().err


def test_evaluate_json(dataset, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(dataset), "--json"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    report = json.loads(lines[-1])
    assert {"dataset", "n_db", "n_queries", "ns", "recall_at_1", "map", "seconds"} <= set(report)
    catalog, queries = groundtruth(dataset)
    assert report["dataset"] == dataset.name
    assert report["n_db"] == len(catalog) and report["n_queries"] == len(queries)
    assert report["ns"] is None                       # no role-"both" images
    assert report["recall_at_1"] >= 0.8
    # one catalog image per product: AP is 1 / rank of it, so mAP >= recall@1
    assert report["recall_at_1"] - 1e-9 <= report["map"] <= 1
    assert isinstance(report["seconds"], (int, float)) and report["seconds"] > 0


def test_version(capsys):
    import vbow

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert vbow.__version__ in capsys.readouterr().out
