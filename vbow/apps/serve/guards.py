"""ASGI middlewares that protect the service: a request-body size limit and a request timeout.

Both answer with problem-details JSON (:mod:`.problems`) and work below the framework, so they
hold for every route, including the framework's own error paths.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from vbow.apps.serve.problems import PROBLEM_CONTENT_TYPE, problem_bytes

__all__ = ["BodyLimitMiddleware", "TimeoutMiddleware"]

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bytes past the limit read and discarded before answering, so that an ordinary client that is
#: still sending receives the 413 instead of a reset connection.
_DRAIN_CAP = 64 * 1024 * 1024


async def send_problem(send: Send, status: int, name: str, detail: str, **extra: Any) -> None:
    """Send a complete problem-details response."""
    body = problem_bytes(status, name, detail, **extra)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 ``upload-too-large``.

    A ``Content-Length`` over the limit is refused before the app runs; a body without one
    (chunked) is counted as it streams, and the app is stopped the moment it goes over, so no
    endpoint ever acts on a cut-off upload.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_problem(send, 400, "bad-request",
                                       f"Content-Length {value[:40].decode('latin-1')!r} is not a number")
                    return
        if declared is not None and declared > limit:
            await self._drain(receive, min(declared, _DRAIN_CAP))
            await send_problem(send, 413, "upload-too-large",
                               f"the request body is {declared} bytes; the limit is {limit}",
                               limit=limit)
            return
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    if message.get("more_body", False):
                        await self._drain(receive, _DRAIN_CAP)
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # the app's own answer to the cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        if state["over"] and not state["started"]:
            await send_problem(send, 413, "upload-too-large",
                               f"the request body is over the limit of {limit} bytes", limit=limit)

    @staticmethod
    async def _drain(receive: Receive, cap: int) -> None:
        seen = 0
        while seen <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class TimeoutMiddleware:
    """Answer 504 ``timeout`` when a request takes longer than ``seconds`` (reading included).

    Work already running in a worker thread finishes in the background; its result is dropped.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = float(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracking_send), self.seconds)
        except asyncio.TimeoutError:
            logger.warning("%s %s timed out after %.1f s", scope.get("method"), scope.get("path"),
                           self.seconds)
            if not state["started"]:
                await send_problem(send, 504, "timeout",
                                   f"the request took longer than {self.seconds:g} s",
                                   limit_seconds=self.seconds)
