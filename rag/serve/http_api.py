"""The HTTP API: ask (JSON or server-sent events), search, documents, feedback, health and metrics,
plus the OpenAI-compatible `/v1/chat/completions` from `rag.serve.openai_routes`.

`create_app` receives a built pipeline and library; it never builds models or reads globals.
Generation runs in a worker thread so the server stays responsive. Interactive docs pages are
off (they load scripts from a CDN); the schema is at `/openapi.json`. The browser UI is mounted
beside these routes by `rag.serve.server`, not here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.routing import Match, Mount, Route
from starlette.types import Scope

from rag.errors import DocumentError, ForbiddenError, RagError
from rag.library import DocumentLibrary
from rag.pipeline import MAX_QUESTION_CHARS, RagPipeline, StreamEvent
from rag.serve import openai_routes
from rag.serve.admission import Admission, guard
from rag.serve.error_responses import (
    NOT_BLANK,
    STRICT_BODY,
    WHOLE,
    CatchAllMiddleware,
    client_message,
    documented,
    error_body,
    error_response,
    install_error_handlers,
    streamed,
)
from rag.serve.feedback import MAX_COMMENT_CHARS, FeedbackLog
from rag.serve.limits import BodyLimitMiddleware, BodyTooLarge
from rag.serve.prometheus import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from rag.serve.provenance import answer_json, sources_json, uploaded_ids
from rag.serve.streaming import AnswerGate, AnswerStream, Frame
from rag.settings import Settings


class Turn(BaseModel):
    model_config = STRICT_BODY

    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=20_000)


class AskRequest(BaseModel):
    model_config = STRICT_BODY

    question: str = Field(
        ..., min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK, examples=["What is an AI Growth Zone?"]
    )
    history: list[Turn] = Field(default_factory=list, max_length=50)
    top_k: Annotated[int, Field(ge=1, le=20), WHOLE] | None = None
    stream: bool = False


class FeedbackRequest(BaseModel):
    model_config = STRICT_BODY

    helpful: bool
    question: str = Field("", max_length=MAX_QUESTION_CHARS)
    answer: str = Field("", max_length=20_000)
    citations: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)


def index_status(pipeline: RagPipeline) -> dict[str, Any]:
    """The live index's size, build time and embedding model, as `/healthz` reports them."""
    m = pipeline.retriever.data.manifest
    return {
        "chunks": len(pipeline.retriever.chunks),
        "documents": len(pipeline.retriever.documents),
        "built_at": m.get("built_at", ""),
        "updated_at": m.get("updated_at", m.get("built_at", "")),
        "embedding_model": m.get("embedding_model", ""),
        "vector_store": pipeline.retriever.data.vectors.describe(),
    }


def search_results(pipeline: RagPipeline, q: str, k: int, library: DocumentLibrary) -> dict[str, Any]:
    """What `GET /api/search` returns: the passages retrieval finds, ranked, with their scores and
    whether their document was uploaded.

    Raises:
        EmptyQuestionError: the query is blank.
    """
    hits = pipeline.search(q, k)
    uploaded = uploaded_ids(library)
    return {
        "query": q,
        "results": [
            {"rank": i, "score": round(h.score, 6), "dense_rank": h.dense_rank, "lexical_rank": h.lexical_rank}
            | h.chunk.to_dict()
            | {"uploaded": h.chunk.doc_id in uploaded}
            for i, h in enumerate(hits, 1)
        ],
    }


def document_with_body(library: DocumentLibrary, doc_id: str) -> dict[str, Any]:
    """One document's metadata and full text.

    Raises:
        NotFoundError: there is no such document.
    """
    return {**library.info(doc_id).to_dict(), "body": library.get(doc_id).body}


async def read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """The file name and bytes of a multipart upload in the field `file`.

    Parsed by hand; `BodyLimitMiddleware` refuses an oversized body while it arrives, before it
    is spooled to disk.

    Raises:
        DocumentError: the body is not multipart, or has no `file` field.
        BodyTooLarge: the body passed the upload limit.
    """
    try:
        form = await request.form(max_files=1, max_fields=5)
    except BodyTooLarge:
        raise
    except Exception as e:  # malformed multipart bodies raise several types
        raise DocumentError("Send the file as multipart/form-data in a field called `file`.") from e
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise DocumentError("Send the file as multipart/form-data in a field called `file`.")
        return upload.filename or "upload", await upload.read(max_bytes + 1)
    finally:
        await form.close()  # removes the spooled temporary file


