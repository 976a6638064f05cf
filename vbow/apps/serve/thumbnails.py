"""Small JPEG thumbnails of catalog images, stored beside the index at ``add`` time.

Each item has ``<sha256(key)>.jpg`` and ``<sha256(key)>.json`` (the key and the catalog image's
original width and height, needed to draw its outline in a photo). Files are written to a
temporary name, fsync'd and renamed, so a reader sees the old thumbnail or the new one. Items
indexed offline can get theirs from an image folder (``images_dir``), made on first request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from vbow.describe.image_input import read_image
from vbow.errors import ImageError

__all__ = ["ThumbnailStore", "Thumbnail", "make_thumbnail"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class Thumbnail:
    """A stored thumbnail: ``jpeg`` bytes and the catalog image's original ``width``/``height``."""

    __slots__ = ("jpeg", "width", "height")

    def __init__(self, jpeg: bytes, width: int, height: int) -> None:
        self.jpeg = jpeg
        self.width = int(width)
        self.height = int(height)


def make_thumbnail(image: np.ndarray, side: int, quality: int = 85) -> bytes:
    """JPEG bytes of ``image`` (``(h, w, 3) uint8`` BGR) shrunk so its longer side is ``side``."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError("cannot encode a thumbnail")
    return buf.tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ThumbnailStore:
    """Thumbnails by item key.

    Parameters
    ----------
    folder : Path
        Where thumbnails are stored (created if missing).
    side : int
        Longer side of new thumbnails in pixels.
    images_dir : Path or None
        Fallback folder of catalog images for keys without a stored thumbnail.
    """

    def __init__(self, folder: str | os.PathLike[str], side: int,
                 images_dir: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.side = int(side)
        self.images_dir = None if images_dir is None else Path(images_dir).resolve()
        self._lock = threading.Lock()
        self._sizes: dict[str, tuple[int, int] | None] = {}

    def _stem(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode("utf-8")).hexdigest()

    def put(self, key: str, image: np.ndarray, width: int, height: int) -> None:
        """Store the thumbnail of ``image`` (any size; ``width``/``height``: original pixels)."""
        jpeg = make_thumbnail(image, self.side)
        stem = self._stem(key)
        with self._lock:
            _write_atomic(stem.with_suffix(".jpg"), jpeg)
            _write_atomic(stem.with_suffix(".json"),
                          json.dumps({"key": key, "width": int(width), "height": int(height)}).encode())
            self._sizes[key] = (int(width), int(height))

    def delete(self, key: str) -> None:
        """Forget ``key``'s thumbnail (no error if there is none)."""
        stem = self._stem(key)
        with self._lock:
            stem.with_suffix(".json").unlink(missing_ok=True)
            stem.with_suffix(".jpg").unlink(missing_ok=True)
            self._sizes.pop(key, None)

    def size(self, key: str) -> tuple[int, int] | None:
        """``(width, height)`` of ``key``'s catalog image in original pixels, if known."""
        if key in self._sizes:
            return self._sizes[key]
        try:
            info = json.loads(self._stem(key).with_suffix(".json").read_text("utf-8"))
            size: tuple[int, int] | None = (int(info["width"]), int(info["height"]))
        except (OSError, ValueError, KeyError, TypeError):
            thumb = self.get(key) if self.images_dir is not None else None
            size = None if thumb is None else (thumb.width, thumb.height)
        with self._lock:
            if len(self._sizes) < 1_000_000:
                self._sizes[key] = size
        return size

    def get(self, key: str) -> Thumbnail | None:
        """The thumbnail of ``key``, from the store or made from ``images_dir``; None if neither."""
        stem = self._stem(key)
        try:
            info = json.loads(stem.with_suffix(".json").read_text("utf-8"))
            return Thumbnail(stem.with_suffix(".jpg").read_bytes(), info["width"], info["height"])
        except (OSError, ValueError, KeyError):
            pass
        source = self._source_file(key)
        if source is None:
            return None
        try:
            full = read_image(source, max_side=None)
        except ImageError as exc:
            logger.warning("no thumbnail for %r: %s", key, exc)
            return None
        height, width = full.shape[:2]
        self.put(key, full, width, height)
        return Thumbnail(make_thumbnail(full, self.side), width, height)

    def _source_file(self, key: str) -> Path | None:
        if self.images_dir is None:
            return None
        candidates = [self.images_dir / key] + [self.images_dir / (key + s) for s in _IMAGE_SUFFIXES]
        for c in candidates:
            try:
                resolved = c.resolve()
            except OSError:
                continue
            # never leave the configured folder (keys are validated too; this is defence in depth)
            if resolved.is_file() and resolved.is_relative_to(self.images_dir):
                return resolved
        return None
