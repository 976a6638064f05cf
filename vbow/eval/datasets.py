"""Image sources: a plain folder of images, a dataset with ``groundtruth.csv``, or a CSV manifest.

A ``groundtruth.csv`` has the header ``image,group,role``: ``image`` is a path relative to the
csv's folder, images with the same ``group`` show the same object, and ``role`` is one of ``db``
(catalog), ``query``, ``both`` (catalog and query) or ``distractor`` (catalog, no group).

A manifest is a CSV with a ``path`` column (relative to the csv's folder), an optional ``key``
column (default: the path) and any other columns, which become each image's metadata (string
values; an empty cell leaves that field out for the image). Every image of a manifest has role
``db``.

Safety: no source reaches outside its folder. Paths read from a csv must be relative and, with
symbolic links resolved, stay inside the csv's folder (else :class:`~vbow.errors.DatasetError`
naming the file and line). A folder scan does not descend into linked folders, and a file link
that dangles or points outside the folder, or an entry that is not a regular file, is left out
and reported in :attr:`Dataset.skipped` instead of being read.
"""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Mapping

from vbow.errors import DatasetError

__all__ = ["DatasetImage", "Dataset", "load_source", "read_groundtruth", "read_manifest",
           "scan_folder", "IMAGE_EXTENSIONS", "ROLES"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".jp2", ".pgm", ".ppm", ".pbm", ".pnm"})
ROLES = ("db", "query", "both", "distractor")
_CATALOG_ROLES = frozenset({"db", "both", "distractor"})
_QUERY_ROLES = frozenset({"query", "both"})
_GROUNDTRUTH_HEADER = ["image", "group", "role"]


@dataclass(frozen=True)
class DatasetImage:
    """One image of a source.

    Attributes
    ----------
    path : Path
        The file (the source folder joined with ``relative``; links not resolved).
    relative : str
        Its path relative to the source folder, with ``/`` separators.
    group : str or None
        Object group (None for distractors and plain folders).
    role : str
        One of :data:`ROLES`.
    key : str or None
        The catalog key a manifest gives (None: use ``relative``).
    metadata : Mapping of str to str
        Metadata a manifest gives (empty otherwise).
    """

    path: Path
    relative: str
    group: str | None
    role: str
    key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def catalog_key(self) -> str:
        """The key to index this image under: the manifest's key, else the relative path."""
        return self.relative if self.key is None else self.key


@dataclass(frozen=True)
class Dataset:
    """A named list of images with roles.

    Attributes
    ----------
    name : str
        The source folder's name.
    root : Path
        The source folder.
    images : tuple of DatasetImage
        In file order (csv) or sorted by path (folder).
    skipped : tuple of str
        Entries of a folder scan that were left out, each naming the path and the reason
        (dangling link, link out of the folder, not a regular file).
    """

    name: str
    root: Path
    images: tuple[DatasetImage, ...]
    skipped: tuple[str, ...] = ()

    @property
    def catalog(self) -> list[DatasetImage]:
        """Images that go in the catalog: roles db, both and distractor."""
        return [im for im in self.images if im.role in _CATALOG_ROLES]

    @property
    def queries(self) -> list[DatasetImage]:
        """Images used as queries: roles query and both."""
        return [im for im in self.images if im.role in _QUERY_ROLES]

    @property
    def has_both(self) -> bool:
        """True if some image is both a catalog image and a query (UKBench's protocol)."""
        return any(im.role == "both" for im in self.images)


