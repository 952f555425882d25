"""The MCP server (Model Context Protocol), for assistants such as Claude Desktop: a tool `ask`
(the checked answer with its citations), a tool `search` (ranked passages), and every document
as a resource `doc://{id}`.

`build_mcp_server` receives the built pipeline and library and returns the SDK's `MCPServer`; it
never builds models. Two transports serve it: streamable HTTP at `/mcp` on the app (`mount_mcp`),
behind the same `Admission` as every other door (keys, rate limit, answer gate and time limit),
and stdio (`serve_stdio`, which `python -m rag mcp` runs) for a desktop client that starts the
process itself. A `RagError` comes back as a tool error with its message; anything else is logged
and the client is told only that the tool failed. This module decides nothing about answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import INVALID_REQUEST, Resource, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.errors import ForbiddenError, NotFoundError, RagError, RateLimitedError
from rag.library import DocumentLibrary
from rag.pipeline import MAX_QUESTION_CHARS, RagPipeline
from rag.serve.admission import Admission, request_identity
from rag.serve.error_responses import client_message
from rag.serve.http_api import cors_origins, origin_allowed
from rag.serve.provenance import uploaded_ids
from rag.serve.streaming import AnswerGate, AnswerStream
from rag.settings import Settings
from rag.types import Answer, Document

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
DOC_SCHEME = "doc://"
MAX_TURNS = 50  # of `history`, as on `POST /api/ask`
MAX_K = 50  # passages one search may return, as on `GET /api/search`
LOOPBACK = ("127.0.0.1", "localhost", "::1")

INSTRUCTIONS = """\
Cited answers from a library of official UK AI policy documents: the AI Opportunities Action Plan \
(with the government's response and the one-year-on report), the memoranda of understanding the UK \
signed with OpenAI, Anthropic, Google DeepMind, Cohere and NVIDIA and the press releases about them, \
the AI Playbook and AI Knowledge Hub guidance for government, and ministers' written statements. \
For any question about UK government AI policy or these agreements, call `ask` rather than answering \
from memory, and cite what it returns: keep its [n] markers and give each cited document's title and \
URL. If `refused` is true, the documents do not say: tell the user so. `search` returns passages \
without an answer; each document is also a resource `doc://{id}`."""

ASK = """\
Answer a question about UK AI policy from the official documents this server holds, each claim \
checked against a quoted passage.

Use it for questions on UK government AI policy and its agreements with AI companies: the AI \
Opportunities Action Plan (the plan, the government response, one year on), the memoranda of \
understanding (MoUs) with OpenAI, Anthropic, Google DeepMind, Cohere and NVIDIA, AI Growth Zones, \
compute and data centres, AI skills, the AI Security Institute, and AI in public services (the AI \
Playbook, the AI Knowledge Hub, government AI tools, the AI Exemplars). Ask one question in plain \
English; for a follow-up, pass the earlier turns in `history`. Answering takes seconds to a minute.

Returns `answer`, whose markers [1], [2] ... refer to the `citations` with that `n`: each has the \
document's title, its source `url`, the exact `quote` the claim rests on, and the quote's character \
offsets in the document's body (the resource `doc://{doc_id}`). When you use the answer, keep the \
markers or name the sources, and give each cited title and URL. `refused: true` means the documents \
do not answer the question: say so rather than answering from memory. `partial: true` means the \
answer quotes the closest passages instead of a checked answer."""

SEARCH = f"""\
Find the passages of the UK AI policy documents that best match a query (keyword and semantic \
search combined), best first, without writing an answer. Use it to see where the documents discuss \
something, to quote them, or to check an answer. `k` is how many passages (1-{MAX_K}, default 5). \
Each passage has its document's id, title and source URL, its text, its score (higher is better; \
comparable within one search only) and its character offsets in the body of `doc://{{doc_id}}`."""

DOCUMENT = """\
One UK AI policy document: YAML front matter (id, title, publisher, date, source URL, whether a \
user of this server uploaded it) between two `---` lines, a blank line, then the body. Citation \
and passage offsets count characters of the body."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


# --- what the tools take and return -------------------------------------------------------


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class Source(BaseModel):
    """A passage the answer cites."""

    n: int = Field(description="The marker number: [n] in the answer.")
    doc_id: str = Field(description="The document's id; read it as the resource doc://{doc_id}.")
    title: str
    url: str = Field(description="Where the document was published ('' when it has no public URL).")
    quote: str = Field(description="The words of the document the cited claim rests on.")
    start: int = Field(description="Where the quote starts in the document's body (characters).")
    end: int = Field(description="Where the quote ends in the document's body (characters).")
    uploaded: bool = Field(description="A user of this server uploaded the document: it is not a published one.")


class AskResult(BaseModel):
    """A checked answer and the passages it cites."""

    answer: str = Field(description="The answer, with [n] markers citing `citations`.")
    refused: bool = Field(description="The documents do not answer the question; `answer` says so.")
    partial: bool = Field(description="The answer quotes the closest passages rather than answering.")
    citations: list[Source]
    model: str = Field(description="The model that wrote the answer.")


class Passage(BaseModel):
    """One passage retrieval found."""

    rank: int
    doc_id: str = Field(description="The document's id; read it as the resource doc://{doc_id}.")
    title: str
    url: str = Field(description="Where the document was published ('' when it has no public URL).")
    text: str
    score: float = Field(description="Fused retrieval score; higher is better, comparable within one search.")
    start: int = Field(description="Where the passage starts in the document's body (characters).")
    end: int = Field(description="Where the passage ends in the document's body (characters).")
    uploaded: bool = Field(description="A user of this server uploaded the document: it is not a published one.")


class SearchResult(BaseModel):
    query: str
    results: list[Passage]


def ask_result(answer: Answer, uploaded: set[str]) -> AskResult:
    """What `ask` returns for a checked `Answer` (the Answer JSON's answer and citations)."""
    return AskResult(
        answer=answer.answer,
        refused=answer.refused,
        partial=answer.partial,
        citations=[Source(**c.to_dict(), uploaded=c.doc_id in uploaded) for c in answer.citations],
        model=answer.model,
    )


def document_text(doc: Document, uploaded: bool) -> str:
    """A document as its resource reads: front matter, a blank line, the body.

    `document_text(Document("d", "T", "Body."), False)` -> `'---\\ndoc_id: "d"\\ntitle: "T"\\n...---\\n\\nBody.'`
    """
    meta = {k: v for k, v in doc.meta().items() if k != "licence"}
    lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in meta.items()]  # JSON strings are YAML
    return "\n".join(["---", *lines, f"uploaded: {json.dumps(uploaded)}", "---", "", doc.body])


# --- the server ---------------------------------------------------------------------------


class DocumentServer(MCPServer):
    """An `MCPServer` whose resource list is the library's documents at the time of asking
    (uploads come and go while it runs), each readable through the template `doc://{doc_id}`."""

    def __init__(self, library: DocumentLibrary, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.library = library

    async def list_resources(self) -> list[Resource]:
        return [
            Resource(
                uri=f"{DOC_SCHEME}{info.doc_id}",
                name=info.doc_id,
                title=info.title,
                description=", ".join(p for p in (info.publisher, info.date, "uploaded" if info.uploaded else "") if p),
                mime_type="text/markdown",
            )
            for info in self.library.list()
        ]


def build_mcp_server(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    gate: AnswerGate,
    on_answer: Callable[[Answer], None] | None = None,
) -> DocumentServer:
    """The MCP server over a built pipeline: tools `ask` and `search`, resources `doc://{id}`.

    Args:
        pipeline: answers and searches.
        library: the documents the resources read.
        gate: the queue and time limit every answer goes through (the app's own on HTTP).
        on_answer: called with each answer (the app counts it in its metrics).

    Returns:
        The server, not yet serving: see `mount_mcp` and `serve_stdio`.
    """
    server = DocumentServer(
        library,
        name="uk-ai-policy",
        title="UK AI policy documents",
        instructions=INSTRUCTIONS,
        log_level="WARNING",  # what the SDK's `logging.basicConfig` sets, should nothing have configured logging
    )

    @server.tool(name="ask", title="Ask the UK AI policy documents", description=ASK, annotations=READ_ONLY)
    async def ask(
        question: Annotated[
            str,
            Field(
                description="The question, in plain English.",
                json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS},
            ),
        ],
        history: Annotated[
            list[Turn] | None,
            Field(
                description="Earlier turns of this conversation, oldest first, when the question is a follow-up.",
                json_schema_extra={"maxItems": MAX_TURNS},
            ),
        ] = None,
    ) -> AskResult:
        turns = [t.model_dump() for t in history or []]
        if len(turns) > MAX_TURNS:
            raise ToolError(f"`history` has {len(turns)} turns; send the last {MAX_TURNS} at most.")
        answer = await answer_in_task(pipeline, question, turns, gate)
        if on_answer is not None:
            on_answer(answer)
        return ask_result(answer, uploaded_ids(library))

    @server.tool(name="search", title="Search the UK AI policy documents", description=SEARCH, annotations=READ_ONLY)
    async def search(
        query: Annotated[
            str,
            Field(
                description="What to look for: a question or keywords.",
                json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS},
            ),
        ],
        k: Annotated[
            int, Field(description="How many passages to return.", json_schema_extra={"minimum": 1, "maximum": MAX_K})
        ] = 5,
    ) -> SearchResult:
        # The bounds are checked here rather than by the schema's validator, for a message a model can act on.
        if not 1 <= k <= MAX_K:
            raise ToolError(f"`k` must be from 1 to {MAX_K}; it was {k}.")
        if len(query) > MAX_QUESTION_CHARS:
            raise ToolError(f"The query is {len(query)} characters long; the limit is {MAX_QUESTION_CHARS}.")
        try:
            hits = await anyio.to_thread.run_sync(pipeline.search, query, k)
        except RagError as e:
            raise ToolError(client_message(e)) from None
        uploaded = uploaded_ids(library)
        results = [
            Passage(
                rank=i,
                doc_id=h.chunk.doc_id,
                title=h.chunk.title,
                url=h.chunk.source_url,
                text=h.chunk.text,
                score=round(h.score, 6),
                start=h.chunk.start,
                end=h.chunk.end,
                uploaded=h.chunk.doc_id in uploaded,
            )
            for i, h in enumerate(hits, 1)
        ]
        return SearchResult(query=query, results=results)

    @server.resource(
        DOC_SCHEME + "{doc_id}",
        name="document",
        title="A UK AI policy document",
        description=DOCUMENT,
        mime_type="text/markdown",
    )
    def document(doc_id: str) -> str:
        try:
            doc = library.get(doc_id)
        except NotFoundError:
            raise ResourceNotFoundError(
                f"There is no document with the id “{doc_id}”. The resource list shows every document."
            ) from None
        except RagError as e:
            raise ResourceError(client_message(e)) from None
        return document_text(doc, library.is_uploaded(doc))

    return server


