"""Settings of the HTTP service, from arguments or from ``VBOW_SERVE_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from vbow.errors import InvalidInputError

__all__ = ["ServeSettings", "TOKEN_ENV", "DEFAULT_HOST", "DEFAULT_PORT"]

#: Environment variable holding the write token (used when ``--token`` is not given).
TOKEN_ENV = "VBOW_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_ENV_PREFIX = "VBOW_SERVE_"


@dataclass(frozen=True)
class ServeSettings:
    """Everything the service needs to know.

    Attributes
    ----------
    index : Path
        The index bundle directory served (it must exist: build it with ``vbow index``).
    data_dir : Path or None
        Where the write log and the thumbnails live; default ``<index>.serve`` beside the bundle.
    token : str or None
        Write token. Without one the service is read-only (PUT/DELETE answer 403).
    images_dir : Path or None
        Optional folder of catalog images, used for thumbnails of items that were indexed
        offline (looked up as ``<images_dir>/<key>`` or ``<key>.jpg|.jpeg|.png|.webp``).
    max_upload_bytes : int
        Largest request body accepted (413 beyond).
    max_pixels : int
        Largest image accepted, width x height read from the file header before decoding (422
        beyond): a guard against decompression bombs.
    max_top_k : int
        Largest ``top_k`` a search may ask for.
    request_timeout : float
        Seconds before a request is answered 504.
    cache_entries : int
        Repeated-query cache capacity (0 disables it).
    compact_every : int
        Save the index (and empty the write log) after this many acknowledged writes; 0 only
        saves at shutdown and on ``POST /admin/save``.
    thumbnail_side : int
        Longer side of stored thumbnails, in pixels.
    latency_window : int
        Recent search latencies kept for the percentiles of ``GET /stats``.
    """

    index: Path
    data_dir: Path | None = None
    token: str | None = field(default=None, repr=False)
    images_dir: Path | None = None
    max_upload_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_top_k: int = 100
    request_timeout: float = 60.0
    cache_entries: int = 512
    compact_every: int = 200
    thumbnail_side: int = 160
    latency_window: int = 10_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", Path(self.index))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.images_dir is not None:
            object.__setattr__(self, "images_dir", Path(self.images_dir))
        if self.token is not None and not str(self.token).strip():
            object.__setattr__(self, "token", None)
        for name, low in (("max_upload_bytes", 1), ("max_pixels", 1), ("max_top_k", 1),
                          ("cache_entries", 0), ("compact_every", 0), ("thumbnail_side", 16),
                          ("latency_window", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"{name} must be an int >= {low}; got {value!r}")
        if not (isinstance(self.request_timeout, (int, float)) and self.request_timeout > 0):
            raise InvalidInputError(f"request_timeout must be > 0 seconds; got {self.request_timeout!r}")

    @property
    def state_dir(self) -> Path:
        """The data directory actually used (``data_dir`` or ``<index>.serve``)."""
        return self.data_dir if self.data_dir is not None else Path(f"{self.index}.serve")

    @property
    def read_only(self) -> bool:
        """True when no write token is configured."""
        return self.token is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "ServeSettings":
        """Settings from ``VBOW_SERVE_INDEX``, ``VBOW_SERVE_TOKEN``, ``VBOW_SERVE_MAX_PIXELS``, ...

        Every attribute has a variable named ``VBOW_SERVE_<ATTRIBUTE>``; ``overrides`` win.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(_ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.name in ("index", "data_dir", "images_dir", "token"):
                values[f.name] = raw
            elif f.name == "request_timeout":
                values[f.name] = _number(raw, f.name, float)
            else:
                values[f.name] = _number(raw, f.name, int)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "index" not in values:
            raise InvalidInputError(f"no index bundle: set {_ENV_PREFIX}INDEX")
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> "ServeSettings":
        """A copy with some attributes changed."""
        return replace(self, **changes)


def _number(raw: str, name: str, kind: type) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInputError(f"{_ENV_PREFIX}{name.upper()} must be a {kind.__name__}; "
                                f"got {raw!r}") from None
