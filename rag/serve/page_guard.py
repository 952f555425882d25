"""The page's door: a sign-in form when the server has keys, and the rules Gradio's own routes
must obey before Gradio sees a request.

With reader keys set, the page and every Gradio route (`/config`, the queue, files, uploads) need
a key: typed once into `/login`, which opens a session kept in an HttpOnly, SameSite=Strict
cookie, or sent as `Authorization: Bearer <key>` (Gradio's Python client). Gradio's own
`auth_dependency` enforces that (see `rag.serve.admission.page_user`); `PageGuard` adds what
Gradio does not do: a browser is sent to the sign-in form instead of a bare 401, a POST from
another site's page is refused, Gradio's upload route needs the same writer's key as
`POST /api/documents`, and too many wrong keys are refused with 429. This module never answers
questions.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.errors import ForbiddenError, RagError, RateLimitedError, UnauthorizedError
from rag.serve.admission import SESSION_COOKIE, Admission, client_host, request_identity
from rag.serve.chat_handlers import TITLE
from rag.serve.error_responses import client_message, error_body, method_not_allowed_in_our_shape
from rag.serve.http_api import origin_allowed, refuse_unrouted

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28em; margin: 12vh auto; padding: 0 1em; line-height: 1.5; }}
label {{ display: block; font-weight: 600; margin: 1em 0 0.3em; }}
input {{ width: 100%; box-sizing: border-box; font-size: 1rem; padding: 0.5em; }}
button {{ margin-top: 1em; font-size: 1rem; padding: 0.5em 1.2em; }}
.err {{ color: #b91c1c; }}
</style></head><body>
<h1>{title}</h1>
<p>{purpose}</p>
{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="key">Key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</body></html>"""


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (`safe_next("//evil.example")` -> "/")."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(admission: Admission, next_path: str = "/", message: str = "", status: int = 200) -> HTMLResponse:
    purpose = (
        "This server needs a key to read its documents and answer questions. Type the key you were given."
        if admission.page_needs_key
        else "Sign in with an admin key to add and remove documents."
    )
    shown = f'<p class="err" role="alert">{html.escape(message)}</p>' if message else ""
    body = LOGIN_PAGE.format(
        title=html.escape(TITLE), purpose=purpose, message=shown, next=html.escape(safe_next(next_path), quote=True)
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def add_login_routes(app: FastAPI, admission: Admission, allowed_origins: set[str]) -> None:
    """`GET/POST /login` and `GET /logout`, registered before the page is mounted at "/"."""

    @app.get("/login", include_in_schema=False)
    async def login_form(next: str = "/") -> HTMLResponse:  # noqa: A002 (the query parameter's name)
        return login_page(admission, next)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, key: str = Form("", max_length=1000), next: str = Form("/")) -> Any:  # noqa: A002
        origin = request.headers.get("origin")
        if not origin_allowed(origin, request.url.scheme, request.headers.get("host", ""), allowed_origins):
            return login_page(admission, next, "Sign in from this app's own page.", 403)
        try:
            token = admission.sign_in(key, client_host(request))
        except RateLimitedError as e:
            page = login_page(admission, next, str(e), 429)
            page.headers["Retry-After"] = str(e.retry_after_s)
            return page
        except UnauthorizedError as e:
            return login_page(admission, next, str(e), 401)
        done = RedirectResponse(safe_next(next), status_code=303)
        secure = request.url.scheme == "https"
        done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
        return done

    @app.get("/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        admission.sessions.close(request.cookies.get(SESSION_COOKIE))
        done = RedirectResponse("/login" if admission.page_needs_key else "/", status_code=303)
        done.delete_cookie(SESSION_COOKIE, path="/")
        return done

    refuse_unrouted(app, "/login", "/logout")  # else Gradio's own /login answers PUT with "Allow: POST"


class PageGuard:
    """ASGI middleware in front of the page's Gradio routes (everything the API does not route).

    Args:
        app: the whole app.
        admission: the shared keys, sign-ins and throttle.
        allowed_origins: the sites besides the app's own whose pages may POST (`RAG_CORS_ORIGINS`).
        api_prefixes: paths that are the API's, left to its own dependencies (and `/widget.js`,
            which other sites' pages load without signing in: it holds no secret).
    """

    def __init__(
        self,
        app: ASGIApp,
        admission: Admission,
        allowed_origins: set[str],
        api_prefixes: tuple[str, ...] = (
            "/api/",
            "/v1/",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/login",
            "/logout",
            "/mcp",  # MCP clients: keys and limits at its own door (rag.serve.mcp_server.McpDoor)
            "/widget.js",
        ),
    ) -> None:
        self.app = app
        self.admission = admission
        self.allowed_origins = allowed_origins
        self.api_prefixes = api_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.api_prefixes):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            self.check(request)
        except _SignIn:
            query = urlencode({"next": path + ("?" + request.url.query if request.url.query else "")})
            await RedirectResponse(f"/login?{query}", status_code=303)(scope, receive, send)
            return
        except RagError as e:
            headers = {"Retry-After": str(e.retry_after_s)} if isinstance(e, RateLimitedError) else {}
            if e.status == 401 and self.admission.page_needs_key:
                headers["WWW-Authenticate"] = "Bearer"
            body = json.dumps(error_body(e.code, client_message(e))).encode()
            headers |= {"content-type": "application/json"}
            await Response(body, e.status, headers)(scope, receive, send)
            return
        await self.app(scope, receive, method_not_allowed_in_our_shape(scope, send))  # Gradio's 405s too

    def check(self, request: Request) -> None:
        """Raises: _SignIn (a browser that should sign in first), or the RagError to answer with."""
        method, path = request.method, request.url.path
        # A wrong key: 401, too many of them: 429, on every page route.
        identity = request_identity(self.admission, request, page=True)
        if method == "GET" and path in ("/", "") and not self.admission.may_read(identity):
            raise _SignIn()
        if method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if not origin_allowed(origin, request.url.scheme, request.headers.get("host", ""), self.allowed_origins):
                raise ForbiddenError(f"Requests from the page at {origin} are refused: use this app's own page.")
        if path.rstrip("/").endswith("/gradio_api/upload"):
            self.admission.require_writer(identity)  # the same key as POST /api/documents
            self.admission.count(identity)


class _SignIn(Exception):
    """A browser asked for the page without the key it needs."""