async def answer_in_task(
    pipeline: RagPipeline, question: str, history: list[dict[str, str]], gate: AnswerGate
) -> Answer:
    """Answer through the gate, in a task of its own.

    The SDK cancels a tool call when its client goes or sends `notifications/cancelled`, and its
    (anyio) cancellation is delivered again at every later wait of the cancelled task, which could
    cut short the stream's closing. Cancelling this separate task happens once, so the stream is
    always closed: the generation stops and the answer's place at the gate is given back.

    Raises:
        ToolError: with the message of the `RagError` that stopped the answer (empty or too long
            question, full queue, time limit, model failure).
    """

    async def run() -> Answer:
        stream = await AnswerStream.start(pipeline, question, history, None, gate)
        return await stream.answer()

    task = asyncio.ensure_future(run())
    try:
        return await asyncio.shield(task)
    except RagError as e:
        raise ToolError(client_message(e)) from None
    finally:
        task.cancel()  # nothing when it has finished


# --- streamable HTTP at /mcp --------------------------------------------------------------


def transport_security(settings: Settings) -> TransportSecuritySettings | None:
    """The SDK's Host and Origin check. A server on a loopback address, reached directly, answers
    only requests for a loopback host (so a site whose name a DNS trick points at 127.0.0.1 cannot
    use it from a browser) and from loopback pages or `RAG_CORS_ORIGINS`. Behind a trusted proxy or
    on a public address the Host is the proxy's or the public name, so it is not checked; `McpDoor`
    still refuses other sites' pages."""
    if settings.host not in LOOPBACK or settings.trusted_proxies.strip():
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *sorted(cors_origins(settings))],
    )


