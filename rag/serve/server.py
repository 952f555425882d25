"""Serve the API and the browser chat from one process, showing a loading page while the model loads.

`build_app` composes a built pipeline into the full app (API routes, MCP at `/mcp`, browser chat at "/").
`WarmupApp` is the ASGI app uvicorn serves from the first second: it answers with a loading page
(and 503s from the API) until `ready()` hands it the full app, then forwards every request.
This module does not build the pipeline; `app.py` does that in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import Receive, Scope, Send

from rag.errors import ModelLoadingError
from rag.library import DocumentLibrary
from rag.pipeline import RagPipeline
from rag.serve.admission import Admission
from rag.serve.chat_handlers import TITLE
from rag.serve.chat_ui import build_ui, mount_ui
from rag.serve.error_responses import error_body, public_message
from rag.serve.feedback import FeedbackLog
from rag.serve.http_api import cors_origins, create_app
from rag.serve.mcp_server import MCP_PATH, build_mcp_server, mount_mcp, refusal
from rag.serve.page_guard import PageGuard, add_login_routes
from rag.serve.widget import add_widget_route
from rag.settings import Settings

log = logging.getLogger(__name__)


def build_app(pipeline: RagPipeline, settings: Settings, library: DocumentLibrary | None = None) -> FastAPI:
    """The whole app: the HTTP API, the MCP server at `/mcp`, and the browser chat mounted at "/".

    Args:
        pipeline: a built pipeline.
        settings: the settings it was built from (API keys, data folder, chunking).
        library: defaults to a library over the pipeline's retriever.

    Returns:
        A FastAPI app ready for uvicorn.
    """
    library = library or DocumentLibrary(pipeline.retriever, settings)
    library.reconcile()  # after a crash mid-upload, or an index saved by another process without an upload
    feedback = FeedbackLog.from_settings(settings)
    admission = Admission.from_settings(settings)  # one for every door: keys, rate limit, answer gate
    app = create_app(pipeline, library, settings, feedback=feedback, admission=admission)
    metrics = app.state.metrics
    origins = cors_origins(settings)
    add_login_routes(app, admission, origins)
    add_widget_route(app)  # /widget.js, for other sites' pages (before the page takes "/")
    mcp = build_mcp_server(pipeline, library, admission.gate, on_answer=lambda a: metrics.observe_answer(a, "mcp"))
    mount_mcp(app, mcp, admission, settings)  # /mcp for MCP clients, behind the same admission
    app.add_middleware(PageGuard, admission=admission, allowed_origins=origins)
    ui = build_ui(
        pipeline,
        library,
        settings,
        feedback=feedback,
        on_answer=lambda a: metrics.observe_answer(a, "ui"),
        admission=admission,
    )
    return mount_ui(app, ui, "/", max_file_bytes=library.max_bytes)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app: forwarded headers believed only from `RAG_TRUSTED_PROXIES`
    (uvicorn's own default trusts any local client, which could then pick its rate-limit identity)."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    return {
        "host": settings.host,
        "port": settings.port,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }


LOADING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} (loading)</title><noscript><meta http-equiv="refresh" content="5"></noscript>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40em; margin: 15vh auto; padding: 0 1em; line-height: 1.5; }}
.spin {{ display: inline-block; width: 1em; height: 1em; border: 3px solid #cbd5e1; border-top-color: #1d4ed8;
  border-radius: 50%; animation: s 1s linear infinite; vertical-align: -0.15em; margin-right: 0.4em; }}
@keyframes s {{ to {{ transform: rotate(360deg); }} }}
.err {{ color: #b91c1c; }}
</style></head><body>
<h1>{title}</h1>
<p id="msg" role="status" aria-live="polite">{message}</p>
<script>
(function poll() {{
  fetch('/healthz', {{cache: 'no-store'}}).then(function (r) {{ return r.json(); }}).then(function (h) {{
    if (h.status === 'ok') {{ location.reload(); return; }}
    if (h.status === 'error') {{
      var m = document.getElementById('msg'); m.className = 'err'; m.textContent = h.message; return;
    }}
    setTimeout(poll, 1500);
  }}).catch(function () {{ setTimeout(poll, 3000); }});
}})();
</script></body></html>"""


def loading_app(state: WarmupApp, origins: set[str] = frozenset()) -> FastAPI:
    """What is served until the model is ready: a self-refreshing page, `/healthz` and 503s (with
    CORS headers for `origins`, so a widget on a listed site can say the model is loading)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["retry-after"],
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if state.error:
            return JSONResponse({"status": "error", "message": state.error}, status_code=503)
        return JSONResponse({"status": "loading", "message": "Loading the model…"}, status_code=503)

    add_widget_route(app)  # host pages opened while the model loads still get their widget

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
    async def anything(path: str) -> Any:
        if path == MCP_PATH.lstrip("/"):  # an MCP client reads a JSON-RPC error
            return refusal(ModelLoadingError(state.error or ModelLoadingError().args[0]), retry_after_s=10)
        if path.startswith(("api/", "v1/", "metrics")):
            e = ModelLoadingError(state.error or ModelLoadingError().args[0])
            return JSONResponse(error_body(e.code, str(e)), status_code=e.status, headers={"Retry-After": "10"})
        if state.error:
            message = f'<span class="err">The app could not start: {html.escape(state.error)}</span>'
        else:
            message = '<span class="spin" aria-hidden="true"></span>Loading the model… This page opens by itself when it is ready.'
        return HTMLResponse(LOADING_PAGE.format(title=html.escape(TITLE), message=message), status_code=503)

    return app


class WarmupApp:
    """ASGI app that serves `loading_app` until `ready(app)`, then the given app.

    It runs the real app's lifespan (Gradio starts its queue there) on the server's event loop
    when the app arrives, and closes it at shutdown.
    """

    def __init__(self, origins: set[str] = frozenset()) -> None:
        self.error: str | None = None
        self._target: Any = loading_app(self, origins)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stack = contextlib.AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._target(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._started.set()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stack.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the server's event loop is running (so `ready` can use it)."""
        return self._started.wait(timeout)

    def ready(self, app: FastAPI, timeout: float = 60.0) -> None:
        """Start `app`'s lifespan on the server loop, then route every request to it (call from any thread)."""
        if not self.wait_started(timeout) or self._loop is None:
            raise RuntimeError("the server did not start")

        async def start() -> None:
            await self._stack.enter_async_context(app.router.lifespan_context(app))

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout)
        self._target = app
        log.info("the app is ready")

    def failed(self, message: str) -> None:
        """Show `message` on the loading page and `/healthz` instead of the spinner (without server paths)."""
        self.error = public_message(message)
