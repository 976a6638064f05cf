"""The catalog behind the HTTP API: one :class:`vbow.ImageIndex`, made durable and shareable.

:class:`CatalogService` owns the index and everything the API adds around it:

- searches run in parallel under the shared side of a readers/writer lock;
- writes are serialised by a mutex; each one is validated and described first (the slow part,
  done while searches go on), then appended to the fsync'd :class:`~.writelog.WriteLog`, and only
  then applied under the exclusive side of the lock, so no search sees half a replace;
- every write clears the :class:`~.cache.QueryCache`;
- every ``compact_every`` writes, and at shutdown, the index is saved over its bundle (atomic,
  see :mod:`vbow.persist.bundle`) and the log emptied.

It speaks only vbow's public API (``ImageIndex.load/search/describe/add_features/remove/save``)
and raises :class:`~.problems.Problem` for anything a client did wrong.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

import numpy as np

from vbow.apps.draw import project_outline
from vbow.apps.serve.cache import QueryCache, query_key
from vbow.apps.serve.problems import Problem
from vbow.concurrency import ReadWriteLock
from vbow.apps.serve.settings import ServeSettings
from vbow.apps.serve.stats import LatencyRecorder
from vbow.apps.serve.thumbnails import ThumbnailStore
from vbow.apps.serve.writelog import WriteLog
from vbow.describe.image_header import sniff_image
from vbow.describe.image_input import load_image
from vbow.errors import ImageError, InvalidInputError
from vbow.index import ImageIndex
from vbow.results import Match, SearchResult

__all__ = ["CatalogService", "KEY_PATTERN", "validate_key", "parse_filter", "parse_metadata"]

logger = logging.getLogger(__name__)

#: Item keys: at most 256 characters; a letter or digit first; then letters, digits and ``._:@+~-``,
#: with ``/`` between non-empty segments (so the relative paths ``vbow index`` uses are keys too);
#: no ``.`` or ``..`` segment.
KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@+~-]*(/[A-Za-z0-9._:@+~-]+)*"
_KEY_RE = re.compile(KEY_PATTERN)
_MAX_KEY = 256
_MAX_METADATA_BYTES = 64 * 1024


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid item key, else raise a 422 ``invalid-key`` problem."""
    ok = (isinstance(key, str) and len(key) <= _MAX_KEY and _KEY_RE.fullmatch(key) is not None
          and not any(part in (".", "..") for part in key.split("/")))
    if not ok:
        shown = key if isinstance(key, str) and len(key) <= 64 else f"{str(key)[:64]}..."
        raise Problem(422, "invalid-key", f"key {shown!r} is not 1..{_MAX_KEY} characters matching "
                      f"{KEY_PATTERN} without '.' or '..' segments", pattern=KEY_PATTERN)
    return key


