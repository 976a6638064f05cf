"""vbow.persist.bundle: round trips, atomic saves, and typed errors that name the bad file."""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vbow.persist import bundle as bundle_module
from vbow.persist import checksum as checksum_module
from vbow.persist.bundle import (MANIFEST, MANIFEST_CHECKSUM, load_bundle, manifest_checksum,
                                  save_bundle)
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


def test_saving_again_keeps_one_previous_generation(tmp_path):
    path = save(tmp_path / "b", sample_arrays(0))
    first = files_of(path)
    save(path, sample_arrays(1))
    _, loaded = load_bundle(path, FMT, 1, mmap=False)
    check_same(loaded, sample_arrays(1))
    second = files_of(path)
    assert first <= second                                   # generation 1 kept for old readers
    assert len(second) == 2 * len(sample_arrays()) + 1
    assert json.loads((path / MANIFEST).read_text())["generation"] == 2
    save(path, sample_arrays(2))
    third = files_of(path)
    assert third.isdisjoint(first - {MANIFEST})              # the generation before last is gone
    assert len(third) == 2 * len(sample_arrays()) + 1
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(2))


def test_failed_save_leaves_the_previous_bundle_intact(tmp_path, monkeypatch):
    path = save(tmp_path / "b", sample_arrays(0))
    before = files_of(path)
    manifest_before = (path / MANIFEST).read_bytes()
    real_write = np.lib.format.write_array
    calls = {"n": 0}

    def failing_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(BundleError, match="simulated") as info:
        save(path, sample_arrays(1))
    monkeypatch.undo()
    assert isinstance(info.value, OSError) and ".g2.npy" in str(info.value)  # names the file
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
    # refused before anything is written
    assert not (tmp_path / "b").exists()


def test_saving_over_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(BundleError) as info:
        save(target)
    assert str(target) in str(info.value)


# --------------------------------------------------------------------------- load errors


def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def write_manifest(path: Path, manifest: dict, *, checksum: bool = True) -> None:
    """Rewrite the manifest; with ``checksum`` its CRC is recomputed (an edit, not corruption),
    so the checks behind the manifest checksum are the ones tested."""
    if checksum:
        manifest = {**manifest, MANIFEST_CHECKSUM: manifest_checksum(manifest)}
    (path / MANIFEST).write_text(json.dumps(manifest))


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
    write_manifest(path, manifest)
    expect(BundleFormatError, path, names=array_file(path, "f32"))
    manifest["arrays"]["f32"] = {"oops": 1}
    write_manifest(path, manifest)
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
    for dtype, names in (("|O", path / MANIFEST), ("<f8", target)):
        # an object dtype in the manifest is refused there; a numeric one disagrees with the header
        manifest["arrays"]["evil"] = {"file": target.name, "dtype": dtype, "shape": [2],
                                      "bytes": target.stat().st_size,
                                      "crc32": zlib.crc32(target.read_bytes())}
        write_manifest(path, manifest)
        for mmap in (True, False):
            expect(BundleFormatError, path, names=names, mmap=mmap)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/passwd", "sub/dir.npy", 7])
def test_manifest_file_names_must_stay_inside_the_bundle(tmp_path, name):
    path = save(tmp_path / "b")
    np.save(tmp_path / "outside.npy", np.arange(3))
    manifest = manifest_of(path)
    manifest["arrays"]["u8"]["file"] = name
    write_manifest(path, manifest)
    expect(BundleFormatError, path, names=path / MANIFEST)


# ----------------------------------------------------------------- versions and the manifest


@pytest.mark.parametrize("version", [0, -1, True, False, "2", "1", 1.0, None, [1], {"v": 1}])
def test_only_known_format_versions_load(tmp_path, version):
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    manifest["format_version"] = version
    write_manifest(path, manifest)
    err = expect(BundleFormatError, path, names=path / MANIFEST)
    assert not isinstance(err, BundleVersionError)
    assert repr(version) in str(err)                         # names the value found


