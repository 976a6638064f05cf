"""Errors as data: RFC 9457 "problem details" JSON bodies with a stable ``type``.

Every 4xx/5xx answer of the service is ``application/problem+json``::

    {"type": "urn:vbow:problem:upload-too-large", "title": "Upload too large",
     "status": 413, "detail": "the request body is 20000000 bytes; the limit is 16777216"}

Clients branch on ``type`` (the suffixes listed in :data:`PROBLEM_TYPES` never change) and show
``detail`` to people.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Problem", "PROBLEM_TYPES", "problem_body", "problem_type", "PROBLEM_CONTENT_TYPE"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_PREFIX = "urn:vbow:problem:"

#: Stable problem names and their titles.
PROBLEM_TYPES: dict[str, str] = {
    "bad-request": "Bad request",
    "missing-image": "No image in the request",
    "empty-image": "The uploaded image is empty",
    "not-an-image": "The upload is not an image format vbow reads",
    "image-decode-error": "The image cannot be decoded",
    "image-too-many-pixels": "Image has too many pixels",
    "upload-too-large": "Upload too large",
    "unsupported-media-type": "Unsupported content type",
    "invalid-parameter": "Invalid parameter",
    "invalid-filter": "Invalid metadata filter",
    "invalid-metadata": "Invalid metadata",
    "invalid-key": "Invalid key",
    "unknown-key": "No item with this key",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "unauthorized": "Missing or wrong token",
    "read-only": "This server is read-only",
    "timeout": "Request timed out",
    "internal-error": "Internal server error",
}


def problem_type(name: str) -> str:
    """The ``type`` URI of a problem name, e.g. ``urn:vbow:problem:unknown-key``."""
    return _PREFIX + name


class Problem(Exception):
    """An HTTP error answered as problem details.

    Parameters
    ----------
    status : int
        HTTP status code.
    name : str
        One of :data:`PROBLEM_TYPES`.
    detail : str
        Human-readable explanation naming the actual and expected values.
    **extra
        Additional JSON members (e.g. ``limit``).
    """

    def __init__(self, status: int, name: str, detail: str, **extra: Any) -> None:
        if name not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem name {name!r}; valid: {sorted(PROBLEM_TYPES)}")
        super().__init__(detail)
        self.status = int(status)
        self.name = name
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return problem_body(self.status, self.name, self.detail, **self.extra)


def problem_body(status: int, name: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem-details dict for ``status`` and problem ``name``."""
    return {"type": problem_type(name), "title": PROBLEM_TYPES[name], "status": int(status),
            "detail": detail, **extra}


def problem_bytes(status: int, name: str, detail: str, **extra: Any) -> bytes:
    """The encoded JSON body (for the raw ASGI middlewares)."""
    return json.dumps(problem_body(status, name, detail, **extra)).encode("utf-8")
