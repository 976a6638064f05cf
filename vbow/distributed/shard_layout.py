"""How an index is split into shards: by key hash, one bundle per shard, and ``shards.json``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vbow.errors import InvalidInputError

__all__ = ["shard_of", "split_index", "read_layout", "LAYOUT_FILE", "LAYOUT_FORMAT"]

logger = logging.getLogger(__name__)

LAYOUT_FILE = "shards.json"
LAYOUT_FORMAT = "vbow-shards"


def shard_of(keys: Sequence[str], n_shards: int) -> np.ndarray:
    """Owning shard of each key: BLAKE2b-64 of the UTF-8 key, modulo ``n_shards``.

    Returns
    -------
    np.ndarray
        ``(len(keys),) int64`` in ``0 .. n_shards - 1``; stable across processes and runs.
    """
    if int(n_shards) < 1:
        raise InvalidInputError(f"n_shards must be >= 1; got {n_shards}")
    h = [int.from_bytes(hashlib.blake2b(k.encode("utf-8"), digest_size=8).digest(), "little")
         for k in keys]
    return (np.array(h, dtype=np.uint64) % np.uint64(n_shards)).astype(np.int64)


def split_index(index_path: str | os.PathLike, out_dir: str | os.PathLike, n_shards: int) -> Path:
    """Split a saved index into ``n_shards`` bundles by key hash (:func:`shard_of`).

    Layout written::

        out_dir/shards.json        {"format": "vbow-shards", "n_shards": N, "shards": [...]}
        out_dir/vocabulary/        the vocabulary alone (an empty index; the client quantises)
        out_dir/shard-000/ ...     one index bundle per shard, images in their original order

    Returns
    -------
    Path
        ``out_dir``.
    """
    from vbow.index import ImageIndex

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = ImageIndex.load(index_path, mmap=True)
    keys = full.keys
    owner = shard_of(keys, n_shards)
    empty = ImageIndex.load(index_path, mmap=True)
    empty.remove(keys)
    empty.save(out / "vocabulary")
    names = []
    for s in range(int(n_shards)):
        part = ImageIndex.load(index_path, mmap=True)
        drop = [k for k, o in zip(keys, owner.tolist()) if o != s]
        if drop:
            part.remove(drop)
        name = f"shard-{s:03d}"
        part.save(out / name)
        names.append(name)
        logger.info("shard %d: %d images", s, len(part))
    layout = {"format": LAYOUT_FORMAT, "version": 1, "n_shards": int(n_shards),
              "hash": "blake2b-64-mod", "vocabulary": "vocabulary", "shards": names}
    tmp = out / f".{LAYOUT_FILE}.tmp"
    tmp.write_text(json.dumps(layout, indent=1))
    os.replace(tmp, out / LAYOUT_FILE)
    return out


def read_layout(layout_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``shards.json`` of a split index (InvalidInputError if absent or of another format)."""
    path = Path(layout_dir) / LAYOUT_FILE
    try:
        layout = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a sharded index layout: {exc}") from None
    if layout.get("format") != LAYOUT_FORMAT:
        raise InvalidInputError(f"{path}: format {layout.get('format')!r}, expected {LAYOUT_FORMAT!r}")
    return layout
