"""Keys: one string for one image, valid UTF-8, validated before anything changes."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import vbow


@pytest.fixture()
def index(index_bundle):
    return vbow.ImageIndex.load(index_bundle)


def test_a_single_key_string_for_a_single_image(index, held_out):
    name, product, category = held_out[0][0]
    report = index.add(product, keys="SKU-NEW", metadata={"category": category})
    assert report.added == ("SKU-NEW",)
    assert "SKU-NEW" in index and "S" not in index
    assert index.metadata("SKU-NEW") == {"category": category}


@pytest.mark.parametrize("bad", ["caf\udce9", "", 7, None, b"bytes"])
def test_bad_keys_raise_before_any_change(index, held_out, bad):
    (_, a, _), (_, b, _) = held_out[0][0], held_out[0][1]
    before = index.keys
    with pytest.raises(vbow.InvalidInputError, match="key"):
        index.add([a, b], keys=["fine", bad])
    assert index.keys == before and "fine" not in index


def test_a_latin1_file_name_gives_a_key_that_saves(index, held_out, tmp_path):
    _, product, _ = held_out[0][0]
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    ok, png = cv2.imencode(".png", product)  # (cv2.imwrite crashes on such a name)
    with open(raw, "wb") as fh:
        fh.write(png.tobytes())
    path = os.fsdecode(raw)  # str with a lone surrogate: not valid UTF-8
    report = index.add([path])
    assert len(report.added) == 1 and not report.failed
    key = report.added[0]
    key.encode("utf-8")  # valid UTF-8: undecodable bytes are escaped
    assert key.endswith("caf\\xe9.png")
    loaded = vbow.ImageIndex.load(index.save(tmp_path / "saved.vbow"))
    assert key in loaded


def test_a_key_already_indexed_raises_and_adds_nothing(index, held_out, catalog):
    (_, a, _), (_, b, _) = held_out[0][0], held_out[0][1]
    n = len(index)
    with pytest.raises(vbow.InvalidInputError, match="already indexed"):
        index.add([a, b], keys=["new-one", catalog.names[0]])
    assert len(index) == n and "new-one" not in index


@pytest.mark.parametrize("metadata", [{"f": object()}, {"f": float("nan")}, "text", [1, 2]])
def test_bad_metadata_raises_before_any_change(index, held_out, metadata):
    _, a, _ = held_out[0][0]
    n = len(index)
    with pytest.raises(vbow.InvalidInputError, match="metadata"):
        index.add([a], keys=["m"], metadata=[metadata])
    assert len(index) == n


def test_deeply_nested_metadata_is_a_typed_error(index, held_out):
    _, a, _ = held_out[0][0]
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(vbow.InvalidInputError, match="metadata"):
        index.add([a], keys=["deep"], metadata=[deep])


def test_corrupt_stored_metadata_is_a_bundle_error_not_a_json_error():
    from vbow.search.catalog import Catalog
    from vbow.search.string_table import encode_strings

    blob, offsets = encode_strings(['{"a": 1}', '{"a": ', '[1]'])
    n = 3
    catalog = Catalog.from_arrays(4, {"keys_blob": encode_strings(["x", "y", "z"])[0],
                                      "keys_offsets": encode_strings(["x", "y", "z"])[1],
                                      "meta_blob": blob, "meta_offsets": offsets,
                                      "colour": np.zeros((n, 4), np.uint8),
                                      "scale": np.ones(n, np.float32),
                                      "image_size": np.ones((n, 2), np.int32)})
    assert catalog.metadata(0) == {"a": 1}
    for i in (1, 2):
        with pytest.raises(vbow.BundleFormatError, match=f"image {i}"):
            catalog.metadata(i)
    with pytest.raises(vbow.BundleFormatError):
        catalog.filter_mask({"a": 1}, np.ones(n, bool))
