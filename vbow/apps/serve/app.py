"""The FastAPI application: routes, authentication and problem-details errors.

``create_app(settings)`` returns an ASGI app for uvicorn or any ASGI server; the ``vbow serve``
command and :func:`app_from_env` (``uvicorn --factory vbow.apps.serve:app_from_env``) build one.
The OpenAPI description is at ``/openapi.json`` and the interactive docs at ``/docs``.
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from vbow import __version__
from vbow.apps.serve.guards import BodyLimitMiddleware, TimeoutMiddleware
from vbow.apps.serve.problems import PROBLEM_CONTENT_TYPE, Problem, problem_body
from vbow.apps.serve.service import CatalogService, parse_filter, parse_metadata, validate_key
from vbow.apps.serve.settings import ServeSettings

__all__ = ["create_app", "app_from_env", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATUS_NAMES = {400: "bad-request", 404: "not-found", 405: "method-not-allowed",
                 413: "upload-too-large", 415: "unsupported-media-type", 422: "invalid-parameter"}


def _multipart_schema(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": fields, "required": required}}}}}


_SEARCH_FORM = _multipart_schema({
    "image": {"type": "string", "format": "binary", "description": "the shopper's photo"},
    "top_k": {"type": "integer", "default": 10, "minimum": 1},
    "where": {"type": "string", "description": 'metadata filter as JSON, e.g. {"category": "tea"}'},
    "rerank": {"type": "boolean", "description": "geometric re-ranking (default: the index's)"},
}, ["image"])
_PUT_FORM = _multipart_schema({
    "image": {"type": "string", "format": "binary", "description": "the catalog image"},
    "metadata": {"type": "string", "description": "JSON object stored with the item"},
}, ["image"])


def _problem_response(p: Problem) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="vbow"'} if p.status == 401 else None
    return JSONResponse(p.body(), status_code=p.status, media_type=PROBLEM_CONTENT_TYPE,
                        headers=headers)


def _parse_bool(text: Any, what: str) -> bool | None:
    if text is None or (isinstance(text, str) and text.strip() == ""):
        return None
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise Problem(422, "invalid-parameter", f"{what} must be true or false; got {str(text)[:40]!r}")


def _parse_int(text: Any, what: str, default: int) -> int:
    if text is None or (isinstance(text, str) and text.strip() == ""):
        return default
    try:
        return int(str(text).strip())
    except ValueError:
        raise Problem(422, "invalid-parameter", f"{what} must be an integer; got {str(text)[:40]!r}") from None


async def _read_form(request: Request) -> Any:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise Problem(415, "unsupported-media-type",
                      f"expected a multipart/form-data upload; got Content-Type {ctype[:80]!r}",
                      expected="multipart/form-data")
    try:
        return await request.form(max_files=2, max_fields=16)
    except StarletteHTTPException as exc:
        raise Problem(400, "bad-request", f"malformed multipart body: {exc.detail}") from None
    except Exception as exc:  # the multipart parser's own errors
        raise Problem(400, "bad-request", f"malformed multipart body: {exc}") from None


async def _image_field(form: Any) -> bytes:
    item = form.get("image")
    if item is None:
        raise Problem(422, "missing-image", "the form has no 'image' file field")
    if not isinstance(item, UploadFile):
        raise Problem(422, "missing-image", "'image' must be a file upload (the server never "
                      "fetches URLs given by a client)")
    return await item.read()


def create_app(settings: ServeSettings, service: CatalogService | None = None) -> FastAPI:
    """The ASGI application serving ``settings.index``.

    Parameters
    ----------
    settings : ServeSettings
        Bundle, token and limits.
    service : CatalogService, optional
        An already opened service (default: opened here, from ``settings``).

    Returns
    -------
    FastAPI
        Close it through its lifespan (uvicorn and ``TestClient`` as a context manager do); that
        saves writes still in the log.
    """
    svc = service if service is not None else CatalogService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(svc.close)

    app = FastAPI(title="vbow product image search", version=__version__, lifespan=lifespan,
                  description="Search a catalog of product images with a shopper's photo. "
                              "Writes need `Authorization: Bearer <token>`; errors are RFC 9457 "
                              "problem details with a stable `type`.")
    app.state.service = svc
    token = None if settings.token is None else settings.token.encode("utf-8")

    def require_token(request: Request) -> None:
        if token is None:
            raise Problem(403, "read-only", "this server has no write token configured, so it is "
                          "read-only (start it with --token or VBOW_SERVE_TOKEN)")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Problem(401, "unauthorized", "writes need an 'Authorization: Bearer <token>' header")
        if not hmac.compare_digest(given.strip().encode("utf-8"), token):
            raise Problem(401, "unauthorized", "wrong token")

    @app.exception_handler(Problem)
    async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _STATUS_NAMES.get(exc.status_code, "bad-request")
        return JSONResponse(problem_body(exc.status_code, name, str(exc.detail)),
                            status_code=exc.status_code, media_type=PROBLEM_CONTENT_TYPE)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(problem_body(422, "invalid-parameter", str(exc.errors())[:500]),
                            status_code=422, media_type=PROBLEM_CONTENT_TYPE)

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(problem_body(500, "internal-error", f"{type(exc).__name__}"),
                            status_code=500, media_type=PROBLEM_CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.post("/search", openapi_extra=_SEARCH_FORM, tags=["search"],
              summary="Find the catalog items shown in an uploaded photo")
    async def search(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        form = await _read_form(request)
        try:
            data = await _image_field(form)
            top_k = _parse_int(form.get("top_k"), "top_k", 10)
            where = parse_filter(form.get("where"))
            rerank = _parse_bool(form.get("rerank"), "rerank")
        finally:
            await form.close()
        use_cache = "no-cache" not in request.headers.get("cache-control", "").lower()
        answer = await run_in_threadpool(svc.search, data, top_k, where, rerank, use_cache)
        answer["timings"]["request"] = round(time.perf_counter() - t0, 6)
        return JSONResponse(answer)

    @app.put("/items/{key:path}", openapi_extra=_PUT_FORM, tags=["items"],
             summary="Add or replace an item (needs the token)")
    async def put_item(key: str, request: Request) -> JSONResponse:
        require_token(request)
        validate_key(key)
        form = await _read_form(request)
        try:
            data = await _image_field(form)
            metadata = parse_metadata(form.get("metadata"))
        finally:
            await form.close()
        return JSONResponse(await run_in_threadpool(svc.put, key, data, metadata))

    @app.delete("/items/{key:path}", tags=["items"], summary="Remove an item (needs the token)")
    async def delete_item(key: str, request: Request) -> JSONResponse:
        require_token(request)
        return JSONResponse(await run_in_threadpool(svc.delete, validate_key(key)))

    @app.get("/items/{key:path}", tags=["items"], summary="An item's metadata and thumbnail")
    async def get_item(key: str) -> JSONResponse:
        validate_key(key)
        return JSONResponse(await run_in_threadpool(svc.get_item, key))

    @app.get("/thumbnails/{key:path}", tags=["items"], summary="An item's thumbnail (JPEG)",
             response_class=Response)
    async def get_thumbnail(key: str) -> Response:
        validate_key(key)
        jpeg = await run_in_threadpool(svc.thumbnail, key)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @app.get("/health", tags=["status"], summary="Liveness")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "images": len(svc.index), "read_only": settings.read_only}

    @app.get("/stats", tags=["status"], summary="Counters and latency percentiles")
    async def stats() -> dict[str, Any]:
        return await run_in_threadpool(svc.stats)

    @app.post("/admin/save", tags=["admin"], summary="Save the index and empty the write log")
    async def save(request: Request) -> JSONResponse:
        require_token(request)
        return JSONResponse(await run_in_threadpool(svc.save))

    # outermost first: the timeout covers reading the body too
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(TimeoutMiddleware, seconds=settings.request_timeout)
    return app


def app_from_env() -> FastAPI:
    """An app configured from ``VBOW_SERVE_*`` variables (``uvicorn --factory`` entry point)."""
    return create_app(ServeSettings.from_env())
