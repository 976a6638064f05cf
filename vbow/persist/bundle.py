"""Self-describing, versioned bundles: a JSON manifest beside plain ``.npy`` arrays.

Layout of a bundle directory::

    manifest.json                   format name and version, generation, parameters, for every
                                    array its file, shape, little-endian dtype, byte size and
                                    CRC-32, and the CRC-32 of the manifest itself
    <name>.g<generation>.npy        one array per file, memory-mappable

Saving is atomic: the arrays of a new *generation* are written under new file names, each
created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``: a planted file or symbolic link is never
written through) and flushed; then ``manifest.json`` is replaced in one ``os.replace``. A crash at
any point leaves a manifest that names complete files. The previous generation is kept until the
next save, so a reader that read the old manifest just before the switch still finds its files;
each save deletes only files whose names follow the bundle's own patterns
(``<name>.g<n>.npy`` of a generation other than the new one and the one before it, and
``.manifest.*.tmp`` left by killed saves), found by listing the directory, never by a name read
from a manifest. One writer at a time: a save holds an exclusive ``flock`` on the directory.

Loading never unpickles and never follows a symbolic link inside the bundle: every file is opened
with ``O_NOFOLLOW | O_NONBLOCK`` relative to the bundle directory and must be a regular file; the
``.npy`` header is parsed and checked against the manifest (dtype, shape, byte size) before
anything is allocated or mapped, and arrays are memory-mapped from that same open file. By
default every file's CRC-32 and the manifest's own CRC-32 are checked (``verify_checksums``;
files over :data:`vbow.persist.checksum.CRC_PIECE_BYTES` in pieces on several threads).
If an array file has vanished because the manifest was switched by a concurrent save, the load
starts again once from the new manifest. Every failure is a :class:`vbow.errors.BundleError`
subclass that names the offending file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap as _mmap
import os
import re
import secrets
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from vbow.errors import BundleError, BundleFormatError, BundleVersionError
from vbow.persist.checksum import file_crc32
from vbow.persist.file_access import create_exclusive, open_dir, open_regular, read_exactly
from vbow.search.lazy_array import LazyArray

__all__ = ["save_bundle", "load_bundle", "LazyArray", "MANIFEST", "MANIFEST_CHECKSUM",
           "manifest_checksum", "array_file_name", "check_array_name", "MAX_MANIFEST_BYTES"]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Manifest field holding the CRC-32 of the rest of the manifest (see :func:`manifest_checksum`).
MANIFEST_CHECKSUM = "manifest_crc32"
#: Largest manifest read (a manifest is a few KB; this bounds what a hostile one can cost).
MAX_MANIFEST_BYTES = 16 << 20
#: Array names: letters, digits and underscores (they become part of a file name).
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]{1,128}\Z")
#: Names this module creates, and the only ones a save ever deletes.
_ARRAY_FILE = re.compile(r"(?P<name>[A-Za-z0-9_]{1,128})\.g(?P<gen>[0-9]{1,18})\.npy\Z")
_TMP_MANIFEST = re.compile(r"\.manifest\.[A-Za-z0-9_.-]*\.tmp\Z")
_RESERVED = ("format", "format_version", "generation", "arrays", MANIFEST_CHECKSUM)
#: dtype kinds a bundle may hold: bool, signed and unsigned int, float, complex
_KINDS = "biufc"
_MAX_NDIM = 32
_MAX_DIM = 1 << 62


# ------------------------------------------------------------------------------------- names
def check_array_name(name: object, where: str | os.PathLike | None = None) -> str:
    """Return ``name`` if it is a valid array name (``[A-Za-z0-9_]{1,128}``), else raise.

    Raises
    ------
    BundleFormatError
        Naming ``where`` (the manifest or the bundle).
    """
    if not isinstance(name, str) or not _ARRAY_NAME.match(name):
        raise BundleFormatError(f"array name {name!r} is not letters, digits and underscores "
                                f"(1 to 128 of them)", where)
    return name


def array_file_name(name: str, generation: int) -> str:
    """The file an array of a generation is stored in: ``<name>.g<generation>.npy``."""
    return f"{name}.g{generation}.npy"


def _plain_int(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return type(value) is int


# ----------------------------------------------------------------------------- manifest I/O
def manifest_checksum(manifest: Mapping[str, Any]) -> int:
    """CRC-32 of a manifest's canonical JSON, without its :data:`MANIFEST_CHECKSUM` field.

    Canonical: keys sorted, no spaces, ASCII, no NaN or infinity, so the checksum is a function
    of the parsed values (floats round-trip exactly through ``repr``), not of the file's layout.
    """
    body = {k: v for k, v in manifest.items() if k != MANIFEST_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return zlib.crc32(text.encode("ascii"))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True)
class _ManifestRead:
    manifest: dict[str, Any]
    identity: tuple[int, int, int, int]   # dev, inode, size, mtime_ns: detects a switch


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_manifest(dfd: int, path: Path) -> _ManifestRead:
    manifest_path = path / MANIFEST
    try:
        fd, st = open_regular(dfd, MANIFEST, manifest_path)
    except FileNotFoundError:
        raise BundleFormatError("not a vbow bundle: manifest.json is missing", manifest_path) from None
    try:
        if st.st_size > MAX_MANIFEST_BYTES:
            raise BundleFormatError(f"manifest is {st.st_size} bytes; at most "
                                    f"{MAX_MANIFEST_BYTES} expected", manifest_path)
        data = read_exactly(fd, st.st_size, manifest_path)
    finally:
        os.close(fd)
    try:
        manifest = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BundleFormatError(f"corrupt manifest (not UTF-8: {exc})", manifest_path) from None
    except (ValueError, RecursionError) as exc:   # JSONDecodeError is a ValueError
        raise BundleFormatError(f"corrupt manifest (invalid JSON: {exc})", manifest_path) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise BundleFormatError("corrupt manifest (no 'arrays' table)", manifest_path)
    return _ManifestRead(manifest, _identity(st))


def _manifest_identity(dfd: int) -> tuple[int, int, int, int] | None:
    try:
        return _identity(os.stat(MANIFEST, dir_fd=dfd, follow_symlinks=False))
    except OSError:
        return None


# ------------------------------------------------------------------------------------ saving
def _write_array(dfd: int, name: str, where: Path, array: np.ndarray | LazyArray) -> dict[str, Any]:
    """Create ``name`` exclusively and write one array as ``.npy`` into it; returns its
    manifest entry (without the file name)."""
    fd = create_exclusive(dfd, name, where)
    try:
        with os.fdopen(fd, "w+b", closefd=False) as fh:
            if isinstance(array, LazyArray):
                dtype = array.dtype.newbyteorder("<")
                shape = array.shape
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": shape}
                np.lib.format.write_array_header_1_0(fh, header)
                fh.flush()
                start = fh.tell()
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if nbytes:
                    os.ftruncate(fd, start + nbytes)
                    with _mmap.mmap(fd, start + nbytes, access=_mmap.ACCESS_WRITE) as mapped:
                        out = np.ndarray(shape, dtype, buffer=mapped, offset=start)
                        array.fill(out)
                        del out
                        mapped.flush()
            else:
                dtype = array.dtype
                np.lib.format.write_array(fh, array, allow_pickle=False)
                fh.flush()
        os.fsync(fd)
        size = os.fstat(fd).st_size
        return {"dtype": dtype.str, "shape": [int(s) for s in array.shape], "bytes": size,
                "crc32": file_crc32(fd, size)}
    finally:
        os.close(fd)


def _prepare_arrays(arrays: Mapping[str, Any], path: Path) -> dict[str, np.ndarray | LazyArray]:
    """Check every array before anything is written: names, dtypes (numeric only, so nothing
    is ever pickled), and bring them to C order, little-endian."""
    out: dict[str, np.ndarray | LazyArray] = {}
    for name, array in arrays.items():
        check_array_name(name, path)
        if isinstance(array, LazyArray):
            dtype = array.dtype
        else:
            array = np.asarray(array)
            dtype = array.dtype
        if dtype.hasobject:
            raise BundleError(f"array {name!r} has an object dtype; refusing to pickle", path)
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise BundleError(f"array {name!r} has dtype {dtype.str}; a bundle holds bool, "
                              f"integer, float and complex arrays only", path)
        if not isinstance(array, LazyArray):
            # np.ascontiguousarray would turn a 0-d array into shape (1,)
            array = np.require(array.astype(dtype.newbyteorder("<"), copy=False), requirements="C")
        out[name] = array
    return out


def _scan(dfd: int) -> tuple[dict[str, int], list[str]]:
    """The directory's files of this module's patterns: array files with their generation,
    and temporary manifests."""
    arrays: dict[str, int] = {}
    temps: list[str] = []
    with os.scandir(dfd) as entries:
        for entry in entries:
            m = _ARRAY_FILE.match(entry.name)
            if m:
                arrays[entry.name] = int(m.group("gen"))
            elif _TMP_MANIFEST.match(entry.name):
                temps.append(entry.name)
    return arrays, temps


def _remove(dfd: int, names: Iterable[str], path: Path) -> int:
    """Unlink names in the directory (a symbolic link is removed, never followed)."""
    n = 0
    for name in names:
        try:
            os.unlink(name, dir_fd=dfd)
            n += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("%s: cannot remove a stale file: %s", path / name, exc.strerror)
    return n


def _previous_generation(dfd: int, path: Path, found: Mapping[str, int]) -> tuple[int, set[str]]:
    """The generation of the bundle being replaced and the files its manifest names
    (a corrupt or missing manifest: the newest generation on disk, no files named)."""
    if _manifest_identity(dfd) is None:
        return max(found.values(), default=0), set()
    try:
        manifest = _read_manifest(dfd, path).manifest
        generation = manifest.get("generation")
        if not _plain_int(generation) or not 0 <= generation < _MAX_DIM:
            raise BundleFormatError(f"generation is {generation!r}", path / MANIFEST)
        named = {spec.get("file") for spec in manifest["arrays"].values() if isinstance(spec, dict)}
        return generation, {n for n in named if isinstance(n, str)}
    except BundleError as exc:
        logger.warning("%s: replacing an unreadable manifest (%s)", path / MANIFEST, exc)
        return max(found.values(), default=0), set()


def save_bundle(path: str | os.PathLike, format_name: str, format_version: int,
                meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> Path:
    """Write a bundle atomically (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Bundle directory (created if needed; an existing bundle there is replaced atomically).
    format_name : str
        E.g. ``"vbow-index"``.
    format_version : int
        Format version written to the manifest (>= 1).
    meta : dict
        JSON-serialisable parameters and scalars (no NaN or infinity); the keys ``format``,
        ``format_version``, ``generation``, ``arrays`` and ``manifest_crc32`` are reserved.
    arrays : dict of str to np.ndarray or LazyArray
        Numeric arrays (bool, integer, float, complex; anything else is refused), named by
        letters, digits and underscores. Stored little-endian, C order. A :class:`LazyArray` is
        written straight into its memory-mapped file.

    Returns
    -------
    Path
        The bundle directory.

    Raises
    ------
    BundleError
        Naming the file: an invalid name or dtype, a file already at a new file's name, or an
        OS error while writing (disk full, no permission). Nothing of the new generation is
        left behind and the previous bundle still loads.
    """
    path = Path(path)
    if not isinstance(format_name, str) or not format_name:
        raise BundleError(f"format name must be a non-empty str; got {format_name!r}", path)
    if not _plain_int(format_version) or format_version < 1:
        raise BundleError(f"format version must be an int >= 1; got {format_version!r}", path)
    clash = [k for k in _RESERVED if k in meta]
    if clash:
        raise BundleError(f"manifest fields {clash} are reserved for the bundle itself", path)
    prepared = _prepare_arrays(arrays, path)
    if path.exists() and not path.is_dir():
        raise BundleError("exists and is not a bundle directory", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"cannot create the bundle directory: {exc.strerror}", path) from exc
    dfd = open_dir(path)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)   # one writer at a time; released when dfd closes
        return _save_locked(dfd, path, format_name, format_version, meta, prepared)
    finally:
        os.close(dfd)


def _save_locked(dfd: int, path: Path, format_name: str, format_version: int,
                 meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray | LazyArray]) -> Path:
    found, temps = _scan(dfd)
    previous, previous_files = _previous_generation(dfd, path, found)
    generation = previous + 1
    # what killed saves left (their generation's files, temporary manifests), anything named
    # like a future generation's file, and generations older than the one before the current
    stale = [n for n, g in found.items()
             if g > previous or g < previous - 1 or (g == previous and previous_files and
                                                     n not in previous_files)]
    removed = _remove(dfd, stale + temps, path)
    if removed:
        logger.info("%s: removed %d files left by interrupted saves or old generations",
                    path, removed)
    table: dict[str, dict[str, Any]] = {}
    written: list[str] = []   # every file this save created, removed again if it fails
    current = path
    try:
        for name, array in arrays.items():
            file_name = array_file_name(name, generation)
            current = path / file_name
            written.append(file_name)
            spec = _write_array(dfd, file_name, current, array)
            table[name] = {"file": file_name, **spec}
        manifest: dict[str, Any] = {"format": format_name, "format_version": format_version,
                                    "generation": generation, **meta, "arrays": table}
        current = path / MANIFEST
        try:
            manifest[MANIFEST_CHECKSUM] = manifest_checksum(manifest)
            text = json.dumps(manifest, indent=1, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise BundleError(f"manifest parameters are not plain JSON: {exc}", current) from None
        tmp_name = f".manifest.g{generation}.{secrets.token_hex(6)}.tmp"
        current = path / tmp_name
        written.append(tmp_name)
        fd = create_exclusive(dfd, tmp_name, current)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync(dfd)
        current = path / MANIFEST
        os.replace(tmp_name, MANIFEST, src_dir_fd=dfd, dst_dir_fd=dfd)  # the commit point
    except BaseException as exc:
        _remove(dfd, written, path)
        if isinstance(exc, OSError) and not isinstance(exc, BundleError):
            raise BundleError(f"cannot write: {exc}", current) from exc
        raise
    _fsync(dfd)
    # keep the generation just replaced for readers that read its manifest a moment ago
    found, temps = _scan(dfd)
    _remove(dfd, [n for n, g in found.items() if g not in (generation, previous)] + temps, path)
    return path


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass


# ----------------------------------------------------------------------------------- loading
class _ManifestSwitched(Exception):
    """An array file vanished and the manifest is not the one read: a save replaced it."""


def _check_version(manifest: Mapping[str, Any], where: Path, format_name: str,
                   min_version: int, max_version: int) -> int:
    found = manifest.get("format")
    if found != format_name:
        raise BundleFormatError(f"format is {found!r}, expected {format_name!r}", where)
    version = manifest.get("format_version")
    if not _plain_int(version):
        raise BundleFormatError(f"format_version is {version!r}, expected an int in "
                                f"{min_version}..{max_version}", where)
    if version > max_version:
        raise BundleVersionError(f"format version {version} is newer than this vbow supports "
                                 f"({max_version}); upgrade vbow to read it", where)
    if version < min_version:
        raise BundleFormatError(f"format version {version} is not a known version (expected "
                                f"{min_version}..{max_version})", where)
    generation = manifest.get("generation")
    if not _plain_int(generation) or not 1 <= generation < _MAX_DIM:
        raise BundleFormatError(f"generation is {generation!r}, expected an int >= 1", where)
    return version


def _entry(name: str, spec: object, generation: int, where: Path,
           verify_checksums: bool) -> tuple[str, tuple[int, ...], np.dtype, int]:
    """Validate one manifest array entry; returns file name, shape, dtype, byte size."""
    check_array_name(name, where)
    if not isinstance(spec, dict):
        raise BundleFormatError(f"corrupt manifest entry for array {name!r}: {spec!r}", where)
    file_name = spec.get("file")
    expected = array_file_name(name, generation)
    if file_name != expected:
        raise BundleFormatError(f"array {name!r}: file {file_name!r} is not {expected!r}, the "
                                f"plain file name inside the bundle this generation uses", where)
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM or \
            not all(_plain_int(s) and 0 <= s < _MAX_DIM for s in shape):
        raise BundleFormatError(f"array {name!r}: shape {shape!r} is not a list of at most "
                                f"{_MAX_NDIM} non-negative ints", where)
    descr = spec.get("dtype")
    try:
        if not isinstance(descr, str) or len(descr) > 8:
            raise TypeError
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise BundleFormatError(f"array {name!r}: dtype {descr!r} is not a numpy dtype "
                                f"string", where) from None
    if dtype.kind not in _KINDS or dtype.str != descr or descr[0] not in "<|":
        raise BundleFormatError(f"array {name!r}: dtype {descr!r} is not a little-endian bool, "
                                f"integer, float or complex dtype", where)
    size = spec.get("bytes")
    if not _plain_int(size) or size < 0:
        raise BundleFormatError(f"array {name!r}: bytes {size!r} is not a non-negative int",
                                where)
    crc = spec.get("crc32")
    if verify_checksums and (not _plain_int(crc) or not 0 <= crc < 1 << 32):
        raise BundleFormatError(f"array {name!r}: crc32 {crc!r} is not a 32-bit unsigned int",
                                where)
    return file_name, tuple(shape), dtype, size


def _read_header(fh, file_path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fh)
    except Exception as exc:  # the header parser's errors vary (ValueError, SyntaxError, ...)
        raise BundleFormatError(f"corrupt .npy header: {type(exc).__name__}: {exc}",
                                file_path) from None
    raise BundleFormatError(f".npy format version {version} is not 1.0 or 2.0", file_path)


def _open_array(dfd: int, name: str, file_name: str, shape: tuple[int, ...], dtype: np.dtype,
                size: int, crc: object, path: Path, *, mmap: bool, verify_checksums: bool,
                identity: tuple[int, int, int, int]) -> np.ndarray:
    file_path = path / file_name
    try:
        fd, st = open_regular(dfd, file_name, file_path)
    except FileNotFoundError:
        if _manifest_identity(dfd) != identity:
            raise _ManifestSwitched from None
        raise BundleFormatError(f"array file is missing (array {name!r})", file_path) from None
    with os.fdopen(fd, "rb") as fh:
        if st.st_size != size:
            raise BundleFormatError(f"file is {st.st_size} bytes, manifest says {size}: "
                                    f"truncated or corrupt", file_path)
        header_shape, fortran, header_dtype = _read_header(fh, file_path)
        if fortran or header_shape != shape or header_dtype != dtype or \
                header_dtype.str != dtype.str:
            raise BundleFormatError(f"array {name!r} is {header_shape} {header_dtype.str}"
                                    f"{' (Fortran order)' if fortran else ''}, manifest says "
                                    f"{shape} {dtype.str}", file_path)
        start = fh.tell()
        nbytes = dtype.itemsize
        for s in shape:
            nbytes *= s
        if start + nbytes != size:   # checked before anything is allocated or mapped
            raise BundleFormatError(f"header claims {nbytes} data bytes after {start}, the file "
                                    f"has {size - start}", file_path)
        if verify_checksums and file_crc32(fd, size) != crc:
            raise BundleFormatError("checksum mismatch: the file is corrupt", file_path)
        if nbytes == 0:
            array = np.zeros(shape, dtype)
            array.flags.writeable = not mmap
            return array
        if mmap:
            return np.memmap(fh, dtype=dtype, mode="r", offset=start, shape=shape)
        array = np.empty(shape, dtype)
        buffer = memoryview(array.reshape(-1)).cast("B")
        got = 0
        while got < nbytes:
            n = fh.readinto(buffer[got:])
            if not n:
                raise BundleFormatError(f"file shrank while reading: {start + got} of {size} "
                                        f"bytes", file_path)
            got += n
        return array


def load_bundle(path: str | os.PathLike, format_name: str, max_version: int, *,
                mmap: bool = True, verify_checksums: bool = True,
                min_version: int = 1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
        Check every file's CRC-32 and the manifest's own (reads every byte once; on by default).
        Off, the manifest, every ``.npy`` header, every file's size, type and name are still
        checked; flipped bits inside the array data are not.
    min_version : int
        Oldest format version this code understands; older, or not an int, raises
        :class:`BundleFormatError`.

    Returns
    -------
    manifest : dict
        The manifest.
    arrays : dict of str to np.ndarray
        Every array the manifest lists, read-only memory maps when ``mmap`` is True.

    Raises
    ------
    BundleError
        Naming the file: missing, not a regular file (a symbolic link, a FIFO), truncated,
        corrupt, inconsistent with the manifest, or of an unknown format or version.
    """
    path = Path(path)
    for attempt in range(2):
        try:
            return _load_once(path, format_name, min_version, max_version, mmap=mmap,
                              verify_checksums=verify_checksums)
        except _ManifestSwitched:
            logger.info("%s: the manifest was replaced while loading; %s", path,
                        "loading again" if attempt == 0 else "giving up")
    raise BundleFormatError("the manifest was replaced twice while loading (saves in quick "
                            "succession); try again", path / MANIFEST)


def _load_once(path: Path, format_name: str, min_version: int, max_version: int, *, mmap: bool,
               verify_checksums: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    dfd = open_dir(path)
    try:
        read = _read_manifest(dfd, path)
        manifest, manifest_path = read.manifest, path / MANIFEST
        _check_version(manifest, manifest_path, format_name, min_version, max_version)
        if verify_checksums:
            stored = manifest.get(MANIFEST_CHECKSUM)
            if stored is None:
                logger.warning("%s: written before manifests carried a checksum; only its "
                               "arrays are checked (save it again to protect it)", manifest_path)
            elif not _plain_int(stored) or stored != manifest_checksum(manifest):
                raise BundleFormatError("manifest checksum mismatch: the manifest is corrupt",
                                        manifest_path)
        generation = manifest["generation"]
        entries = {name: _entry(name, spec, generation, manifest_path, verify_checksums)
                   for name, spec in manifest["arrays"].items()}
        files = [e[0] for e in entries.values()]
        if len(set(files)) != len(files):
            raise BundleFormatError("two arrays name the same file", manifest_path)
        arrays: dict[str, np.ndarray] = {}
        for name, (file_name, shape, dtype, size) in entries.items():
            arrays[name] = _open_array(dfd, name, file_name, shape, dtype, size,
                                       manifest["arrays"][name].get("crc32"), path, mmap=mmap,
                                       verify_checksums=verify_checksums,
                                       identity=read.identity)
        return manifest, arrays
    finally:
        os.close(dfd)