def _resolved(path: Path) -> Path | None:
    """``path`` with every link followed (None for a link loop or an unusable name)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: link loop before Python 3.13
        return None


def _checked_relative(where: str, rel: str, root: Path, resolved_root: Path) -> Path:
    """``root / rel`` after refusing absolute paths and paths that leave ``root``."""
    if "\x00" in rel:
        raise DatasetError(f"{where}: image path {rel!r} contains a NUL character")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or \
            PureWindowsPath(rel).drive:
        raise DatasetError(f"{where}: image path {rel!r} is absolute; paths must be relative to "
                           f"{root}")
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        raise DatasetError(f"{where}: image path {rel!r} contains '..'; paths must stay inside "
                           f"{root}")
    path = root / rel
    resolved = _resolved(path)
    if resolved is None:
        raise DatasetError(f"{where}: image path {rel!r} cannot be resolved (a link loop?)")
    if not resolved.is_relative_to(resolved_root):
        raise DatasetError(f"{where}: image path {rel!r} resolves to {resolved}, outside "
                           f"{resolved_root}")
    return path


def _open_csv(csv_path: Path):
    try:
        return open(csv_path, newline="", encoding="utf-8-sig")  # -sig: Excel writes a BOM
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None


def _rows(csv_path: Path):
    """(line number, cells) of a UTF-8 csv, header first; DatasetError if it is not UTF-8."""
    with _open_csv(csv_path) as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{csv_path}: not valid UTF-8 ({exc.reason} at byte "
                               f"{exc.start})") from None
        except csv.Error as exc:
            raise DatasetError(f"{csv_path}:{reader.line_num}: {exc}") from None


def read_groundtruth(csv_path: str | os.PathLike) -> Dataset:
    """Read a ``groundtruth.csv``.

    Raises
    ------
    DatasetError
        Missing file, wrong header, unknown role, an empty ``image`` cell, or an image path that
        is absolute or leaves the csv's folder (the message names the file and line).
    """
    csv_path = Path(csv_path)
    root = csv_path.parent
    resolved_root = root.resolve()
    rows = _rows(csv_path)
    _, header = next(rows, (0, None))
    if header is None or [h.strip() for h in header] != _GROUNDTRUTH_HEADER:
        raise DatasetError(f"{csv_path}: header must be 'image,group,role'; got {header}")
    images = []
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            raise DatasetError(f"{csv_path}:{line}: expected 3 columns, got {len(row)}")
        rel, group, role = (c.strip() for c in row)
        if not rel:
            raise DatasetError(f"{csv_path}:{line}: empty image path")
        if role not in ROLES:
            raise DatasetError(f"{csv_path}:{line}: role {role!r} is not one of {', '.join(ROLES)}")
        path = _checked_relative(f"{csv_path}:{line}", rel, root, resolved_root)
        images.append(DatasetImage(path, rel, group or None, role))
    return Dataset(root.name, root, tuple(images))


def read_manifest(csv_path: str | os.PathLike) -> Dataset:
    """Read a CSV manifest: columns ``path``, optional ``key``, and metadata fields.

    Returns
    -------
    Dataset
        Every row as a role-``db`` image with its key and metadata (see the module docstring).

    Raises
    ------
    DatasetError
        Missing file, no ``path`` column, a repeated or empty column name, a row with the wrong
        number of cells, an empty path or key, a key used twice, or a path that is absolute or
        leaves the csv's folder (the message names the file and line).
    """
    csv_path = Path(csv_path)
    root = csv_path.parent
    resolved_root = root.resolve()
    rows = _rows(csv_path)
    _, header = next(rows, (0, None))
    columns = [h.strip() for h in header] if header else []
    if "path" not in columns:
        raise DatasetError(f"{csv_path}: a manifest needs a 'path' column; got {header}")
    if any(not c for c in columns):
        raise DatasetError(f"{csv_path}: empty column name in the header {header}")
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise DatasetError(f"{csv_path}: column(s) {', '.join(dup)} appear more than once")
    fields = [c for c in columns if c not in ("path", "key")]
    images = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(columns):
            raise DatasetError(f"{csv_path}:{line}: expected {len(columns)} columns, got {len(row)}")
        cells = dict(zip(columns, (c.strip() for c in row)))
        rel = cells["path"]
        if not rel:
            raise DatasetError(f"{csv_path}:{line}: empty path")
        key = cells.get("key", rel)
        if not key:
            raise DatasetError(f"{csv_path}:{line}: empty key")
        if key in first_line:
            raise DatasetError(f"{csv_path}:{line}: key {key!r} is already used on line "
                               f"{first_line[key]}")
        first_line[key] = line
        path = _checked_relative(f"{csv_path}:{line}", rel, root, resolved_root)
        metadata = {f: cells[f] for f in fields if cells[f]}
        images.append(DatasetImage(path, rel, None, "db", key, metadata))
    return Dataset(root.name, root, tuple(images))


def scan_folder(folder: str | os.PathLike, role: str = "db") -> Dataset:
    """Every image file below ``folder`` (recursively, sorted), all with the given role.

    Linked folders are not entered. A file link is followed only if it resolves to a regular
    file inside ``folder``; dangling links, links out of the folder, entries that are not
    regular files (pipes, devices) and names that are not valid UTF-8 are listed in
    :attr:`Dataset.skipped`.

    Raises
    ------
    DatasetError
        ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    resolved_root = folder.resolve()
    found: list[tuple[str, Path]] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                skipped.append(f"{here / d}: link to a folder, not entered")
        for name in filenames:
            if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if not _is_utf8(relative):
                skipped.append(f"{os.fsencode(path)!r}: the name is not valid UTF-8 (it could not "
                               f"be a key)")
                continue
            problem = _file_problem(path, resolved_root)
            if problem:
                skipped.append(f"{path}: {problem}")
            else:
                found.append((relative, path))
    found.sort(key=lambda item: item[1])
    return Dataset(folder.name, folder, tuple(DatasetImage(p, rel, None, role) for rel, p in found),
                   tuple(sorted(skipped)))


def _is_utf8(name: str) -> bool:
    """False for names that hold undecodable bytes (surrogate escapes from the file system)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _file_problem(path: Path, resolved_root: Path) -> str | None:
    """Why ``path`` must not be read (None: a regular file inside the root, maybe via a link)."""
    try:
        st = path.lstat()
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        try:
            st = path.stat()
        except OSError as exc:
            return f"dangling symbolic link to {target} ({exc.strerror or exc})"
        resolved = _resolved(path)
        if resolved is None or not resolved.is_relative_to(resolved_root):
            return f"symbolic link to {resolved or target}, outside {resolved_root}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _csv_header(csv_path: Path) -> list[str]:
    for _, row in _rows(csv_path):
        return [c.strip() for c in row]
    return []


def load_source(source: str | os.PathLike) -> Dataset:
    """A ``groundtruth.csv``, a manifest csv, a folder holding a ``groundtruth.csv``, or a plain
    folder of images.

    A csv file is read as a groundtruth file if its header is ``image,group,role`` and as a
    manifest if it has a ``path`` column.

    Raises
    ------
    DatasetError
        The source does not exist, is a file that is not a csv, or a csv of neither kind.
    """
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DatasetError(f"{source}: expected a folder, a groundtruth.csv or a manifest csv")
        header = _csv_header(source)
        if header == _GROUNDTRUTH_HEADER:
            return read_groundtruth(source)
        if "path" in header:
            return read_manifest(source)
        raise DatasetError(f"{source}: header {header} is neither 'image,group,role' (groundtruth) "
                           f"nor a manifest's (a 'path' column, optional 'key', metadata fields)")
    if (source / "groundtruth.csv").is_file():
        return read_groundtruth(source / "groundtruth.csv")
    return scan_folder(source)