def test_a_version_below_the_oldest_known_is_refused(tmp_path):
    path = save(tmp_path / "b", version=1)
    with pytest.raises(BundleFormatError, match="not a known version"):
        load_bundle(path, FMT, 3, min_version=2)


@pytest.mark.parametrize("generation", [0, -3, True, "1", 1.5, None])
def test_generation_must_be_a_positive_int(tmp_path, generation):
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    manifest["generation"] = generation
    write_manifest(path, manifest)
    expect(BundleFormatError, path, names=path / MANIFEST)


def test_an_edited_manifest_fails_its_checksum(tmp_path):
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    manifest["answer"] = 43
    write_manifest(path, manifest, checksum=False)
    expect(BundleFormatError, path, names=path / MANIFEST)
    assert load_bundle(path, FMT, 1, verify_checksums=False)[0]["answer"] == 43


def test_the_manifest_checksum_ignores_layout_but_not_values(tmp_path):
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=7, sort_keys=True))  # same values
    load_bundle(path, FMT, 1)
    manifest["answer"] = 42.0                                 # 42 and 42.0 differ in JSON
    (path / MANIFEST).write_text(json.dumps(manifest))
    expect(BundleFormatError, path, names=path / MANIFEST)


def test_a_manifest_without_a_checksum_still_loads(tmp_path, caplog):
    """Bundles written before manifests carried their CRC (the golden bundle) keep loading."""
    path = save(tmp_path / "b")
    manifest = manifest_of(path)
    del manifest[MANIFEST_CHECKSUM]
    write_manifest(path, manifest, checksum=False)
    with caplog.at_level("WARNING", logger="vbow.persist.bundle"):
        check_same(load_bundle(path, FMT, 1)[1], sample_arrays())
    assert "checksum" in caplog.text


@pytest.mark.parametrize("text", ['{"a": NaN, "arrays": {}}', "[" * 100_000, '{"a": 1e999999}',
                                  '{"arrays": ' + "[" * 50_000 + "]" * 50_000 + "}"])
def test_hostile_manifests_are_typed_errors(tmp_path, text):
    path = save(tmp_path / "b")
    (path / MANIFEST).write_text(text)
    expect(BundleFormatError, path, names=path / MANIFEST)


def test_an_oversized_manifest_is_refused_unread(tmp_path, monkeypatch):
    path = save(tmp_path / "b")
    monkeypatch.setattr(bundle_module, "MAX_MANIFEST_BYTES", 100)
    err = expect(BundleFormatError, path, names=path / MANIFEST)
    assert "100" in str(err)


# ----------------------------------------------------------------------------- npy headers


def rewrite_header(target: Path, header: dict) -> None:
    """Replace a .npy header keeping the file's length (the header is padded to the same size)."""
    data = target.read_bytes()
    old_len = 10 + int.from_bytes(data[8:10], "little")
    text = repr(header).encode("latin1")
    text = text + b" " * (old_len - 10 - len(text) - 1) + b"\n"
    assert len(text) == old_len - 10
    target.write_bytes(data[:10] + text + data[old_len:])


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("header", [
    {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)},       # 8 TiB claimed
    {"descr": "<f8", "fortran_order": False, "shape": (2 ** 62, 2 ** 62)},
    {"descr": "<f8", "fortran_order": False, "shape": (-7,)},
    {"descr": "<f8", "fortran_order": True, "shape": (7,)},
    {"descr": "<f4", "fortran_order": False, "shape": (14,)},             # same byte count
    {"descr": "|O", "fortran_order": False, "shape": (7,)},
    {"descr": [("a", "<f8")], "fortran_order": False, "shape": (7,)},
    {"descr": "<f8", "shape": (7,)},
    {"descr": "<f8", "fortran_order": False, "shape": (7,), "extra": 1},
])
def test_npy_headers_that_disagree_are_refused_before_allocating(tmp_path, header, verify):
    path = save(tmp_path / "b")
    target = array_file(path, "f64")
    rewrite_header(target, header)
    manifest = manifest_of(path)
    manifest["arrays"]["f64"]["crc32"] = zlib.crc32(target.read_bytes())  # checksum can't help
    write_manifest(path, manifest)
    expect(BundleFormatError, path, names=target, verify_checksums=verify)


