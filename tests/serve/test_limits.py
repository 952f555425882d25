"""The rate limiter's sliding window, worked by hand with a fake clock."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from rag.serve.limits import BodyLimitMiddleware, RateLimiter


def test_a_sliding_window_per_client():
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    now[0] = 10.0
    assert limiter.hit("a") == 50.0  # the first request leaves the window at t=60
    assert limiter.hit("b") == 0  # another client has its own allowance
    now[0] = 60.0  # both requests made at t=0 have left the window; the refused one never counted
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    assert limiter.hit("a") == 60.0
    assert RateLimiter.parse("") is None
    parsed = RateLimiter.parse("30/minute")
    assert parsed is not None and (parsed.count, parsed.period_s) == (30, 60.0)


def chunked(data: bytes, size: int = 4096):
    """A body sent in chunks with no Content-Length, as a client may stream it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_a_mounted_app_s_oversized_streamed_body_gets_the_app_s_error_shape():
    page = FastAPI()  # like Gradio's app: its own handler turns the limit's HTTPException into {"detail"}

    @page.post("/gradio_api/upload")
    @page.post("/gradio_api/queue/join")
    async def read(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=10_000, upload_bytes=20_000)
    app.mount("/", page)
    client = TestClient(app)
    for path, body, limit in (("/gradio_api/queue/join", 12_000, "10 kB"), ("/gradio_api/upload", 100_000, "20 kB")):
        resp = client.post(path, content=chunked(b"x" * body))
        assert "content-length" not in resp.request.headers
        assert resp.status_code == 413
        message = f"The request body is over the limit of {limit}."
        assert resp.json() == {"error": {"code": "too_large", "message": message}}
    assert client.post("/gradio_api/queue/join", content=chunked(b"x" * 9_000)).json() == {"bytes": 9_000}
