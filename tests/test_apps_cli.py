"""The application commands: decide, detect, classify and duplicates, with --json on stdout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vbow.apps.cli import main
from vbow.synthetic import make_relisting, make_shelf_scene


def _write(path, image) -> str:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buf.tobytes())
    return str(path)


def _json_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_decide_json_names_the_product_or_none(index_bundle, catalog, held_out, tmp_path,
                                               capsys):
    _, unknown = held_out
    photos = [catalog.photos[0], catalog.photos[5], unknown[0]]
    paths = [_write(tmp_path / f"p{i}.png", p.image) for i, p in enumerate(photos)]
    paths.append(_write(tmp_path / "black.png", np.zeros((100, 100, 3), np.uint8)))
    capsys.readouterr()
    assert main(["decide", str(index_bundle), *paths, "--json"]) == 0
    lines = _json_lines(capsys)
    assert len(lines) == 4
    keys = [ln["decision"]["key"] for ln in lines]
    assert keys[:2] == [catalog.names[photos[0].product], catalog.names[photos[1].product]]
    assert keys[2] is None and lines[2]["decision"]["reason"] != "accepted"
    assert lines[3]["decision"]["reason"] == "no_features"


def test_detect_and_classify_json(index_bundle, full_catalog, catalog, tmp_path, capsys):
    scene = make_shelf_scene(full_catalog.products[:12], np.random.default_rng(2), n_items=3,
                             difficulty=0.4)
    path = _write(tmp_path / "shelf.png", scene.image)
    capsys.readouterr()
    assert main(["detect", str(index_bundle), path, "--json"]) == 0
    (line,) = _json_lines(capsys)
    placed = {full_catalog.names[p.product] for p in scene.placements}
    assert {d["key"] for d in line["detections"]} == placed
    assert all(len(d["outline"]) == 4 for d in line["detections"])
    photo = catalog.photos[2]
    p2 = _write(tmp_path / "photo.png", photo.image)
    assert main(["classify", str(index_bundle), p2, "--json"]) == 0
    (c,) = _json_lines(capsys)
    assert c["label"] == catalog.categories[photo.product]


def test_duplicates_json_finds_a_relisted_copy(catalog, tmp_path, capsys):
    root = tmp_path / "src"
    root.mkdir()
    names = []
    for i in range(4):
        names.append(f"img{i}.png")
        _write(root / names[-1], catalog.products[i])
    copy = make_relisting(catalog.products[1], "crop", np.random.default_rng(0))
    _write(root / "copy.png", copy.image)
    bundle = tmp_path / "dup.vbow"
    assert main(["index", str(root), "--out", str(bundle), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["duplicates", str(bundle), "--root", str(root), "--json"]) == 0
    (report,) = _json_lines(capsys)
    pairs = {frozenset((p["a"], p["b"])): p for p in report["pairs"]}
    assert set(pairs) == {frozenset(("copy.png", "img1.png"))}
    assert next(iter(pairs.values()))["kind"] == "crop"


def test_duplicates_needs_the_image_files(index_bundle, tmp_path, capsys):
    assert main(["duplicates", str(index_bundle), "--root", str(tmp_path), "--json"]) != 0