@pytest.mark.parametrize("garbage", [b"{'descr': '<f8' 'fortran_order': False, 'shape': (7,",
                                     b"{" * 40, b"\xff\xfe\x00" * 10, b"'''", b"(" * 60])
def test_unparseable_npy_headers_are_typed_errors(tmp_path, garbage):
    path = save(tmp_path / "b")
    target = array_file(path, "f64")
    data = bytearray(target.read_bytes())
    data[10:10 + len(garbage)] = garbage
    target.write_bytes(bytes(data))
    expect(BundleFormatError, path, names=target, verify_checksums=False)


# ------------------------------------------------------------------ links, pipes, names


def test_a_symlinked_array_file_is_refused(tmp_path):
    path = save(tmp_path / "b")
    target = array_file(path, "u8")
    outside = tmp_path / "outside.npy"
    outside.write_bytes(target.read_bytes())               # identical bytes: crc and size agree
    target.unlink()
    target.symlink_to(outside)
    for mmap in (True, False):
        err = expect(BundleFormatError, path, names=target, mmap=mmap)
        assert "symbolic link" in str(err)


def test_a_symlinked_manifest_is_refused(tmp_path):
    path = save(tmp_path / "b")
    outside = tmp_path / "manifest-outside.json"
    outside.write_bytes((path / MANIFEST).read_bytes())
    (path / MANIFEST).unlink()
    (path / MANIFEST).symlink_to(outside)
    expect(BundleFormatError, path, names=path / MANIFEST)


@pytest.mark.parametrize("which", ["array", "manifest"])
def test_a_fifo_in_the_bundle_does_not_block(tmp_path, which):
    path = save(tmp_path / "b")
    target = array_file(path, "u8") if which == "array" else path / MANIFEST
    target.unlink()
    os.mkfifo(target)
    t = time.perf_counter()
    expect(BundleFormatError, path, names=target)
    assert time.perf_counter() - t < 5


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "", "a.b", "ü", 7, "x" * 129,
                                  "manifest.json"])
def test_array_names_are_validated_on_save(tmp_path, name):
    with pytest.raises(BundleError) as info:
        save_bundle(tmp_path / "b", FMT, 1, {}, {"ok": np.ones(3), name: np.ones(2)})
    assert str(tmp_path / "b") in str(info.value)
    assert not (tmp_path / "b").exists() and not (tmp_path / "escape.g1.npy").exists()


@pytest.mark.parametrize("meta", [{"generation": 9}, {"arrays": {}}, {"format": "x"},
                                  {MANIFEST_CHECKSUM: 1}, {"x": float("nan")}, {"x": object()}])
def test_meta_must_be_plain_json_without_reserved_fields(tmp_path, meta):
    path = save(tmp_path / "b")
    before = files_of(path)
    with pytest.raises(BundleError):
        save_bundle(path, FMT, 1, meta, sample_arrays(1))
    assert files_of(path) == before
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays())


@pytest.mark.parametrize("bad", ["/abs", "../victim", "sub/../../victim"])
def test_save_never_deletes_what_an_old_manifest_names_outside(tmp_path, bad):
    path = save(tmp_path / "b")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    name = str(victim) if bad == "/abs" else bad
    manifest = manifest_of(path)
    manifest["arrays"]["u8"]["file"] = name
    write_manifest(path, manifest)
    save(path, sample_arrays(1))
    save(path, sample_arrays(2))
    assert victim.read_text() == "precious"
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(2))


def test_save_does_not_write_through_a_link_planted_at_the_next_name(tmp_path):
    path = save(tmp_path / "b")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for name in sample_arrays():
        (path / f"{name}.g2.npy").symlink_to(victim)         # the predictable next names
    (path / ".manifest.planted.tmp").symlink_to(victim)
    save(path, sample_arrays(1))                             # stale names are unlinked first
    assert victim.read_text() == "precious"
    assert not any(p.is_symlink() for p in path.iterdir())
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(1))


