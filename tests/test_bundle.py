"""vbow.persist.bundle: round trips, atomic saves, and typed errors that name the bad file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.persist.bundle import MANIFEST, load_bundle, save_bundle
from vbow.errors import BundleError, BundleFormatError, BundleVersionError, VbowError

FMT = "vbow-test"


def sample_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "f32": rng.random((5, 3)).astype(np.float32),
        "f64": rng.random(7),
        "u8": rng.integers(0, 256, 11, dtype=np.uint8),
        "u16": rng.integers(0, 65536, (2, 2, 2), dtype=np.uint16),
        "i64": rng.integers(-10**12, 10**12, 4),
        "big_endian": rng.integers(0, 2**31, 6).astype(">i4"),
        "empty": np.zeros((0, 128), np.float32),
        "bools": rng.random(9) < 0.5,
        "scalar": np.array(3.5),
    }


def save(path: Path, arrays=None, meta=None, version: int = 1) -> Path:
    return save_bundle(path, FMT, version, meta or {"answer": 42}, arrays or sample_arrays())


def check_same(loaded: dict[str, np.ndarray], original: dict[str, np.ndarray]) -> None:
    assert set(loaded) == set(original)
    for name, arr in original.items():
        got = loaded[name]
        assert got.shape == arr.shape, name
        assert got.dtype == arr.dtype.newbyteorder("<"), name      # stored little-endian
        assert got.dtype.byteorder in ("<", "|", "="), name
        np.testing.assert_array_equal(got, arr, err_msg=name)


def files_of(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip(tmp_path, mmap):
    arrays = sample_arrays()
    path = save(tmp_path / "b", arrays, meta={"answer": 42, "nested": {"x": [1, 2]}})
    manifest, loaded = load_bundle(path, FMT, 1, mmap=mmap, verify_checksums=True)
    assert manifest["answer"] == 42 and manifest["nested"] == {"x": [1, 2]}
    assert manifest["format"] == FMT and manifest["format_version"] == 1
    check_same(loaded, arrays)
    for name, arr in loaded.items():
        if mmap and arr.size:
            assert isinstance(arr, np.memmap), name
        if mmap:
            assert not arr.flags.writeable, name
            with pytest.raises(ValueError):
                arr[...] = 0


@given(shape=st.lists(st.integers(0, 5), max_size=3),
       dtype=st.sampled_from(["<f4", ">f8", "<i2", ">u4", "|u1", "<c8", "|b1"]),
       seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(tmp_path_factory, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    arr = (rng.random(shape) * 100).astype(dtype)
    path = save_bundle(tmp_path_factory.mktemp("p") / "b", FMT, 1, {}, {"a": arr})
    _, loaded = load_bundle(path, FMT, 1, mmap=False, verify_checksums=True)
    check_same(loaded, {"a": arr})


def test_saving_again_replaces_the_previous_generation(tmp_path):
    path = save(tmp_path / "b", sample_arrays(0))
    first = files_of(path)
    save(path, sample_arrays(1))
    _, loaded = load_bundle(path, FMT, 1, mmap=False)
    check_same(loaded, sample_arrays(1))
    second = files_of(path)
    assert first.isdisjoint(second - {MANIFEST})            # new file names per generation
    assert len(second) == len(sample_arrays()) + 1           # old generation deleted
    assert json.loads((path / MANIFEST).read_text())["generation"] == 2


def test_failed_save_leaves_the_previous_bundle_intact(tmp_path, monkeypatch):
    path = save(tmp_path / "b", sample_arrays(0))
    before = files_of(path)
    manifest_before = (path / MANIFEST).read_bytes()
    real_save = np.save
    calls = {"n": 0}

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        save(path, sample_arrays(1))
    monkeypatch.undo()
    assert calls["n"] == 3
    assert files_of(path) == before                          # no stray files of generation 2
    assert (path / MANIFEST).read_bytes() == manifest_before
    _, loaded = load_bundle(path, FMT, 1, mmap=False, verify_checksums=True)
    check_same(loaded, sample_arrays(0))


def test_failed_manifest_replace_leaves_the_previous_bundle_intact(tmp_path, monkeypatch):
    path = save(tmp_path / "b", sample_arrays(0))
    before = files_of(path)

    def failing_replace(src, dst, *args, **kwargs):
        raise OSError("power cut (simulated)")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save(path, sample_arrays(1))
    monkeypatch.undo()
    assert files_of(path) == before, files_of(path) ^ before  # no array files, no temp manifest
    _, loaded = load_bundle(path, FMT, 1, mmap=False, verify_checksums=True)
    check_same(loaded, sample_arrays(0))


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(BundleError, match="object"):
        save_bundle(tmp_path / "b", FMT, 1, {}, {"ok": np.ones(3), "bad": np.array([{}, 1], object)})
    # nothing half-written is left to load
    assert not any(p.suffix == ".npy" for p in (tmp_path / "b").iterdir())


def test_saving_over_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(BundleError) as info:
        save(target)
    assert str(target) in str(info.value)


# --------------------------------------------------------------------------- load errors


def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def array_file(path: Path, name: str) -> Path:
    return path / manifest_of(path)["arrays"][name]["file"]


def expect(exc_type, path, *, names: Path, **kwargs):
    with pytest.raises(exc_type) as info:
        load_bundle(path, FMT, 1, **kwargs)
    assert isinstance(info.value, BundleError) and isinstance(info.value, OSError)
    assert isinstance(info.value, VbowError)
    assert str(names) in str(info.value), str(info.value)
    return info.value


@pytest.mark.parametrize("keep", [0, 10, 100, -1])
def test_truncated_array_file(tmp_path, keep):
    path = save(tmp_path / "b")
    target = array_file(path, "f64")
    data = target.read_bytes()
    target.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    expect(BundleFormatError, path, names=target)


def test_array_file_with_a_garbled_header(tmp_path):
    path = save(tmp_path / "b")
    target = array_file(path, "u8")
    data = bytearray(target.read_bytes())
    data[:6] = b"NOTNPY"                         # same size, bad magic
    target.write_bytes(bytes(data))
    expect(BundleFormatError, path, names=target)


@pytest.mark.parametrize("mmap", [True, False])
def test_verify_checksums_detects_a_flipped_byte(tmp_path, mmap):
    path = save(tmp_path / "b")
    target = array_file(path, "f32")
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    expect(BundleFormatError, path, names=target, verify_checksums=True, mmap=mmap)
    load_bundle(path, FMT, 1, verify_checksums=False)    # not checked: loads (size is right)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"format": "vbow-test"}', "\xff\xfe"])
def test_corrupt_manifest(tmp_path, text):
    path = save(tmp_path / "b")
    (path / MANIFEST).write_text(text, encoding="latin-1")
    expect(BundleFormatError, path, names=path / MANIFEST)


def test_missing_manifest_and_missing_directory(tmp_path):
    path = save(tmp_path / "b")
    (path / MANIFEST).unlink()
    expect(BundleFormatError, path, names=path / MANIFEST)
    expect(BundleFormatError, tmp_path / "nowhere", names=tmp_path / "nowhere")


def test_missing_array_file(tmp_path):
    path = save(tmp_path / "b")
    target = array_file(path, "i64")
    target.unlink()
    expect(BundleFormatError, path, names=target)


def test_newer_format_version(tmp_path):
    path = save(tmp_path / "b", version=2)
    err = expect(BundleVersionError, path, names=path / MANIFEST)
    assert "2" in str(err)
    load_bundle(path, FMT, 2)                     # a reader that knows version 2 is fine


def test_wrong_format_name(tmp_path):
    path = save(tmp_path / "b")
    with pytest.raises(BundleFormatError) as info:
        load_bundle(path, "vbow-other", 1)
    assert MANIFEST in str(info.value)


def test_manifest_disagreeing_with_the_file(tmp_path):
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    manifest["arrays"]["f32"]["shape"] = [3, 5]
    (path / MANIFEST).write_text(json.dumps(manifest))
    expect(BundleFormatError, path, names=array_file(path, "f32"))
    manifest["arrays"]["f32"] = {"oops": 1}
    (path / MANIFEST).write_text(json.dumps(manifest))
    expect(BundleFormatError, path, names=path / MANIFEST)


class _Boom:
    """Unpickling this object would create a marker file."""

    marker: Path | None = None

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loading_never_unpickles(tmp_path):
    path = save(tmp_path / "b")
    marker = tmp_path / "code-ran"
    evil = np.empty(2, dtype=object)
    boom = _Boom()
    boom.marker = marker
    evil[0], evil[1] = boom, boom
    target = path / "evil.g1.npy"
    np.save(target, evil, allow_pickle=True)
    assert not marker.exists()
    manifest = manifest_of(path)
    manifest["arrays"]["evil"] = {"file": target.name, "dtype": "|O", "shape": [2],
                                  "bytes": target.stat().st_size, "crc32": 0}
    (path / MANIFEST).write_text(json.dumps(manifest))
    for mmap in (True, False):
        expect(BundleFormatError, path, names=target, mmap=mmap)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/passwd", "sub/dir.npy", 7])
def test_manifest_file_names_must_stay_inside_the_bundle(tmp_path, name):
    path = save(tmp_path / "b")
    np.save(tmp_path / "outside.npy", np.arange(3))
    manifest = manifest_of(path)
    manifest["arrays"]["u8"]["file"] = name
    (path / MANIFEST).write_text(json.dumps(manifest))
    expect(BundleFormatError, path, names=path / MANIFEST)
