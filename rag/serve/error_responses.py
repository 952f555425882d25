"""Every HTTP error as one JSON shape: `{"error": {"code": "...", "message": "..."}}`.

`RagError`s keep their own code, status and message (written for the user); validation errors
become 422 with a readable message; anything else is a bug: logged with its traceback and
answered with a generic 500 that reveals nothing. This module defines no routes.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import EmptyQuestionError, RagError, RateLimitedError, ServerBusyError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "Something went wrong on the server. It has been logged; please try again."
# A schema pattern: at least one character that is not white space to `str.strip()` (which the
# pipeline uses). Spelt out because `\S` means less elsewhere: ECMA (validators, browsers) and Rust
# (pydantic) take "\x1e" for a letter, Python's `re.ASCII` (schemathesis) also "\u3000".
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUESTION_FIELDS = {"question", "q"}
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 when a JSON body cannot be decoded
# Request bodies take JSON values of the types their schema declares: lax pydantic would also take
# "5" or true for 5, false for 0.0 and 0 for false, which the schema calls invalid.
STRICT_BODY = ConfigDict(strict=True)


def _whole(value: Any) -> Any:
    """`_whole(5.0)` -> `5`: JSON Schema's integer is any number without a fraction, strict pydantic's only 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# For an int in a strict body: 5 and 5.0 pass, "5" and true do not. Its bounds go before it, as in
# `Annotated[int, Field(ge=1), WHOLE]`, or the schema shows them as "ge" rather than "minimum".
WHOLE = BeforeValidator(_whole)


# An absolute filesystem path: "/" at the start or after a space, quote or bracket (not in a URL).
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"“”`()]+/)*([^\s/'\"“”`():;,]*)")


def public_message(message: str) -> str:
    """A server-side error message fit for a client: absolute paths cut to their last part.

    `public_message("model file /srv/m/q.gguf does not exist")` -> `"model file q.gguf does not exist"`.
    """
    return _SERVER_PATH.sub(lambda m: m.group(1) or m.group(0).rstrip("/").rsplit("/", 1)[-1] + "/", message)


def client_message(exc: RagError) -> str:
    """What a client is told about `exc`: its message, without server paths when the server is at fault."""
    return public_message(str(exc)) if exc.status >= 500 else str(exc)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The one shape of every error, for the OpenAPI schema."""

    error: ErrorDetail


ERRORS = {
    400: "The input cannot be used (an empty question, an unreadable or unwanted document, ...)",
    401: "An API key is needed, or the one sent is wrong (admin key for changes)",
    403: "The request came from a page on another origin",
    404: "No such document or route",
    413: "The request body is over the limit",
    422: "A field is missing or malformed, or the body is not valid JSON",
    429: "Over the rate limit; see `Retry-After`",
    502: "The model backend failed",
    503: "The model is loading, the index or model is missing, the answer queue is full (`Retry-After`), or another process is writing the index",
    504: "The answer took longer than the time limit",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the error schema."""
    return {s: {"model": ErrorBody, "description": ERRORS[s]} for s in statuses}


def streamed(description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI for a 200 that is JSON, or server-sent events when the request asks to stream."""
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {"event": {"type": "string"}, "data": {"type": "string", "description": "JSON, or `[DONE]`"}},
    }
    return {200: {"description": description, "content": {"text/event-stream": {"itemSchema": event}}}}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(errors: list[Any]) -> str:
    """`[{"loc": ("body", "question"), "msg": "Field required"}]` -> `"question: Field required"`."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            return "The request body is not valid JSON."
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
        parts.append(f"{'.'.join(loc)}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "The request is not valid."


def _blank_question(errors: list[Any]) -> bool:
    """Whether the only problem is an empty or all-blank question (or search query)."""
    return bool(errors) and all(
        e.get("type") in ("string_too_short", "string_pattern_mismatch")
        and tuple(e.get("loc", ()))[-1:] in {(f,) for f in QUESTION_FIELDS}
        for e in errors
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the JSON shape above."""

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, ServerBusyError | RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after_s)}
        if exc.status >= 500:  # a full queue is expected under load, not a fault
            level = logging.INFO if isinstance(exc, ServerBusyError) else logging.WARNING
            log.log(level, "%s %s: %s", request.method, request.url.path, exc)
        return error_response(exc.code, client_message(exc), exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if _blank_question(errors):  # the schema says minLength 1 and not blank; the answer stays as before
            field = tuple(errors[0].get("loc", ()))[-1]
            message = "The search query is empty." if field == "q" else EmptyQuestionError().args[0]
            return error_response(EmptyQuestionError.code, message, EmptyQuestionError.status)
        return error_response("invalid_request", _validation_message(errors), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # bytes that are not UTF-8 JSON
            return error_response("invalid_request", "The request body is not valid JSON.", 422)
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return error_response(codes.get(exc.status_code, "http_error"), str(exc.detail), exc.status_code, exc.headers)


class CatchAllMiddleware:
    """Turns an unexpected exception into the generic JSON 500, logging the traceback once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
            if started:  # a streamed body was cut off; the client sees the connection end
                return
            body = json.dumps(error_body("internal_error", INTERNAL_MESSAGE)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


def method_not_allowed_in_our_shape(scope: Scope, send: Send) -> Send:
    """`send` for an app that is not ours (the page's Gradio routes): a 405 it answers goes out in
    the one error shape, keeping its `Allow` header; every other message passes unchanged."""
    allow: str | None = None

    async def wrapped(message: Message) -> None:
        nonlocal allow
        if message["type"] == "http.response.start" and message["status"] == 405:
            allow = dict(message.get("headers", [])).get(b"allow", b"").decode("latin-1")
            return  # theirs is dropped; ours goes out once their body has
        if allow is None:
            await send(message)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            use = f"; use {allow}" if allow else ""
            text = f"{scope.get('method')} is not allowed on {scope.get('path')}{use}."
            body = json.dumps(error_body("method_not_allowed", text)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send(
                {"type": "http.response.start", "status": 405, "headers": [*headers, (b"allow", allow.encode())]}
            )
            await send({"type": "http.response.body", "body": body})

    return wrapped
