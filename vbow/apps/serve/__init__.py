"""The shop-facing HTTP service (``pip install "vbow[serve]"``; ``vbow serve INDEX``).

FastAPI on uvicorn. ``POST /search`` takes a photo and returns the matching items with their
outlines in the photo; ``PUT``/``DELETE /items/{key}`` change the catalog durably (an fsync'd
write log, replayed at start); ``GET /`` is an upload page that works offline.

Modules
-------
``settings``     :class:`ServeSettings` (flags or ``VBOW_SERVE_*`` variables)
``app``          the FastAPI routes, token check and error handlers (:func:`create_app`)
``service``      :class:`CatalogService`: the index, its lock, cache, log and thumbnails
``writelog``     the durable append-only write log
``thumbnails``   thumbnail JPEGs and catalog image sizes by key
``cache``        the bounded, write-invalidated query cache
``guards``       body-size limit and request timeout middlewares
``problems``     RFC 9457 problem-details errors
``stats``        latency percentiles

The lock is :class:`vbow.concurrency.ReadWriteLock`; the bomb guard reads the header with
:func:`vbow.describe.image_header.sniff_image`.
"""

from __future__ import annotations

from vbow.apps.serve.settings import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, ServeSettings

__all__ = ["ServeSettings", "create_app", "app_from_env", "CatalogService", "TOKEN_ENV",
           "DEFAULT_HOST", "DEFAULT_PORT"]


def __getattr__(name: str):  # the FastAPI parts import only when used (an optional extra)
    if name in ("create_app", "app_from_env"):
        from vbow.apps.serve import app
        return getattr(app, name)
    if name == "CatalogService":
        from vbow.apps.serve.service import CatalogService
        return CatalogService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