def _json_object(text: str, problem: str, what: str, shape: str) -> dict[str, Any]:
    """Parse a form field that must hold a JSON object; a :class:`Problem` ``problem`` if not."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise Problem(422, problem, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Problem(422, problem, f"{what} must be a JSON object{shape}; got "
                      f"{type(value).__name__}")
    return value


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """Parse the ``where`` form field: a JSON object ``{field: value or [values]}``."""
    if text is None or text.strip() == "":
        return None
    where = _json_object(text, "invalid-filter", "filter", " {field: value or [values]}")
    for field, wanted in where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        bad = [v for v in values if isinstance(v, (dict, list))]
        if bad:
            raise Problem(422, "invalid-filter",
                          f"filter field {field!r} must be a scalar or a list of scalars; got "
                          f"{json.dumps(wanted)[:80]}")
    return where


def parse_metadata(text: str | None) -> dict[str, Any]:
    """Parse the ``metadata`` form field of a PUT: a JSON object (default ``{}``)."""
    if text is None or text.strip() == "":
        return {}
    size = len(text.encode("utf-8"))
    if size > _MAX_METADATA_BYTES:
        raise Problem(422, "invalid-metadata",
                      f"metadata is {size} bytes; the limit is {_MAX_METADATA_BYTES}")
    return _json_object(text, "invalid-metadata", "metadata", "")


class CatalogService:
    """An index bundle served for concurrent searches and serialised, durable writes.

    Parameters
    ----------
    settings : ServeSettings
        Which bundle, where the write log lives, the limits.

    Notes
    -----
    Opening replays the write log over the bundle (writes acknowledged before a crash), then
    saves the bundle and empties the log when it replayed anything.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        t0 = time.perf_counter()
        self.index = ImageIndex.load(settings.index)
        state = settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self.thumbnails = ThumbnailStore(state / "thumbnails", settings.thumbnail_side,
                                         settings.images_dir)
        self.log = WriteLog(state / "writes.log")
        self.cache = QueryCache(settings.cache_entries)
        self.search_latency = LatencyRecorder(settings.latency_window)
        self._lock = ReadWriteLock()
        self._write_mutex = threading.Lock()
        self.writes = 0
        self.saves = 0
        self.started = time.time()
        self.replayed = self._replay()
        if self.replayed:
            with self._write_mutex:
                self._compact()
        logger.info("serving %s: %d images, %d writes replayed, opened in %.2f s",
                    settings.index, len(self.index), self.replayed, time.perf_counter() - t0)

    # ------------------------------------------------------------------------------ uploads
    def check_image(self, data: bytes) -> None:
        """Refuse empty uploads, non-images and decompression bombs before decoding."""
        if not data:
            raise Problem(422, "empty-image", "the uploaded image is 0 bytes")
        probe = sniff_image(data)
        if probe is None or probe.pixels is None:
            what = "not an image in a supported format" if probe is None else \
                f"a {probe.format.upper()} file whose header gives no readable size"
            raise Problem(422, "not-an-image", f"the upload is {what}")
        limit = self.settings.max_pixels
        if probe.pixels > limit:
            raise Problem(422, "image-too-many-pixels",
                          f"the {probe.format.upper()} image is {probe.width} x {probe.height} = "
                          f"{probe.pixels} pixels; the limit is {limit}",
                          width=probe.width, height=probe.height, limit=limit)

    # ------------------------------------------------------------------------------ reading
    def search(self, data: bytes, top_k: int = 10, where: Mapping[str, Any] | None = None,
               rerank: bool | None = None, use_cache: bool = True) -> dict[str, Any]:
        """Search with an uploaded image; the JSON answer (see ``POST /search``).

        Parameters
        ----------
        data : bytes
            The encoded photo.
        top_k : int
            Matches to return, 1..``max_top_k``.
        where : dict, optional
            Metadata filter ``{field: value or [values]}``.
        rerank : bool, optional
            Geometric re-ranking (default: the index's setting).
        use_cache : bool
            Look the answer up in the query cache first (``Cache-Control: no-cache`` turns it
            off; the fresh answer is still stored).
        """
        t0 = time.perf_counter()
        if not 1 <= int(top_k) <= self.settings.max_top_k:
            raise Problem(422, "invalid-parameter",
                          f"top_k must be in 1..{self.settings.max_top_k}; got {top_k}")
        self.check_image(data)
        key = query_key(data, int(top_k), where, rerank)
        cached = self.cache.get(key) if use_cache else None
        if cached is not None:
            answer = {**cached, "cached": True,
                      "timings": {**cached["timings"], "service": round(time.perf_counter() - t0, 6)}}
            self.search_latency.record(time.perf_counter() - t0)
            return answer
        t_features = time.perf_counter()
        try:  # features depend on the settings only: computed outside the lock, so a waiting
            query = self.index.describe(data, name="upload")  # write does not stall on them
        except ImageError as exc:
            raise Problem(422, "image-decode-error", str(exc)) from None
        features_s = time.perf_counter() - t_features
        with self._lock.read():
            generation = self.cache.generation
            try:
                result = self.index.search_features(query, int(top_k), where=where, rerank=rerank)
            except InvalidInputError as exc:
                raise Problem(422, "invalid-filter", str(exc)) from None
            answer = self._serialise(result)
        answer["timings"]["features"] = round(features_s, 6)
        answer["timings"]["total"] = round(answer["timings"].get("total", 0.0) + features_s, 6)
        self.cache.put(key, answer, generation)  # refused if a write landed since `generation`
        answer = {**answer, "cached": False,
                  "timings": {**answer["timings"], "service": round(time.perf_counter() - t0, 6)}}
        self.search_latency.record(time.perf_counter() - t0)
        return answer

    def _serialise(self, result: SearchResult) -> dict[str, Any]:
        out = result.to_dict()
        out["results"] = [self._match_dict(m, d) for m, d in zip(result.matches, out["results"])]
        out["verified_match"] = any(d["verified"] for d in out["results"])
        out["images"] = len(self.index)
        return out

    def _match_dict(self, match: Match, d: dict[str, Any]) -> dict[str, Any]:
        d = dict(d)
        d.setdefault("verified", bool(match.verified))
        d.setdefault("rank", int(match.rank))
        size = self.thumbnails.size(match.key) or match.catalog_size
        d["catalog_size"] = None if size is None else list(size)
        outline = None
        if match.transform is not None and size is not None:
            corners = project_outline(match.transform, size[0], size[1])
            if np.all(np.isfinite(corners)):
                outline = np.round(corners, 2).tolist()
        d["outline"] = outline
        d["thumbnail"] = f"/thumbnails/{quote(match.key, safe='/')}"
        return d

    def get_item(self, key: str) -> dict[str, Any]:
        """Metadata and thumbnail facts of one item (404 ``unknown-key`` if absent)."""
        with self._lock.read():
            if key not in self.index:
                raise Problem(404, "unknown-key", f"no item {key!r} in the index")
            metadata = self.index.metadata(key)
        thumb = self.thumbnails.get(key)
        return {"key": key, "metadata": metadata,
                "catalog_size": None if thumb is None else [thumb.width, thumb.height],
                "thumbnail": f"/thumbnails/{quote(key, safe='/')}",
                "thumbnail_jpeg_base64": None if thumb is None else
                base64.b64encode(thumb.jpeg).decode("ascii")}

    def thumbnail(self, key: str) -> bytes:
        """JPEG bytes of ``key``'s thumbnail (404 if the item or its thumbnail is unknown)."""
        with self._lock.read():
            present = key in self.index
        if not present:
            raise Problem(404, "unknown-key", f"no item {key!r} in the index")
        thumb = self.thumbnails.get(key)
        if thumb is None:
            raise Problem(404, "not-found", f"item {key!r} has no thumbnail (it was indexed "
                          "offline; start the server with --images DIR to serve them)")
        return thumb.jpeg

    # ------------------------------------------------------------------------------ writing
    def put(self, key: str, data: bytes, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Add or replace item ``key``; returns once the write is durable and visible."""
        validate_key(key)
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise Problem(422, "invalid-metadata", f"metadata is not JSON-serialisable: {exc}") from None
        self.check_image(data)
        t0 = time.perf_counter()
        with self._write_mutex:
            t_start = time.perf_counter()
            try:
                features = self.index.describe(data, name=key)
                thumb, (width, height) = load_image(data, max_side=2 * self.settings.thumbnail_side,
                                                    name=key)
            except ImageError as exc:
                raise Problem(422, "image-decode-error", str(exc)) from None
            t_log = time.perf_counter()
            self.log.append({"op": "put", "key": key, "metadata": metadata, "t": time.time()}, data)
            t_apply = time.perf_counter()
            replaced, parts = self._apply_put(key, features, metadata, thumb, width, height)
            t_end = time.perf_counter()
            self._after_write()
        timings = {"wait": t_start - t0, "describe": t_log - t_start, "log": t_apply - t_log,
                   **parts, "apply": t_end - t_apply, "total": time.perf_counter() - t0}
        return {"key": key, "replaced": replaced, "images": len(self.index),
                "timings": {k: round(v, 6) for k, v in timings.items()}}

    def delete(self, key: str) -> dict[str, Any]:
        """Remove item ``key`` (404 ``unknown-key`` if absent); returns once durable."""
        validate_key(key)
        with self._write_mutex:
            if key not in self.index:
                raise Problem(404, "unknown-key", f"no item {key!r} in the index")
            self.log.append({"op": "delete", "key": key, "t": time.time()})
            self._apply_delete(key)
            self._after_write()
        return {"key": key, "deleted": True, "images": len(self.index)}

    def _apply_put(self, key: str, features: Any, metadata: dict[str, Any], thumb: np.ndarray,
                   width: int, height: int) -> tuple[bool, dict[str, float]]:
        t0 = time.perf_counter()
        self.thumbnails.put(key, thumb, width, height)
        t1 = time.perf_counter()
        with self._lock.write():
            t2 = time.perf_counter()
            replaced = key in self.index
            if replaced:
                self.index.remove([key])
            self.index.add_features([features], [key], [metadata])
            self.cache.invalidate()
        t3 = time.perf_counter()
        return replaced, {"thumbnail": t1 - t0, "lock_wait": t2 - t1, "index": t3 - t2}

    def _apply_delete(self, key: str) -> None:
        with self._lock.write():
            if key in self.index:
                self.index.remove([key])
            self.cache.invalidate()
        self.thumbnails.delete(key)

    def _after_write(self) -> None:
        self.writes += 1
        every = self.settings.compact_every
        if every and self.log.records >= every:
            self._compact()

    def _replay(self) -> int:
        n = 0
        for record in self.log.replay():
            op, key = record.header.get("op"), record.header.get("key")
            if op == "put":
                try:
                    features = self.index.describe(record.payload, name=key)
                    thumb, (w, h) = load_image(record.payload,
                                               max_side=2 * self.settings.thumbnail_side, name=key)
                except ImageError as exc:  # validated before it was logged; cannot normally happen
                    logger.error("write log: cannot replay put of %r: %s", key, exc)
                    continue
                self._apply_put(key, features, dict(record.header.get("metadata") or {}), thumb, w, h)
            elif op == "delete":
                self._apply_delete(key)
            else:
                logger.error("write log: unknown record %r skipped", record.header)
                continue
            n += 1
        return n

    def _compact(self) -> None:
        """Save the index over its bundle, then empty the log (caller holds the write mutex)."""
        t0 = time.perf_counter()
        with self._lock.write():
            self.index.save(self.settings.index)
        self.log.reset()
        self.saves += 1
        logger.info("saved %s (%d images) in %.2f s", self.settings.index, len(self.index),
                    time.perf_counter() - t0)

    def save(self) -> dict[str, Any]:
        """Save now (``POST /admin/save``)."""
        with self._write_mutex:
            self._compact()
        return {"saved": str(self.settings.index), "images": len(self.index)}

    # ------------------------------------------------------------------------------- status
    def bundle_bytes(self) -> int:
        """Bytes of the bundle directory on disk."""
        root = Path(self.settings.index)
        return int(sum(p.stat().st_size for p in root.iterdir() if p.is_file()))

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /stats``."""
        vocab = self.index.vocabulary
        return {"images": len(self.index),
                "words": None if vocab is None else int(vocab.n_words_),
                "method": self.index.config.method,
                "bundle_bytes": self.bundle_bytes(),
                "write_log_bytes": self.log.size_bytes,
                "write_log_records": self.log.records,
                "queries_served": self.search_latency.count,
                "search_latency_ms": self.search_latency.percentiles_ms(),
                "cache": {"entries": len(self.cache), "capacity": self.cache.capacity,
                          "hits": self.cache.hits, "misses": self.cache.misses},
                "writes": self.writes, "writes_replayed_at_start": self.replayed,
                "saves": self.saves, "read_only": self.settings.read_only,
                "uptime_s": round(time.time() - self.started, 3)}

    def close(self) -> None:
        """Save pending writes and close the log (at shutdown)."""
        with self._write_mutex:
            if self.log.records:
                self._compact()
            self.log.close()
