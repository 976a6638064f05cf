"""Image sources: a plain folder of images, or a dataset with ``groundtruth.csv``.

A ``groundtruth.csv`` has the header ``image,group,role``: ``image`` is a path relative to the
csv's folder, images with the same ``group`` show the same object, and ``role`` is one of ``db``
(catalog), ``query``, ``both`` (catalog and query) or ``distractor`` (catalog, no group).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from vbow.errors import DatasetError

__all__ = ["DatasetImage", "Dataset", "load_source", "read_groundtruth", "scan_folder",
           "IMAGE_EXTENSIONS", "ROLES"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                              ".jp2", ".pgm", ".ppm", ".pbm", ".pnm"})
ROLES = ("db", "query", "both", "distractor")
_CATALOG_ROLES = frozenset({"db", "both", "distractor"})
_QUERY_ROLES = frozenset({"query", "both"})


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset: its path, its object group (None for distractors) and role."""

    path: Path
    relative: str
    group: str | None
    role: str


@dataclass(frozen=True)
class Dataset:
    """A named list of images with roles."""

    name: str
    root: Path
    images: tuple[DatasetImage, ...]

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
        return any(im.role == "both" for im in self.images)


def read_groundtruth(csv_path: str | os.PathLike) -> Dataset:
    """Read a ``groundtruth.csv``.

    Raises
    ------
    DatasetError
        Missing file, wrong header, unknown role, or an empty ``image`` cell (the message names the
        file and line).
    """
    csv_path = Path(csv_path)
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")  # -sig: Excel writes a BOM
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["image", "group", "role"]:
            raise DatasetError(f"{csv_path}: header must be 'image,group,role'; got {header}")
        images = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise DatasetError(f"{csv_path}:{line}: expected 3 columns, got {len(row)}")
            rel, group, role = (c.strip() for c in row)
            if not rel:
                raise DatasetError(f"{csv_path}:{line}: empty image path")
            if role not in ROLES:
                raise DatasetError(f"{csv_path}:{line}: role {role!r} is not one of {', '.join(ROLES)}")
            images.append(DatasetImage(csv_path.parent / rel, rel, group or None, role))
    return Dataset(csv_path.parent.name, csv_path.parent, tuple(images))


def scan_folder(folder: str | os.PathLike, role: str = "db") -> Dataset:
    """Every image file below ``folder`` (recursively, sorted), all with the given role."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return Dataset(folder.name, folder, tuple(
        DatasetImage(p, p.relative_to(folder).as_posix(), None, role) for p in paths))


def load_source(source: str | os.PathLike) -> Dataset:
    """A ``groundtruth.csv``, a folder holding one, or a plain folder of images."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DatasetError(f"{source}: expected a folder or a groundtruth.csv")
        return read_groundtruth(source)
    if (source / "groundtruth.csv").is_file():
        return read_groundtruth(source / "groundtruth.csv")
    return scan_folder(source)
