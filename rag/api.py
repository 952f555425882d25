"""The HTTP API: ask (JSON or server-sent events), search, documents, feedback, health and metrics,
plus the OpenAI-compatible `/v1/chat/completions` from `rag.openai_compat`.

`create_app` receives a built pipeline and library; it never builds models or reads globals.
Generation runs in a worker thread so the server stays responsive. Interactive docs pages are
off (they load scripts from a CDN); the schema is at `/openapi.json`. The browser UI is mounted
beside these routes by `rag.serving`, not here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from rag import openai_compat
from rag.api_errors import CatchAllMiddleware, error_response, install_error_handlers
from rag.errors import DocumentError, RagError, UnauthorizedError
from rag.feedback import MAX_COMMENT_CHARS, FeedbackLog
from rag.library import DocumentLibrary
from rag.metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from rag.pipeline import MAX_QUESTION_CHARS, RagPipeline, StreamEvent, final_answer
from rag.settings import Settings
from rag.threaded import iterate_in_thread

UPLOAD_OVERHEAD = 64 * 1024  # multipart headers and boundaries around the file's bytes


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=20_000)


class AskRequest(BaseModel):
    question: str = Field(..., max_length=MAX_QUESTION_CHARS, examples=["What is an AI Growth Zone?"])
    history: list[Turn] = Field(default_factory=list, max_length=50)
    top_k: int | None = Field(None, ge=1, le=20)
    stream: bool = False


class FeedbackRequest(BaseModel):
    helpful: bool
    question: str = Field("", max_length=MAX_QUESTION_CHARS)
    answer: str = Field("", max_length=20_000)
    citations: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)


def bearer_auth(keys: set[str]) -> Any:
    """A dependency that demands `Authorization: Bearer <key>` when any keys are configured."""

    async def check(request: Request) -> None:
        if not keys:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(token.strip(), k) for k in keys):
            raise UnauthorizedError("This server needs an API key: send the header `Authorization: Bearer <key>`.")

    return check


def index_status(pipeline: RagPipeline) -> dict[str, Any]:
    m = pipeline.retriever.data.manifest
    return {
        "chunks": len(pipeline.retriever.chunks),
        "documents": len(pipeline.retriever.documents),
        "built_at": m.get("built_at", ""),
        "updated_at": m.get("updated_at", m.get("built_at", "")),
        "embedding_model": m.get("embedding_model", ""),
        "vector_store": pipeline.retriever.data.vectors.describe(),
    }


def create_app(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    settings: Settings,
    *,
    feedback: FeedbackLog | None = None,
) -> FastAPI:
    """The API app.

    Args:
        pipeline: the built question-answering pipeline.
        library: the document library over the same retriever.
        settings: read for API keys only.
        feedback: where votes go; defaults to `<data_dir>/feedback.jsonl`.

    Returns:
        A FastAPI app; its `state.metrics` is the app's `rag.metrics.Metrics`.
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
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    auth = [Depends(bearer_auth(settings.api_key_set()))]
    api = APIRouter(prefix="/api", dependencies=auth)

    @api.post("/ask", summary="Answer a question with citations (JSON, or SSE with `stream: true`)")
    async def ask(req: AskRequest) -> Any:
        history = [t.model_dump() for t in req.history]
        events = iterate_in_thread(pipeline.stream(req.question, history, req.top_k))
        first = await anext(events)  # bad input raises here, as a JSON error rather than a broken stream
        if req.stream:
            return EventSourceResponse(_ask_events(first, events, metrics), ping=15)
        answer = await final_answer(first, events)
        metrics.observe_answer(answer)
        return answer.to_dict()

    @api.get("/search", summary="The passages retrieval finds for a query, with scores")
    async def search(
        q: str = Query(..., max_length=MAX_QUESTION_CHARS, description="the query"),
        k: int = Query(5, ge=1, le=50, description="how many passages"),
    ) -> dict[str, Any]:
        hits = await run_in_threadpool(pipeline.search, q, k)
        return {
            "query": q,
            "results": [
                {
                    "rank": i,
                    "score": round(h.score, 6),
                    "dense_rank": h.dense_rank,
                    "lexical_rank": h.lexical_rank,
                    **h.chunk.to_dict(),
                }
                for i, h in enumerate(hits, 1)
            ],
        }

    @api.get("/documents", summary="Every indexed document with its metadata")
    async def list_documents() -> dict[str, Any]:
        return {"documents": [i.to_dict() for i in library.list()]}

    @api.get("/documents/{doc_id}", summary="One document, with its full text")
    async def get_document(doc_id: str) -> dict[str, Any]:
        info = library.info(doc_id)
        return {**info.to_dict(), "body": library.get(doc_id).body}

    @api.post(
        "/documents",
        status_code=201,
        summary="Upload a PDF, DOCX, HTML, Markdown or text file into the index",
        openapi_extra={
            "requestBody": {
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
        },
    )
    async def upload_document(request: Request) -> dict[str, Any]:
        # Parsed by hand so an oversized body is refused before it is spooled to disk.
        length = int(request.headers.get("content-length") or 0)
        if length > library.max_bytes + UPLOAD_OVERHEAD:
            raise DocumentError(f"The upload is {length / 1e6:.1f} MB; the limit is {library.max_bytes / 1e6:.0f} MB.")
        try:
            form = await request.form(max_files=1, max_fields=5)
        except Exception as e:  # malformed multipart bodies raise several types
            raise DocumentError("Send the file as multipart/form-data in a field called `file`.") from e
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise DocumentError("Send the file as multipart/form-data in a field called `file`.")
            data = await upload.read(library.max_bytes + 1)
        finally:
            await form.close()  # removes the spooled temporary file
        info = await run_in_threadpool(library.add, upload.filename or "upload", data)
        return info.to_dict()

    @api.delete("/documents/{doc_id}", summary="Remove an uploaded document")
    async def delete_document(doc_id: str) -> dict[str, Any]:
        await run_in_threadpool(library.remove, doc_id)
        return {"deleted": doc_id}

    @api.post("/feedback", status_code=201, summary="Record whether an answer helped")
    async def post_feedback(req: FeedbackRequest) -> dict[str, Any]:
        rec = await run_in_threadpool(lambda: feedback.record(**req.model_dump()))
        return {"ok": True, "timestamp": rec["timestamp"]}

    app.include_router(api)
    v1 = openai_compat.make_router(pipeline, metrics)
    app.include_router(v1, dependencies=auth)

    @app.get("/healthz", summary="Liveness and index status")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": pipeline.model_name, "index": index_status(pipeline)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def unknown_api(rest: str) -> Response:
        # Without this, an unknown /api path would fall through to the browser UI mounted at "/".
        return error_response("not_found", f"There is no API route /api/{rest}.", 404)

    return app


async def _ask_events(
    first: StreamEvent, events: AsyncIterator[StreamEvent], metrics: Metrics
) -> AsyncIterator[dict[str, str]]:
    """SSE events: `rewritten` {"question"}, `token` {"text"} ..., then `answer` (the Answer JSON)."""

    def encode(ev: StreamEvent) -> dict[str, str]:
        if ev.kind == "rewritten":
            return {"event": "rewritten", "data": json.dumps({"question": ev.data})}
        if ev.kind == "token":
            return {"event": "token", "data": json.dumps({"text": ev.data})}
        metrics.observe_answer(ev.data)
        return {"event": "answer", "data": json.dumps(ev.data.to_dict())}

    yield encode(first)
    try:
        async for ev in events:
            yield encode(ev)
    except RagError as e:
        yield {"event": "error", "data": json.dumps({"error": {"code": e.code, "message": str(e)}})}
    finally:
        await events.aclose()  # a client that hung up stops the generation