def create_app(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    settings: Settings,
    *,
    feedback: FeedbackLog | None = None,
    admission: Admission | None = None,
) -> FastAPI:
    """The API app.

    Args:
        pipeline: the built question-answering pipeline.
        library: the document library over the same retriever.
        settings: read for keys and request limits (body size, queue, time, rate).
        feedback: where votes go; defaults to `<data_dir>/feedback.jsonl`.
        admission: the keys, rate limit and answer gate shared with the page; built from
            `settings` when not given.

    Returns:
        A FastAPI app; its `state.metrics` is the app's `rag.serve.prometheus.Metrics` and its
        `state.admission` the `Admission` every door must share.
    """
    feedback = feedback or FeedbackLog.from_settings(settings)
    metrics = Metrics()
    metrics.watch_index(lambda: len(pipeline.retriever.chunks), lambda: len(pipeline.retriever.documents))
    app = FastAPI(
        title="UK AI policy documents — cited answers",
        version="1.0",
        description="Answers from the indexed UK AI policy documents, each claim cited to a passage.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by `add_operations_routes`, behind the keys
    )
    app.state.metrics = metrics
    admission = admission or Admission.from_settings(settings)
    app.state.admission = admission
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, upload_bytes=library.max_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    origins = cors_origins(settings)
    if origins:  # pages on these origins may call the API and read its replies
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["retry-after"],
        )

    # A page on any other origin is refused before its key is checked or anything runs.
    auth = [Depends(same_origin(origins)), Depends(guard(admission, "reader"))]
    api = APIRouter(prefix="/api", dependencies=auth)
    add_answer_routes(api, pipeline, library, metrics, admission.gate)
    add_document_routes(api, library, settings, admission)
    add_feedback_route(api, feedback)
    app.include_router(api)
    app.include_router(openai_routes.make_router(pipeline, library, metrics, admission.gate), dependencies=auth)
    add_operations_routes(app, pipeline, metrics, admission)
    return app


ANSWERING = (400, 401, 413, 422, 429, 502, 503, 504)  # the errors a route that generates can return


def add_answer_routes(
    api: APIRouter, pipeline: RagPipeline, library: DocumentLibrary, metrics: Metrics, gate: AnswerGate
) -> None:
    """`POST /api/ask` (through the gate: bounded queue, time limit) and `GET /api/search`."""

    @api.post(
        "/ask",
        summary="Answer a question with citations (JSON, or SSE with `stream: true`)",
        responses=streamed("The answer (JSON), or its events with `stream: true`") | documented(*ANSWERING),
    )
    async def ask(req: AskRequest, request: Request) -> Any:
        history = [t.model_dump() for t in req.history]
        stream = await AnswerStream.start(pipeline, req.question, history, req.top_k, gate)
        if req.stream:
            return stream.sse(lambda events: ask_frames(events, library, metrics), error_frames)
        answer = await stream.answer(request)  # a client that hangs up stops the generation
        metrics.observe_answer(answer)
        return answer_json(answer, library)

    @api.get(
        "/search",
        summary="The passages retrieval finds for a query, with scores",
        responses=documented(400, 401, 422, 429),
    )
    async def search(
        q: str = Query(..., min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK, description="the query"),
        k: int = Query(5, ge=1, le=50, description="how many passages"),
    ) -> dict[str, Any]:
        return await run_in_threadpool(search_results, pipeline, q, k, library)


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}


def same_origin(allowed: set[str]) -> Any:
    """A dependency that refuses (403) a request sent by a page from another origin than the app's
    own or one in `allowed`. CORS alone would only hide the reply: a browser sends some requests
    cross-site without asking first (a form's multipart upload, a question posted as a typeless
    Blob), and the model would still answer them. Requests with no `Origin` header (curl,
    scripts) pass."""

    async def check(request: Request) -> None:
        origin = request.headers.get("origin")
        if not origin_allowed(origin, request.url.scheme, request.headers.get("host", ""), allowed):
            raise ForbiddenError(
                f"Requests from the page at {origin} are refused: use this app's own page, "
                "or add that origin to RAG_CORS_ORIGINS."
            )

    return check


def origin_allowed(origin: str | None, scheme: str, host: str, allowed: set[str]) -> bool:
    """Whether a request from a page at `origin` may change things here: no `Origin` (curl,
    scripts), the app's own, or one listed in `allowed`.

    `origin_allowed("http://evil.example", "http", "127.0.0.1:7860", set())` -> False.
    """
    return origin is None or origin.rstrip("/") in allowed | {f"{scheme}://{host}"}


def cors_origins(settings: Settings) -> set[str]:
    """`RAG_CORS_ORIGINS` as a set: `"https://a.example, http://localhost:3000/"` -> both, without "/"."""
    return {o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip()}


