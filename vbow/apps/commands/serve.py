"""``vbow serve``: the HTTP search service over an index bundle (needs ``vbow[serve]``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

ORDER = 50

logger = logging.getLogger(__name__)


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Register the ``serve`` subcommand."""
    from vbow.apps.serve.settings import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV

    p = sub.add_parser("serve", help="serve an index over HTTP (search API and upload page)",
                       description="Serve an index bundle: POST /search, PUT/DELETE/GET "
                                   "/items/{key}, GET /health, GET /stats, the page at /, docs "
                                   "at /docs.")
    p.add_argument("index", help="index bundle directory (from vbow index)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default {DEFAULT_HOST}; only local clients)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--token", default=None,
                   help=f"write token (default: ${TOKEN_ENV}); without one the server is read-only")
    p.add_argument("--data-dir", default=None,
                   help="write log and thumbnails (default: INDEX.serve beside the bundle)")
    p.add_argument("--images", default=None,
                   help="folder of catalog images for thumbnails of items indexed offline")
    p.add_argument("--max-upload-mb", type=float, default=16.0, help="request body limit (MiB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="image pixel limit")
    p.add_argument("--timeout", type=float, default=60.0, help="request timeout (seconds)")
    p.add_argument("--cache", type=int, default=512, help="query cache entries (0: off)")
    p.add_argument("--compact-every", type=int, default=200,
                   help="save the bundle after this many writes (0: only at shutdown)")
    p.add_argument("--threads", type=int, default=None,
                   help="worker threads for searches (default: the framework's 40)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from vbow.apps.serve.app import create_app
    except ImportError as exc:
        print(f"vbow serve needs the serve extra: pip install \"vbow[serve]\" ({exc})", file=sys.stderr)
        return 2
    from vbow.apps.serve.settings import TOKEN_ENV, ServeSettings

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    settings = ServeSettings(index=args.index, data_dir=args.data_dir, token=token,
                             images_dir=args.images,
                             max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                             max_pixels=args.max_pixels, request_timeout=args.timeout,
                             cache_entries=args.cache, compact_every=args.compact_every)
    app = create_app(settings)
    if args.threads:
        _set_thread_tokens(app, args.threads)
    if settings.read_only:
        logger.warning("no write token: serving read-only")
    print(f"vbow: serving {args.index} ({len(app.state.service.index)} images) on "
          f"http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_keep_alive=5, timeout_graceful_shutdown=10)
    return 0


def _set_thread_tokens(app, n: int) -> None:
    import anyio.to_thread
    from contextlib import asynccontextmanager

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        anyio.to_thread.current_default_thread_limiter().total_tokens = n
        async with inner(a):
            yield

    app.router.lifespan_context = lifespan
