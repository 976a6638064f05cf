"""The ``vbow`` command (vbow.apps.cli.main with argument lists) on a generated dataset folder."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
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
    assert main(["evaluate", str(dataset), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)      # stdout holds nothing but the object
    assert report["failed"] == []
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


# --------------------------------------------------------------------------- options and --json

MY_COMMANDS = ("index", "query", "evaluate", "demo")


def test_verbose_after_the_subcommand_counts():
    from vbow.apps.cli import build_parser, verbosity

    parser = build_parser()
    assert verbosity(parser.parse_args(["query", "b.vbow", "x.jpg"])) == 0
    assert verbosity(parser.parse_args(["query", "b.vbow", "x.jpg", "-v"])) == 1
    assert verbosity(parser.parse_args(["-v", "query", "b.vbow", "x.jpg", "-v"])) == 2
    assert verbosity(parser.parse_args(["evaluate", "-vv", "ds"])) == 2
    assert verbosity(parser.parse_args(["-v", "demo"])) == 1


def test_every_subcommand_takes_the_common_options_after_its_name(capsys):
    from vbow.apps.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(MY_COMMANDS) <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, "-v", "--no-progress", "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert "-v, --verbose" in text and "--no-progress" in text, name


@pytest.mark.parametrize("argv, expected", [
    (["index", "--help"], ["(default: sift)", "(default: -1)"]),
    (["query", "--help"], ["(default: 5)"]),
    (["evaluate", "--help"], ["(default: sift)", "(default: 100)"]),
    (["demo", "--help"], ["(default: 100)", "(default: 2)", "(default: sift)", "(default: 0)",
                          "(default: vbow-demo)"]),
])
def test_help_shows_the_defaults(argv, expected, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())     # undo line wrapping
    for fragment in expected:
        assert fragment in text, (argv, fragment)
    assert "(default: None)" not in text and "(default: False)" not in text


def test_progress_flags():
    from vbow.apps.cli import build_parser, progress_setting

    parser = build_parser()
    assert progress_setting(parser.parse_args(["demo"])) is None
    assert progress_setting(parser.parse_args(["demo", "--progress"])) is True
    assert progress_setting(parser.parse_args(["demo", "--no-progress"])) is False
    assert progress_setting(parser.parse_args(["--progress", "demo"])) is True
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--progress", "--no-progress"])


def test_query_json_carries_verified_transform_and_metadata(dataset, bundle, capsys):
    capsys.readouterr()
    catalog, queries = groundtruth(dataset)
    photo = sorted(queries)[0]
    assert main(["query", str(bundle), str(dataset / photo), "--json", "--top", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    best = record["results"][0]
    assert best["verified"] is True and best["inliers"] > 0 and best["rank"] == 0
    transform = np.array(best["transform"], dtype=float)
    assert transform.shape == (3, 3) and np.isfinite(transform).all()
    assert best["metadata"] == {"group": catalog[best["key"]]}
    assert [r["rank"] for r in record["results"]] == list(range(len(record["results"])))
    for r in record["results"]:
        assert r["verified"] == (r["inliers"] > 0)
        assert (r["transform"] is None) == (not r["verified"])


def test_demo_json_stdout_is_one_object(capsys, tmp_path):
    capsys.readouterr()
    status = main(["demo", "--products", "6", "--photos", "1", "--no-output", "--json",
                   "--progress"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["n_products"] == 6 and summary["n_photos"] == 6
    assert 0 <= summary["recall_at_1"] <= 1
    assert status == (0 if summary["recall_at_1"] > 0.5 else 1)
    assert "recall@1" in captured.err                  # the human report went to stderr


def test_errors_with_json_are_json(tmp_path, capsys, dataset):
    capsys.readouterr()
    missing = tmp_path / "absent.vbow"
    assert main(["query", str(missing), str(dataset / "photos" / "photo-0000.jpg"), "--json"]) == 2
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert str(missing) in record["error"] and record["error_type"].endswith("Error")
    assert str(missing) in captured.err
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    assert main(["index", str(empty), "--out", str(tmp_path / "e.vbow"), "--json"]) == 2
    assert "no catalog images" in json.loads(capsys.readouterr().out)["error"]


# --------------------------------------------------------------------------- manifests and safety

def write_manifest(dataset: Path) -> tuple[Path, dict[str, str]]:
    """A manifest of the catalog with SKU keys and the category metadata.csv gives."""
    rows, category = [], {}
    with open(dataset / "metadata.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            key = f"sku:{row['name']}"
            rows.append((key, row["image"], row["category"]))
            category[key] = row["category"]
    path = dataset / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "path", "category"])
        writer.writerows(rows)
    return path, category


def test_index_from_a_manifest_then_filter_by_its_metadata(dataset, tmp_path, capsys):
    manifest, category = write_manifest(dataset)
    out = tmp_path / "m.vbow"
    capsys.readouterr()
    assert main(["index", str(manifest), "--out", str(out), "--jobs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == len(category)
    photo = str(dataset / "photos" / "photo-0000.jpg")
    assert main(["query", str(out), photo, "--json", "--top", "8"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert {r["key"] for r in results} <= set(category)
    assert all(r["metadata"] == {"category": category[r["key"]]} for r in results)
    wanted = sorted(set(category.values()))[:2]
    assert main(["query", str(out), photo, "--json", "--top", "8",
                 *[f"--where=category={c}" for c in wanted]]) == 0
    filtered = json.loads(capsys.readouterr().out)["results"]
    expected = {k for k, c in category.items() if c in wanted}
    assert filtered and {r["key"] for r in filtered} <= expected
    assert main(["query", str(out), photo, "--where", "nonsense"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


def write_gif(path, bgr):
    """Write a BGR uint8 image as a 256-colour GIF (3-3-2 palette), LZW-coded without
    compression: 9-bit codes and a clear code every 254 pixels, so the table never grows past
    9 bits."""
    h, w = bgr.shape[:2]
    r, g, b = (bgr[..., 2] >> 5).astype(np.int64), (bgr[..., 1] >> 5).astype(np.int64), \
        (bgr[..., 0] >> 6).astype(np.int64)
    pixels = (r << 5 | g << 2 | b).ravel()
    i = np.arange(256)
    palette = np.stack([(i >> 5) * 255 // 7, ((i >> 2) & 7) * 255 // 7, (i & 3) * 255 // 3],
                       axis=1).astype(np.uint8).tobytes()
    n_runs = -(-pixels.size // 254)
    padded = np.full(n_runs * 254, -1, np.int64)
    padded[:pixels.size] = pixels
    codes = np.concatenate([np.full((n_runs, 1), 256), padded.reshape(n_runs, 254)], axis=1).ravel()
    codes = np.append(codes[codes >= 0], 257)
    bits = ((codes[:, None] >> np.arange(9)) & 1).astype(np.uint8).ravel()
    data = np.packbits(bits, bitorder="little").tobytes()
    blocks = b"".join(bytes([len(data[s:s + 255])]) + data[s:s + 255]
                      for s in range(0, len(data), 255))
    with open(path, "wb") as fh:
        fh.write(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette +
                 b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08" + blocks + b"\x00;")


def test_index_reports_links_and_takes_gif(dataset, tmp_path, capsys):
    import cv2

    src = tmp_path / "src"
    src.mkdir()
    for name in sorted((dataset / "catalog").iterdir())[:3]:
        (src / name.name).write_bytes(name.read_bytes())
    first = cv2.imread(str(sorted((dataset / "catalog").iterdir())[3]))
    write_gif(src / "extra.gif", first)                 # OpenCV reads GIF; not all builds write it
    assert cv2.imread(str(src / "extra.gif")) is not None
    outside = tmp_path / "outside.png"
    outside.write_bytes(sorted((dataset / "catalog").iterdir())[4].read_bytes())
    (src / "escape.png").symlink_to(outside)
    (src / "dangling.jpg").symlink_to(src / "missing.jpg")
    capsys.readouterr()
    out = tmp_path / "s.vbow"
    assert main(["index", str(src), "--out", str(out), "--jobs", "1", "--json",
                 "--progress"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)                   # bars forced on, stdout still pure
    assert record["added"] == 4                         # 3 PNG + the GIF; neither link
    assert record["failed"] == [] and record["index"] == str(out) and record["n_words"] > 0
    assert "indexing" in captured.err or "features" in captured.err    # bars went to stderr
    skipped = " ".join(record["skipped"])
    assert "escape.png" in skipped and "outside" in skipped
    assert "dangling.jpg" in skipped and "dangling" in skipped
    assert "escape.png" in captured.err and "dangling.jpg" in captured.err


def test_index_refuses_a_groundtruth_that_leaves_its_folder(tmp_path, capsys):
    root = tmp_path / "evil"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (root / "groundtruth.csv").write_text("image,group,role\n../secret.jpg,1,db\n")
    capsys.readouterr()
    assert main(["index", str(root), "--out", str(tmp_path / "x.vbow"), "--json"]) == 2
    record = json.loads(capsys.readouterr().out)
    assert record["error_type"] == "DatasetError"
    assert f"{root / 'groundtruth.csv'}:2" in record["error"] and ".." in record["error"]
    assert not (tmp_path / "x.vbow").exists()


def test_query_of_a_featureless_photo_warns_on_stderr_and_in_json(bundle, tmp_path, capsys):
    import cv2

    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((96, 96, 3), 128, np.uint8))
    capsys.readouterr()
    main(["query", str(bundle), str(blank), "--json"])
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["warnings"], record
    assert str(blank) in captured.err and record["warnings"][0] in captured.err


def test_real_process_streams_and_verbose_after_the_subcommand(dataset, bundle):
    """In a fresh process (logging not yet configured): stdout is JSON only, and ``-v`` given
    after the subcommand turns on INFO logs, which go to stderr."""
    import subprocess
    import sys

    photo = str(dataset / "photos" / "photo-0000.jpg")
    base = [sys.executable, "-m", "vbow.apps.cli", "query", str(bundle), photo, "--json"]
    quiet = subprocess.run(base, capture_output=True, text=True, timeout=300)
    loud = subprocess.run(base + ["-v"], capture_output=True, text=True, timeout=300)
    for proc in (quiet, loud):
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["query"] == photo
    assert "INFO" not in quiet.stderr
    assert "INFO vbow" in loud.stderr