def add_document_routes(api: APIRouter, library: DocumentLibrary, settings: Settings, admission: Admission) -> None:
    """List, read, upload and remove documents under `/api/documents`; changes need a writer's key."""
    admin = Depends(guard(admission, "writer", count=False))
    origins = cors_origins(settings)

    @api.get("/documents", summary="Every indexed document with its metadata", responses=documented(401, 429))
    async def list_documents() -> dict[str, Any]:
        return {"documents": [i.to_dict() for i in library.list()]}

    @api.get(
        "/documents/{doc_id}", summary="One document, with its full text", responses=documented(401, 404, 422, 429)
    )
    async def get_document(doc_id: str) -> dict[str, Any]:
        return document_with_body(library, doc_id)

    @api.post(
        "/documents",
        status_code=201,
        summary="Upload a PDF, DOCX, HTML, Markdown or text file into the index",
        openapi_extra={"requestBody": UPLOAD_BODY},
        responses=documented(400, 401, 403, 413, 429, 503),
        dependencies=[Depends(same_origin(origins)), admin],
    )
    async def upload_document(request: Request) -> dict[str, Any]:
        name, data = await read_upload(request, library.max_bytes)
        info = await run_in_threadpool(library.add, name, data)
        return info.to_dict()

    @api.delete(
        "/documents/{doc_id}",
        summary="Remove an uploaded document",
        dependencies=[admin],
        responses=documented(400, 401, 404, 422, 429, 503),
    )
    async def delete_document(doc_id: str) -> dict[str, Any]:
        await run_in_threadpool(library.remove, doc_id)
        return {"deleted": doc_id}


def add_feedback_route(api: APIRouter, feedback: FeedbackLog) -> None:
    """`POST /api/feedback`."""

    @api.post(
        "/feedback",
        status_code=201,
        summary="Record whether an answer helped",
        responses=documented(401, 413, 422, 429),
    )
    async def post_feedback(req: FeedbackRequest) -> dict[str, Any]:
        rec = await run_in_threadpool(lambda: feedback.record(**req.model_dump()))
        return {"ok": True, "timestamp": rec["timestamp"]}


def add_operations_routes(app: FastAPI, pipeline: RagPipeline, metrics: Metrics, admission: Admission) -> None:
    """`/healthz` (open), `/metrics` and `/openapi.json` (behind any key, when there are keys), and a
    JSON 404 for unknown `/api/...` paths."""
    operators = [Depends(guard(admission, "operator", count=False))]

    @app.get("/healthz", summary="Liveness and index status")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": pipeline.model_name, "index": index_status(pipeline)}

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        dependencies=operators,
        responses=documented(401),
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False, dependencies=operators)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # Registered last, so they only see what no route above took. Without them, an unknown /api path
    # or a wrong method would fall through to the browser UI mounted at "/".
    refuse_unrouted(app, "/api/{rest:path}", "/v1/{rest:path}", "/healthz", "/metrics", "/openapi.json")


def refuse_unrouted(app: FastAPI, *paths: str) -> None:
    """Answer every request to these paths that no route registered before took, whatever its
    method (TRACE, PROPFIND, made-up ones): 405 with `Allow` when the path takes other methods,
    else a JSON 404. Call it after the paths' own routes and before the page is mounted at "/",
    whose Gradio app would otherwise answer them in its own shape (a 404 for TRACE /api/ask)."""
    app.router.routes.extend(Unrouted(path) for path in paths)


class Unrouted(Route):
    """A route for every method at `path` (a Starlette route with a function endpoint takes GET
    only), named in the scope as FastAPI names its own so the metrics label it by its template."""

    def __init__(self, path: str) -> None:
        super().__init__(path, self._refuse, include_in_schema=False)
        self.methods = None  # every method

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL:
            child_scope["route"] = self
        return match, child_scope

    async def _refuse(self, request: Request) -> Response:
        path = request.url.path
        allowed = allowed_methods(request.app, request)
        if allowed:
            message = f"{request.method} is not allowed on {path}; use {', '.join(allowed)}."
            return error_response("method_not_allowed", message, 405, {"Allow": ", ".join(allowed)})
        return error_response("not_found", f"There is no API route {path}.", 404)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods some route of `app` (not its mounts, nor an `Unrouted`) takes at this path."""
    allowed = []
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        probe = {**request.scope, "method": method}
        for route in app.router.routes:
            if isinstance(route, Mount | Unrouted):
                continue
            if route.matches(probe)[0] == Match.FULL:
                allowed.append(method)
                break
    return allowed


async def ask_frames(
    events: AsyncIterator[StreamEvent], library: DocumentLibrary, metrics: Metrics
) -> AsyncIterator[Frame]:
    """SSE events: `rewritten` {"question"}, `writing` {} once the model has begun, a `sentence`
    {"text", "citations"} per checked sentence as it is ready, then `answer` (the Answer JSON, whose
    text begins with the sentences sent). The model's unchecked draft is never sent."""
    uploaded = uploaded_ids(library)
    writing = False
    async for ev in events:
        if ev.kind == "rewritten":
            yield {"event": "rewritten", "data": json.dumps({"question": ev.data})}
        elif ev.kind == "token" and not writing:
            writing = True
            yield {"event": "writing", "data": "{}"}
        elif ev.kind == "sentence":
            data = {"text": ev.data, "citations": sources_json(list(ev.citations), uploaded)}
            yield {"event": "sentence", "data": json.dumps(data)}
        elif ev.kind == "answer":
            metrics.observe_answer(ev.data)
            yield {"event": "answer", "data": json.dumps(answer_json(ev.data, library))}


def error_frames(e: RagError) -> list[Frame]:
    """An `error` event with the usual error body."""
    return [{"event": "error", "data": json.dumps(error_body(e.code, client_message(e)))}]