def refusal(e: RagError, retry_after_s: int | None = None) -> JSONResponse:
    """A refused MCP request: the HTTP status of `e` with a JSON-RPC error body, which MCP clients
    show as the error's message (401 with `WWW-Authenticate`; 429, or a given wait, with `Retry-After`)."""
    data: dict[str, Any] = {"code": e.code}
    headers = {}
    if isinstance(e, RateLimitedError):
        retry_after_s = e.retry_after_s
    if retry_after_s is not None:
        data["retry_after_s"] = retry_after_s
        headers["Retry-After"] = str(retry_after_s)
    if e.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    error = {"code": INVALID_REQUEST, "message": client_message(e), "data": data}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=e.status, headers=headers)


class McpDoor:
    """The `Admission` every door applies, in front of the SDK's transport: the key in
    `Authorization: Bearer <key>` (a reader's key, when the server has keys; no page sign-in
    cookie), one count against the rate limit per HTTP request, and no requests from other sites'
    pages. Refusals are HTTP 401, 429 and 403; answers then take their place at the app's gate."""

    def __init__(self, app: ASGIApp, admission: Admission, allowed_origins: set[str]) -> None:
        self.app = app
        self.admission = admission
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            identity = request_identity(self.admission, request)
            self.admission.require_reader(identity)
            origin = request.headers.get("origin")
            if not origin_allowed(origin, request.url.scheme, request.headers.get("host", ""), self.allowed_origins):
                raise ForbiddenError(f"MCP requests from the page at {origin} are refused.")
            self.admission.count(identity)
        except RagError as e:
            await refusal(e)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class McpRoute(Route):
    """`/mcp` for every method, named in the scope as FastAPI names its routes (for the metrics)."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app, include_in_schema=False)
        self.methods = None  # GET, POST and DELETE all belong to the transport

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL:
            child_scope["route"] = self
        return match, child_scope


def mount_mcp(app: FastAPI, server: MCPServer, admission: Admission, settings: Settings, path: str = MCP_PATH) -> None:
    """Serve `server` over streamable HTTP at `path` on `app`, behind `McpDoor`.

    Stateless (no session kept between requests, as with the rest of the API); each answer comes
    back as server-sent events, so a client that hangs up stops its generation. The SDK's session
    manager runs for as long as `app`'s lifespan, so mount before the page at "/" (Gradio wraps the
    lifespan again) and before the app starts.
    """
    server.streamable_http_app(
        stateless_http=True,
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_body_bytes,
    )
    manager = server.session_manager
    app.router.routes.append(McpRoute(path, McpDoor(manager.handle_request, admission, cors_origins(settings))))
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with outer(a) as state, running(manager):
            yield state

    app.router.lifespan_context = lifespan


@contextlib.asynccontextmanager
async def running(manager: StreamableHTTPSessionManager) -> AsyncIterator[None]:
    """`manager.run()` held open by a task of its own, so that it is left in the task it was
    entered in even when the lifespan ends in another (as `WarmupApp` starts and stops it).

    Raises:
        Exception: whatever stopped the manager from starting.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with manager.run():
            started.set()
            await stop.wait()

    task = asyncio.ensure_future(hold())
    waiting = asyncio.ensure_future(started.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


# --- stdio --------------------------------------------------------------------------------


def serve_stdio(pipeline: RagPipeline, library: DocumentLibrary, settings: Settings) -> None:
    """Serve over this process's stdin and stdout until the client closes them (blocks).

    The client started this process for its one user, so there are no keys or rate limit; answers
    still queue and keep to `RAG_MAX_QUEUE` and `RAG_REQUEST_TIMEOUT_S`.
    """
    gate = AnswerGate(settings.max_queue, settings.request_timeout_s)
    build_mcp_server(pipeline, library, gate).run("stdio")