def test_a_link_planted_after_the_cleanup_is_refused_not_followed(tmp_path, monkeypatch):
    path = save(tmp_path / "b")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    real_remove = bundle_module._remove

    def remove_then_plant(dfd, names, where):   # a race: the link appears just after cleanup
        n = real_remove(dfd, names, where)
        if not (path / "f64.g2.npy").is_symlink():
            (path / "f64.g2.npy").symlink_to(victim)
        return n

    monkeypatch.setattr(bundle_module, "_remove", remove_then_plant)
    with pytest.raises(BundleError) as info:
        save(path, sample_arrays(1))
    monkeypatch.undo()
    assert "f64.g2.npy" in str(info.value)
    assert victim.read_text() == "precious"
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(0))


def test_the_next_save_cleans_up_after_killed_saves(tmp_path):
    path = save(tmp_path / "b")
    save(path, sample_arrays(1))
    leftovers = ["f64.g3.npy", "u8.g3.npy", "f32.g17.npy", "ghost.g1.npy", "f64.g2.npy.x",
                 ".manifest.g3.abcdef.tmp", ".manifest.xyz.tmp"]
    for name in leftovers:
        (path / name).write_bytes(b"half written")
    (path / "README.txt").write_text("not ours")
    (path / "notes.g5.npy.d").mkdir()
    save(path, sample_arrays(2))
    left = files_of(path)
    # gone, or (f64.g3, u8.g3) written anew by this save; f64.g2.npy.x is not a bundle name
    assert left & set(leftovers) == {"f64.g2.npy.x", "f64.g3.npy", "u8.g3.npy"}
    assert all((path / n).read_bytes() != b"half written" for n in ("f64.g3.npy", "u8.g3.npy"))
    assert {"README.txt", "notes.g5.npy.d"} <= left
    assert {p for p in left if p.endswith(".npy")} == \
        {f"{n}.g{g}.npy" for n in sample_arrays() for g in (2, 3)}
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(2))


def test_save_over_an_unreadable_manifest_keeps_the_newest_files_and_loads(tmp_path):
    path = save(tmp_path / "b")
    (path / MANIFEST).write_text("{garbage")
    save(path, sample_arrays(1))
    assert manifest_of(path)["generation"] == 2
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays(1))


def test_a_reader_whose_manifest_was_switched_loads_again(tmp_path, monkeypatch):
    """A reader that read generation 1's manifest, then two saves happened before it opened the
    files (generation 1 deleted): it starts again from the new manifest."""
    path = save(tmp_path / "b", sample_arrays(0))
    real_read, real_load = bundle_module._read_manifest, bundle_module._load_once
    calls = {"read": 0, "load": 0}

    def read_then_two_saves(dfd, where):
        read = real_read(dfd, where)
        calls["read"] += 1
        if calls["read"] == 1:
            save(path, sample_arrays(1))
            save(path, sample_arrays(2))
        return read

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "_read_manifest", read_then_two_saves)
    monkeypatch.setattr(bundle_module, "_load_once", counting_load)
    manifest, loaded = load_bundle(path, FMT, 1)
    assert calls["load"] == 2 and manifest["generation"] == 3
    check_same(loaded, sample_arrays(2))


def test_a_missing_file_under_an_unchanged_manifest_is_not_retried(tmp_path, monkeypatch):
    path = save(tmp_path / "b")
    array_file(path, "u8").unlink()
    real_load = bundle_module._load_once
    calls = {"n": 0}

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "_load_once", counting)
    expect(BundleFormatError, path, names=array_file(path, "u8"))
    assert calls["n"] == 1


def test_save_errors_from_the_os_are_typed_and_name_the_file(tmp_path):
    with pytest.raises(BundleError) as info:
        save(Path("/proc/vbow-cannot-write-here"))
    assert "/proc/vbow-cannot-write-here" in str(info.value)


