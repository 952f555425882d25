"""`GET /widget.js`: the chat widget another site's page embeds with one script tag (see docs/widget.md).

The script (`rag/serve/widget.js`, package data) is served as it is, open to anyone: it holds no
secret, and the questions it sends to `/api/ask` still need the server's key and an origin listed
in `RAG_CORS_ORIGINS`. This module answers no questions and sets no CORS rules.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from fastapi import FastAPI, Request, Response

from rag.serve.http_api import refuse_unrouted

WIDGET_PATH = "/widget.js"
# An hour: a fixed script changes only with the server, and the ETag makes the check after that cheap.
CACHE_CONTROL = "public, max-age=3600"


def widget_script() -> bytes:
    """The widget's JavaScript, read from the package."""
    return resources.files("rag.serve").joinpath("widget.js").read_bytes()


def add_widget_route(app: FastAPI) -> None:
    """Serve the widget at `GET /widget.js` (HEAD too; any other method gets a JSON 405).

    Register it before the page is mounted at "/", whose Gradio app would otherwise take the path.

    Args:
        app: the whole app; `PageGuard` must let `/widget.js` through without the page's sign-in.
    """
    body = widget_script()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Other sites' pages load it, including ones that demand this of every resource (COEP).
        "Cross-Origin-Resource-Policy": "cross-origin",
    }

    @app.get(WIDGET_PATH, include_in_schema=False)
    async def widget(request: Request) -> Response:
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)

    refuse_unrouted(app, WIDGET_PATH)
