"""What a segmented build indexes: an ordered list of catalog entries, cut into fixed batches.

A source is whatever ``vbow index`` takes (:func:`vbow.eval.datasets.load_source`): a manifest
CSV (``path``, optional ``key``, metadata columns), a ``groundtruth.csv`` or a folder holding
one, or a plain folder of images; :func:`load_entries` maps it to keys and metadata as
``vbow index`` does. :func:`read_manifest` reads a strict ``key,path,...`` manifest (both
columns required, keys unique) without the dataset layer.

Batches are contiguous runs of ``batch_size`` entries in source order, so the same source and
batch size always give the same batches, and the :func:`fingerprint` of the entries and
settings tells a resumed build whether it is continuing the same work.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from vbow.errors import DatasetError, InvalidInputError

__all__ = ["CatalogEntry", "read_manifest", "load_entries", "make_batches", "fingerprint"]


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog image: its unique key, its file and its metadata."""

    key: str
    path: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def read_manifest(csv_path: str | os.PathLike) -> list[CatalogEntry]:
    """Read a manifest CSV with columns ``key``, ``path`` and any metadata columns.

    Raises
    ------
    DatasetError
        Unreadable file, no ``key``/``path`` column, an empty key or path, or a repeated key
        (the message names the file and line).
    """
    csv_path = Path(csv_path)
    try:
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None
    entries: list[CatalogEntry] = []
    seen: dict[str, int] = {}
    with fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "key" not in header or "path" not in header:
            raise DatasetError(f"{csv_path}: a manifest needs 'key' and 'path' columns; got {header}")
        k_col, p_col = header.index("key"), header.index("path")
        meta_cols = [(i, h) for i, h in enumerate(header) if i not in (k_col, p_col)]
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DatasetError(f"{csv_path}:{line}: expected {len(header)} columns, got {len(row)}")
            key, rel = row[k_col].strip(), row[p_col].strip()
            if not key or not rel:
                raise DatasetError(f"{csv_path}:{line}: empty key or path")
            if key in seen:
                raise DatasetError(f"{csv_path}:{line}: key {key!r} repeats line {seen[key]}")
            seen[key] = line
            meta = {h: row[i] for i, h in meta_cols if row[i] != ""}
            entries.append(CatalogEntry(key, os.fspath(csv_path.parent / rel), meta))
    return entries


def load_entries(source: str | os.PathLike) -> list[CatalogEntry]:
    """The catalog entries of a source, exactly as ``vbow index`` reads it.

    A manifest CSV, a ``groundtruth.csv`` or a folder, through
    :func:`vbow.eval.datasets.load_source` (and its rules: paths stay inside the source folder,
    unreadable names are reported). Keys are the manifest's keys, else the relative paths;
    metadata the manifest's columns, plus ``group`` where the source has one.

    Returns
    -------
    list of CatalogEntry
        In source order (manifest rows, groundtruth rows, or sorted file paths).
    """
    from vbow.eval.datasets import load_source

    dataset = load_source(source)
    out = []
    for im in dataset.catalog:
        meta: dict[str, Any] = dict(getattr(im, "metadata", {}) or {})
        if im.group:
            meta.setdefault("group", im.group)
        out.append(CatalogEntry(getattr(im, "catalog_key", im.relative), os.fspath(im.path), meta))
    return out


def make_batches(entries: Sequence[CatalogEntry], batch_size: int) -> list[list[CatalogEntry]]:
    """Contiguous batches of ``batch_size`` entries (the last may be shorter)."""
    if int(batch_size) < 1:
        raise InvalidInputError(f"batch_size must be >= 1; got {batch_size}")
    b = int(batch_size)
    return [list(entries[i:i + b]) for i in range(0, len(entries), b)]


def fingerprint(entries: Sequence[CatalogEntry], settings: Mapping[str, Any]) -> str:
    """SHA-256 over every entry (key, path, metadata) and the build settings, hex."""
    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode())
    for e in entries:
        h.update(json.dumps([e.key, e.path, dict(e.metadata)], sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
