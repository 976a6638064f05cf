"""Self-describing, versioned bundles: a JSON manifest beside plain ``.npy`` arrays.

Layout of a bundle directory::

    manifest.json                   format name and version, parameters, and for every array its
                                    file, shape, little-endian dtype, byte size and CRC-32
    <name>.g<generation>.npy        one array per file, memory-mappable

Saving is atomic: the arrays of a new *generation* are written under new file names and flushed,
then ``manifest.json`` is replaced in one ``os.replace``, and only then are the previous
generation's files deleted. A crash at any point leaves a manifest that names complete files.
Loading never unpickles (``allow_pickle=False``) and checks every file against the manifest
(shape, dtype, size; CRC-32 on request), raising :class:`vbow.errors.BundleError` subclasses that
name the offending file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vbow.errors import BundleError, BundleFormatError, BundleVersionError
from vbow.search.lazy_array import LazyArray

__all__ = ["save_bundle", "load_bundle", "LazyArray", "MANIFEST"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"




def _write_lazy(target: Path, array: LazyArray) -> None:
    dtype = array.dtype.newbyteorder("<")
    if int(np.prod(array.shape)) == 0:
        with open(target, "wb") as fh:
            np.save(fh, np.zeros(array.shape, dtype), allow_pickle=False)
    else:
        out = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=array.shape)
        array.fill(out)
        out.flush()
        del out
    with open(target, "rb+") as fh:
        os.fsync(fh.fileno())


def _crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / MANIFEST
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleFormatError("not a vbow bundle: manifest.json is missing", manifest_path) from None
    except UnicodeDecodeError as exc:
        raise BundleFormatError(f"corrupt manifest (not UTF-8: {exc})", manifest_path) from None
    except OSError as exc:
        raise BundleFormatError(f"cannot read: {exc}", manifest_path) from exc
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleFormatError(f"corrupt manifest (invalid JSON: {exc})", manifest_path) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise BundleFormatError("corrupt manifest (no 'arrays' table)", manifest_path)
    return manifest


def save_bundle(path: str | os.PathLike, format_name: str, format_version: int,
                meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write a bundle atomically (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Bundle directory (created if needed; an existing bundle there is replaced atomically).
    format_name : str
        E.g. ``"vbow-index"``.
    format_version : int
        Format version written to the manifest.
    meta : dict
        JSON-serialisable parameters and scalars.
    arrays : dict of str to np.ndarray or LazyArray
        Numeric arrays (object dtypes are refused). Stored little-endian. A
        :class:`LazyArray` is written straight into its memory-mapped file.

    Returns
    -------
    Path
        The bundle directory.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BundleError("exists and is not a bundle directory", path)
    path.mkdir(parents=True, exist_ok=True)
    old_files: list[str] = []
    generation = 1
    if (path / MANIFEST).exists():
        try:
            previous = _read_manifest(path)
            generation = int(previous.get("generation", 0)) + 1
            old_files = [spec["file"] for spec in previous["arrays"].values() if "file" in spec]
        except (BundleError, TypeError, ValueError):
            logger.warning("%s: replacing an unreadable manifest", path / MANIFEST)
    table: dict[str, dict[str, Any]] = {}
    written: list[Path] = []  # every file this save created, removed again if it fails
    try:
        for name, array in arrays.items():
            file_name = f"{name}.g{generation}.npy"
            target = path / file_name
            if isinstance(array, LazyArray):
                if array.dtype.hasobject:
                    raise BundleError(f"array {name!r} has an object dtype; refusing to pickle", path)
                written.append(target)
                _write_lazy(target, array)
                dtype_str = array.dtype.newbyteorder("<").str
                table[name] = {"file": file_name, "dtype": dtype_str, "shape": list(array.shape),
                               "bytes": target.stat().st_size, "crc32": _crc32_file(target)}
                continue
            array = np.asarray(array)
            if array.dtype.hasobject:
                raise BundleError(f"array {name!r} has an object dtype; refusing to pickle", path)
            array = array.astype(array.dtype.newbyteorder("<"), copy=False)
            written.append(target)
            with open(target, "wb") as fh:
                # np.ascontiguousarray would turn a 0-d array into shape (1,)
                np.save(fh, np.require(array, requirements="C"), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            table[name] = {"file": file_name, "dtype": array.dtype.str, "shape": list(array.shape),
                           "bytes": target.stat().st_size, "crc32": _crc32_file(target)}
        manifest = {"format": format_name, "format_version": int(format_version),
                    "generation": generation, **meta, "arrays": table}
        fd, tmp_name = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=path)
        written.append(Path(tmp_name))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path / MANIFEST)  # the commit point: nothing is rolled back after it
    except BaseException:
        for target in written:
            target.unlink(missing_ok=True)
        raise
    _fsync_dir(path)
    for file_name in old_files:
        if file_name not in {spec["file"] for spec in table.values()}:
            (path / file_name).unlink(missing_ok=True)
    return path


def load_bundle(path: str | os.PathLike, format_name: str, max_version: int, *,
                mmap: bool = True, verify_checksums: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a bundle written by :func:`save_bundle`.

    Parameters
    ----------
    path : str or os.PathLike
        Bundle directory.
    format_name : str
        The expected format; another one raises :class:`BundleFormatError`.
    max_version : int
        Newest format version this code understands; newer raises :class:`BundleVersionError`.
    mmap : bool
        Memory-map the arrays read-only instead of reading them into memory.
    verify_checksums : bool
        Also check each file's CRC-32 (reads every byte once).

    Returns
    -------
    manifest : dict
        The manifest.
    arrays : dict of str to np.ndarray
        The arrays, read-only memory maps when ``mmap`` is True.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleFormatError("no bundle directory here", path)
    manifest = _read_manifest(path)
    manifest_path = path / MANIFEST
    found = manifest.get("format")
    if found != format_name:
        raise BundleFormatError(f"format is {found!r}, expected {format_name!r}", manifest_path)
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleFormatError("corrupt manifest (format_version missing)", manifest_path)
    if version > max_version:
        raise BundleVersionError(f"format version {version} is newer than this vbow supports "
                                 f"({max_version}); upgrade vbow to read it", manifest_path)
    arrays: dict[str, np.ndarray] = {}
    for name, spec in manifest["arrays"].items():
        try:
            file_path = path / spec["file"]
            shape, dtype, size = tuple(spec["shape"]), np.dtype(spec["dtype"]), int(spec["bytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"corrupt manifest entry for array {name!r}", manifest_path) from exc
        if not isinstance(spec["file"], str) or Path(spec["file"]).name != spec["file"]:
            raise BundleFormatError(f"array {name!r}: file {spec['file']!r} is not a plain file name "
                                    f"inside the bundle", manifest_path)
        if not file_path.is_file():
            raise BundleFormatError(f"array file is missing (array {name!r})", file_path)
        actual = file_path.stat().st_size
        if actual != size:
            raise BundleFormatError(f"file is {actual} bytes, manifest says {size}: truncated or "
                                    f"corrupt", file_path)
        if verify_checksums and _crc32_file(file_path) != spec.get("crc32"):
            raise BundleFormatError("checksum mismatch: the file is corrupt", file_path)
        try:
            array = np.load(file_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BundleFormatError(f"cannot read array {name!r}: {exc}", file_path) from None
        if array.shape != shape or array.dtype != dtype:
            raise BundleFormatError(f"array {name!r} is {array.shape} {array.dtype.str}, manifest "
                                    f"says {shape} {dtype.str}", file_path)
        arrays[name] = array
    return manifest, arrays
