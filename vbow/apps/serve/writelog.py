"""The durable write log: every acknowledged PUT and DELETE is appended and fsync'd first.

File format (little-endian), one record after another::

    b"VBWL" | header length u32 | payload length u64 | CRC-32 of header + payload u32
    | header (UTF-8 JSON object) | payload (raw bytes: the uploaded image for a put)

The service appends a record and fsyncs it *before* it changes the index and replies, so an
acknowledged write is on disk even if the process is killed the next instant. At start the log
is replayed over the saved bundle. A record that was being written when the process died
(short, or with a bad checksum) was never acknowledged: replay stops there and truncates it.

Replaying is idempotent (a put replaces, a delete of an absent key does nothing), so a crash
between saving the bundle and emptying the log (:meth:`WriteLog.reset`) is harmless.
The log holds no pickle: headers are JSON and payloads are the client's image bytes.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator

__all__ = ["WriteLog", "LogRecord"]

logger = logging.getLogger(__name__)

_MAGIC = b"VBWL"
_FRAME = struct.Struct("<4sIQI")
_MAX_HEADER = 1 << 20


class LogRecord:
    """One replayed record: ``header`` (dict) and ``payload`` (bytes)."""

    __slots__ = ("header", "payload")

    def __init__(self, header: dict[str, Any], payload: bytes) -> None:
        self.header = header
        self.payload = payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteLog:
    """An append-only, fsync'd log file.

    Parameters
    ----------
    path : Path
        The log file (created, with its directory, if missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fh = open(self.path, "ab")
        if created:
            os.fsync(self._fh.fileno())
            _fsync_dir(self.path.parent)
        self._lock = threading.Lock()
        self.records = 0

    def replay(self) -> Iterator[LogRecord]:
        """Yield the complete records in order; cut a torn tail off the file.

        Call once, before the first :meth:`append`.
        """
        good = 0
        with open(self.path, "rb") as fh:
            data = fh.read()
        pos = 0
        while pos < len(data):
            frame = data[pos:pos + _FRAME.size]
            if len(frame) < _FRAME.size:
                break
            magic, hlen, plen, crc = _FRAME.unpack(frame)
            end = pos + _FRAME.size + hlen + plen
            if magic != _MAGIC or hlen > _MAX_HEADER or end > len(data):
                break
            body = data[pos + _FRAME.size:end]
            if zlib.crc32(body) != crc:
                break
            try:
                header = json.loads(body[:hlen].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                break
            pos = good = end
            self.records += 1
            yield LogRecord(header, bytes(body[hlen:]))
        if good < len(data):
            logger.warning("%s: dropping a torn record at byte %d (%d bytes; never acknowledged)",
                           self.path, good, len(data) - good)
            with self._lock:
                self._fh.flush()
                os.truncate(self.path, good)
                os.fsync(self._fh.fileno())

    def append(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Write one record and fsync it; returns only once it is on disk."""
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        crc = zlib.crc32(payload, zlib.crc32(head))
        frame = _FRAME.pack(_MAGIC, len(head), len(payload), crc)
        with self._lock:
            self._fh.write(frame + head + payload)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.records += 1

    def reset(self) -> None:
        """Empty the log (after the index was saved), durably."""
        with self._lock:
            self._fh.flush()
            self._fh.truncate(0)
            os.fsync(self._fh.fileno())
            self.records = 0

    @property
    def size_bytes(self) -> int:
        """Current file size."""
        return self.path.stat().st_size

    def close(self) -> None:
        with self._lock:
            self._fh.close()
