"""Bounds on what one request may take (the size of its body, counted as it arrives) and on how
many requests one client may send (a rate limit).

A `Content-Length` over the limit is refused before anything is read; a body without one
(chunked) is counted chunk by chunk and refused as soon as it passes the limit, so nothing larger
is ever buffered or spooled. File uploads have their own, larger limit. This module knows nothing
about the routes beyond which paths take uploads.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable

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
        started = False  # the inner app's response has begun
        tripped = False  # the body passed the limit
        refused = False  # our 413 has gone out

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    tripped = True
                    raise BodyTooLarge(shown)
            return message

        async def watched(message: Message) -> None:
            nonlocal started, refused
            if tripped and not started:
                # A mounted app (Gradio) answers the error in its own shape, {"detail"}: send ours instead.
                if not refused:
                    refused = True
                    await _refuse(send, shown)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # raised where no handler turned it into a response
            tripped = True
        if tripped and not started and not refused:
            await _refuse(send, shown)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "too_large", "message": BodyTooLarge(limit).detail}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers + [(b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


class RateLimiter:
    """At most `count` requests per `period_s` from one client, over a sliding window.

    `RateLimiter.parse("30/minute")` allows 30 requests in any 60 seconds. Clients are told apart by
    a caller-chosen name (their API key's hash, else their address); memory stays bounded by
    forgetting clients whose window has emptied.
    """

    def __init__(self, count: int, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.period_s = period_s
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    @classmethod
    def parse(cls, spec: str) -> RateLimiter | None:
        """`"30/minute"` -> a limiter; `""` -> None (no limit)."""
        if not spec:
            return None
        count, _, period = spec.partition("/")
        return cls(int(count), PERIODS[period])

    def wait(self, client: str) -> float:
        """The seconds until `client` may send again (0: now), without counting a request."""
        window = self._seen.get(client)
        if not window:
            return 0.0
        now = self.clock()
        while window and window[0] <= now - self.period_s:
            window.popleft()
        return window[0] + self.period_s - now if len(window) >= self.count else 0.0

    def hit(self, client: str) -> float:
        """Count one request from `client`: 0 when allowed, else the seconds until it would be."""
        if (wait := self.wait(client)) > 0:
            return wait
        now = self.clock()
        window = self._seen.setdefault(client, deque())
        window.append(now)
        if len(self._seen) > 10_000:  # forget the clients that have gone quiet
            self._seen = {k: w for k, w in self._seen.items() if w and w[-1] > now - self.period_s}
        return 0.0