@given(data=st.data())
def test_any_flipped_byte_is_caught_by_the_checksums(tmp_path_factory, data):
    """Property: a bundle with one byte changed anywhere (array files or manifest) either
    raises a typed BundleError or (a no-op such as JSON whitespace) loads the same arrays."""
    path = save(tmp_path_factory.mktemp("f") / "b")
    files = sorted(p for p in path.iterdir())
    target = data.draw(st.sampled_from(files))
    blob = bytearray(target.read_bytes())
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    target.write_bytes(bytes(blob))
    try:
        _, loaded = load_bundle(path, FMT, 1, mmap=data.draw(st.booleans()))
    except BundleError as exc:
        assert str(path) in str(exc)
    else:
        check_same(loaded, sample_arrays())


# ------------------------------------------------------------------ structural checks (validate)
from vbow.persist import validate as validate_module  # noqa: E402


@given(st.lists(st.text(max_size=6), max_size=40))
def test_unique_string_check_agrees_with_a_set(strings):
    """Differential: the vectorised hash check finds a duplicate exactly when a set does."""
    encoded = [s.encode("utf-8") for s in strings]
    blob = np.frombuffer(b"".join(encoded), np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    checker = validate_module._Checker({"arrays": {}}, {}, "/bundle")
    if len(set(strings)) == len(strings):
        checker.unique_strings("keys_blob", blob, offsets)
    else:
        with pytest.raises(BundleFormatError, match="more than once"):
            checker.unique_strings("keys_blob", blob, offsets)


def test_unique_string_check_survives_hash_collisions(monkeypatch):
    """With every hash equal (base 0), distinct strings still pass and a duplicate fails."""
    monkeypatch.setattr(validate_module, "_HASH_BASE", 0)
    checker = validate_module._Checker({"arrays": {}}, {}, "/bundle")
    for strings, dup in ((["ab", "ba", "c", "d"], False), (["ab", "ba", "ab"], True)):
        encoded = [s.encode() for s in strings]
        blob = np.frombuffer(b"".join(encoded), np.uint8)
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
        if dup:
            with pytest.raises(BundleFormatError):
                checker.unique_strings("keys_blob", blob, offsets)
        else:
            checker.unique_strings("keys_blob", blob, offsets)


@given(st.lists(st.lists(st.integers(0, 40), max_size=8), min_size=1, max_size=6),
       st.integers(1, 5), st.integers(1, 45))
def test_postings_order_check_agrees_with_a_loop(per_word, chunk_exp, n_docs):
    """Differential against plain loops (order within each word, then range), with chunks
    small enough to split words."""
    postings = np.array([d << 2 | 1 for word in per_word for d in word], np.uint32)
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in per_word])]).astype(np.int64)
    ordered = all(a < b for word in per_word for a, b in zip(word, word[1:]))
    in_range = all(d < n_docs for word in per_word for d in word)
    checker = validate_module._Checker({"arrays": {}}, {}, "/bundle")
    import unittest.mock
    with unittest.mock.patch.object(validate_module, "CHUNK", chunk_exp):
        if ordered and in_range:
            checker.postings_in_order("postings_postings", postings, offsets, n_docs, 2)
        else:
            with pytest.raises(BundleFormatError, match="ascending" if not ordered else "range"):
                checker.postings_in_order("postings_postings", postings, offsets, n_docs, 2)


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine_agrees_with_zlib(a, b):
    assert checksum_module.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("piece", [7, 64, 4096])
def test_files_checksummed_in_pieces_on_threads_match_zlib(tmp_path, monkeypatch, piece):
    """The piecewise CRC of a file (pieces on a thread pool, combined) is zlib's CRC-32, on
    save (recorded) and on load (checked), and still catches a flipped byte."""
    monkeypatch.setattr(checksum_module, "CRC_PIECE_BYTES", piece)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    path = save(tmp_path / "b")
    for spec in manifest_of(path)["arrays"].values():
        assert spec["crc32"] == zlib.crc32((path / spec["file"]).read_bytes())
    check_same(load_bundle(path, FMT, 1)[1], sample_arrays())
    target = array_file(path, "f32")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 4
    target.write_bytes(bytes(data))
    expect(BundleFormatError, path, names=target)
