"""Bounds on what one request may take: the size of its body, counted as it arrives.

A `Content-Length` over the limit is refused before anything is read; a body without one
(chunked) is counted chunk by chunk and refused as soon as it passes the limit, so nothing larger
is ever buffered or spooled. File uploads have their own, larger limit. This module knows nothing
about the routes beyond which paths take uploads.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_OVERHEAD = 64 * 1024  # multipart headers and boundaries around an uploaded file's bytes


class BodyTooLarge(HTTPException):
    """A body over its limit: 413. A FastAPI `HTTPException`, so body parsing passes it on unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over the limit of {_size(limit)}.")


def _size(n: int) -> str:
    """`_size(1_000_000)` -> `"1 MB"`; `_size(65_536)` -> `"66 kB"`."""
    return f"{n / 1e6:.0f} MB" if n >= 1_000_000 else f"{n / 1e3:.0f} kB"


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` (over `upload_bytes` on upload routes) with a JSON 413.

    Args:
        app: the app to guard.
        max_bytes: the limit for every body but an upload.
        upload_bytes: the file size limit for `POST /api/documents` and Gradio's `/upload` routes
            (their bodies may be `UPLOAD_OVERHEAD` larger).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes

    def limit_for(self, method: str, path: str) -> tuple[int, int]:
        """The most bytes a body on this route may have, and the limit its error message names."""
        if (method == "POST" and path.rstrip("/") == "/api/documents") or path.endswith("/upload"):
            return self.upload_bytes + UPLOAD_OVERHEAD, self.upload_bytes
        return self.max_bytes, self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, shown = self.limit_for(scope.get("method", ""), scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, shown)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(shown)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # raised where no handler turned it into a response (e.g. a mounted app)
            if not started:
                await _refuse(send, shown)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "too_large", "message": BodyTooLarge(limit).detail}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers + [(b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
