"""The MCP server through the SDK's own client, over both transports: streamable HTTP at `/mcp` on
the whole app (`build_app`, the page mounted) under uvicorn, behind the same keys, rate limit,
queue and time limit as every door; and stdio, the transport of `python -m rag mcp`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from rag.citations import CitationChecker
from rag.indexing import build_index
from rag.library import DocumentLibrary
from rag.pipeline import RagPipeline
from rag.retrieval import HybridRetriever
from rag.serve.mcp_server import document_text
from rag.serve.server import WarmupApp, build_app
from rag.settings import Settings
from rag.types import Document
from tests.fakes import HashEmbedder, PacedGenerator, write_corpus
from tests.live import EchoGenerator, serve

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Which sectors could OpenAI work with?"
KEY = "k1"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def live_app(make_pipeline, settings):
    """`with live_app(generator=None, **settings_changes) as (url, app)`: the whole app under uvicorn."""

    @contextlib.contextmanager
    def start(generator: Any = None, **changes: Any) -> Iterator[tuple[str, Any]]:
        pipe, _ = make_pipeline()
        pipe.generator = generator or EchoGenerator()
        s = settings.model_copy(update=changes)
        app = build_app(pipe, s, DocumentLibrary(pipe.retriever, s))
        with serve(app) as url:
            yield url, app

    return start


@pytest.fixture
def echo_pipeline_and_settings(make_pipeline, settings):
    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator()
    return pipe, settings


@contextlib.asynccontextmanager
async def http_session(url: str, key: str | None = KEY) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def innermost(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


# --- what both transports must do ---------------------------------------------------------


async def check_tools_answers_and_documents(session: ClientSession) -> None:
    """List the tools, ask, search and read a document, as a desktop assistant would."""
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == {"ask", "search"}
    ask = tools["ask"]
    for words in ("UK AI policy", "OpenAI", "Anthropic", "Google DeepMind", "Cohere", "NVIDIA", "Action Plan", "cite"):
        assert words.lower() in ask.description.lower(), words
    assert ask.input_schema["required"] == ["question"] and "history" in ask.input_schema["properties"]
    assert {"answer", "refused", "partial", "citations"} <= set(ask.output_schema["properties"])
    assert tools["search"].input_schema["properties"]["k"]["maximum"] == 50

    result = await session.call_tool("ask", {"question": QUESTION})
    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert answer["refused"] is False and answer["partial"] is False and "[1]" in answer["answer"]
    cited = answer["citations"][0]
    assert cited["n"] == 1 and cited["doc_id"] == "openai-deal" and cited["url"] == "https://example.org/openai-deal"
    assert cited["title"] == "UK signs AI deal with OpenAI" and cited["uploaded"] is False
    assert '"doc_id": "openai-deal"' in text_of(result)  # the same, as JSON text, for clients that read only text

    follow_up = await session.call_tool(
        "ask",
        {
            "question": "How many staff?",
            "history": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer["answer"]}],
        },
    )
    assert not follow_up.is_error and follow_up.structured_content["citations"], text_of(follow_up)

    found = (await session.call_tool("search", {"query": "Cohere data centres Canada", "k": 2})).structured_content
    assert [p["rank"] for p in found["results"]] == [1, 2] and found["results"][0]["doc_id"] == "cohere-mou"
    assert {"doc_id", "title", "url", "text", "score", "start", "end"} <= set(found["results"][0])

    listed = {str(r.uri): r for r in (await session.list_resources()).resources}
    assert set(listed) == {"doc://openai-deal", "doc://cohere-mou", "doc://skills-plan"}
    assert listed["doc://cohere-mou"].title == "Memorandum with Cohere"
    templates = (await session.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["doc://{doc_id}"]

    read = (await session.read_resource("doc://openai-deal")).contents[0]
    assert read.mime_type == "text/markdown"
    front, body = read.text.split("\n---\n\n", 1)
    assert 'title: "UK signs AI deal with OpenAI"' in front and 'publisher: "Test Desk"' in front
    assert 'source_url: "https://example.org/openai-deal"' in front and 'date: "2025-07-22"' in front
    assert body[cited["start"] : cited["end"]] == cited["quote"]  # offsets count characters of the body


async def check_bad_arguments_are_tool_errors(session: ClientSession) -> None:
    for name, arguments, words in [
        ("ask", {"question": "   "}, "question is empty"),
        ("ask", {"question": "x" * 2001}, "the limit is 2000"),
        ("ask", {}, "question"),
        ("ask", {"question": QUESTION, "history": [{"role": "system", "content": "hi"}]}, "role"),
        ("search", {"query": ""}, "query is empty"),
        ("search", {"query": "OpenAI", "k": 0}, "`k` must be from 1 to 50; it was 0"),
        ("search", {"query": "OpenAI", "k": 51}, "`k` must be from 1 to 50; it was 51"),
        ("nothing", {}, "Unknown tool"),
    ]:
        result = await session.call_tool(name, arguments)
        assert result.is_error, (name, arguments)
        assert words in text_of(result) and "Traceback" not in text_of(result), text_of(result)
    with pytest.raises(MCPError, match="no document with the id “nope”"):
        await session.read_resource("doc://nope")
    assert not (await session.call_tool("search", {"query": "OpenAI"})).is_error  # the session goes on


def test_document_text_puts_the_body_after_the_front_matter():
    text = document_text(Document("d", 'A "quoted" title', "Body.", publisher="P", date="2025-01-01"), True)
    assert text == (
        '---\ndoc_id: "d"\ntitle: "A \\"quoted\\" title"\npublisher: "P"\ndate: "2025-01-01"\n'
        'source_url: ""\nuploaded: true\n---\n\nBody.'
    )


# --- streamable HTTP at /mcp ---------------------------------------------------------------


def test_http_lists_tools_answers_with_citations_and_reads_documents(live_app):
    with live_app(api_keys=SecretStr(KEY)) as (url, app):

        async def main() -> None:
            async with http_session(url) as session:
                await check_tools_answers_and_documents(session)

        run(main())
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
        assert 'rag_answers_total{interface="mcp"} 2.0' in metrics
        assert 'route="/mcp"' in metrics
        assert httpx.get(f"{url}/").status_code == 303  # the page still asks a browser to sign in


def test_http_bad_arguments_are_tool_errors(live_app):
    with live_app() as (url, _):  # no keys: open to all

        async def main() -> None:
            async with http_session(url, key=None) as session:
                await check_bad_arguments_are_tool_errors(session)

        run(main())


def test_http_needs_a_key_when_the_server_has_keys(live_app):
    with live_app(api_keys=SecretStr(KEY)) as (url, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            resp = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers)
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
            body = resp.json()
            assert body["jsonrpc"] == "2.0" and body["error"]["data"]["code"] == "unauthorized"
            assert "Authorization: Bearer" in body["error"]["message"] and "Traceback" not in resp.text
        # A browser without a key is not sent to the sign-in page: /mcp is a door of its own.
        assert httpx.get(f"{url}/mcp", headers={"accept": "text/html"}).status_code == 401

        async def without_key() -> BaseException:
            try:
                async with http_session(url, key=None):
                    pass
            except BaseException as e:  # the client's task groups wrap it
                return innermost(e)
            raise AssertionError("the server let a client without a key in")

        refused = run(without_key())
        assert isinstance(refused, MCPError) and "needs an API key" in str(refused)  # what the client shows
        resp = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS | {"Authorization": f"bearer  {KEY}"})
        assert resp.status_code == 200


def test_http_counts_every_request_against_the_rate_limit(live_app):
    with live_app(api_keys=SecretStr(f"{KEY},k2"), rate_limit="3/minute") as (url, _):
        auth = MCP_HEADERS | {"Authorization": f"Bearer {KEY}"}
        assert [httpx.post(f"{url}/mcp", json=INITIALIZE, headers=auth).status_code for _ in range(3)] == [200] * 3
        resp = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=auth)
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) > 0
        error = resp.json()["error"]
        assert error["data"] == {"code": "rate_limited", "retry_after_s": int(resp.headers["retry-after"])}
        assert "Too many requests" in error["message"]
        assert httpx.post(f"{url}/api/ask", json={"question": QUESTION}, headers=auth).status_code == 429  # one count
        other = MCP_HEADERS | {"Authorization": "Bearer k2"}
        assert httpx.post(f"{url}/mcp", json=INITIALIZE, headers=other).status_code == 200


def test_http_a_bug_is_logged_not_shown(live_app, caplog):
    gen = EchoGenerator()

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    gen.stream = explode
    with live_app(generator=gen) as (url, app):

        async def main() -> Any:
            async with http_session(url, key=None) as session:
                return await session.call_tool("ask", {"question": QUESTION})

        result = run(main())
        assert result.is_error and text_of(result) == "Error executing tool ask"
        assert app.state.admission.gate.taken == 0
    assert "secret internal detail" in caplog.text  # logged on the server, with its traceback


def test_http_through_the_warmup_server_as_app_py_runs_it(echo_pipeline_and_settings):
    pipe, s = echo_pipeline_and_settings
    server = WarmupApp()
    with serve(server) as url:
        loading = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert loading.status_code == 503 and loading.headers["retry-after"] == "10"
        assert loading.json()["error"]["data"]["code"] == "loading" and "still loading" in loading.text

        server.ready(build_app(pipe, s, DocumentLibrary(pipe.retriever, s)))

        async def main() -> Any:
            async with http_session(url, key=None) as session:
                return await session.call_tool("ask", {"question": QUESTION})

        assert run(main()).structured_content["citations"][0]["doc_id"] == "openai-deal"


def test_http_refuses_other_sites_pages(live_app):
    with live_app() as (url, _):
        resp = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS | {"origin": "http://evil.example"})
        assert resp.status_code == 403 and "evil.example" in resp.json()["error"]["message"]
        # A name a DNS trick points at this loopback server is refused by the SDK's Host check.
        assert (
            httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS | {"host": "evil.example"}).status_code == 421
        )


def test_http_answers_share_the_apps_queue_and_time_limit(live_app):
    gen = PacedGenerator(per_piece_s=0.1, pieces=60)  # six seconds an answer
    with live_app(generator=gen, max_queue=1, request_timeout_s=1.5) as (url, app):
        gate = app.state.admission.gate

        async def main() -> None:
            async with http_session(url, key=None) as session:
                first = asyncio.ensure_future(session.call_tool("ask", {"question": QUESTION}))
                while gate.taken == 0:
                    await asyncio.sleep(0.02)
                busy = await session.call_tool("ask", {"question": QUESTION})
                assert busy.is_error and "answering as many questions as it can" in text_of(busy)
                late = await first
                assert late.is_error and "took longer than this server allows" in text_of(late)

        run(main())
        assert gate.taken == 0
        deadline = time.monotonic() + 2
        while gen.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gen.busy  # the timed-out generation stopped too


def test_http_a_client_that_gives_up_stops_its_answer(live_app):
    gen = PacedGenerator(per_piece_s=0.1, pieces=100)
    with live_app(generator=gen) as (url, app):
        gate = app.state.admission.gate

        async def main() -> None:
            async with http_session(url, key=None) as session:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.call_tool("ask", {"question": QUESTION}), 1.0)

        run(main())
        deadline = time.monotonic() + 3
        while (gen.busy or gate.taken) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gate.taken == 0 and not gen.busy
        assert len(gen.events("piece")) < 40  # stopped long before its hundred pieces


# --- stdio ---------------------------------------------------------------------------------


def serve_fakes_on_stdio(root: str) -> None:
    """What the stdio tests' server process runs: `serve_stdio`, as `python -m rag mcp` does, over
    the fake pipeline (hashed-word embedder, echoing generator) and the three test documents."""
    from rag.serve.mcp_server import serve_stdio

    folder = Path(root)
    s = Settings(
        corpus_dir=write_corpus(folder / "corpus"),
        index_dir=folder / "index",
        data_dir=folder / "data",
        cache_dir=folder / "cache",
    )
    embedder = HashEmbedder()
    retriever = HybridRetriever(build_index(s, embedder, progress=False), embedder, candidates=10)
    pipe = RagPipeline(retriever, EchoGenerator(), CitationChecker(embedder), top_k=3, key_passage=False)
    serve_stdio(pipe, DocumentLibrary(retriever, s), s)


@contextlib.asynccontextmanager
async def stdio_session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def fake_stdio_server(tmp_path: Path) -> StdioServerParameters:
    code = "import sys; from tests.serve.test_mcp import serve_fakes_on_stdio; serve_fakes_on_stdio(sys.argv[1])"
    return StdioServerParameters(command=sys.executable, args=["-c", code, str(tmp_path)], cwd=ROOT)


def test_stdio_lists_tools_answers_with_citations_and_reads_documents(tmp_path):
    async def main() -> None:
        async with stdio_session(fake_stdio_server(tmp_path)) as session:
            await check_tools_answers_and_documents(session)
            await check_bad_arguments_are_tool_errors(session)

    run(main())


@pytest.mark.slow
def test_python_m_rag_mcp_answers_with_the_tiny_model(real_settings, real_index, tiny_path, tmp_path):
    env = {
        "RAG_CORPUS_DIR": str(real_settings.corpus_dir),
        "RAG_INDEX_DIR": str(real_settings.index_dir),
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_CACHE_DIR": str(real_settings.cache_dir),
        "RAG_MODEL": "smollm2-135m",
        "RAG_MAX_NEW_TOKENS": "48",
        "RAG_TOP_K": "3",  # a short prompt: on 2 busy cores the tiny model reads about 20 tokens a second
        "RAG_DEMONSTRATIONS": "false",
        "RAG_REQUEST_TIMEOUT_S": "900",
        "HF_HUB_OFFLINE": "1",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp"], env=env, cwd=ROOT)

    async def main() -> None:
        async with stdio_session(params) as session:
            assert {t.name for t in (await session.list_tools()).tools} == {"ask", "search"}
            result = await session.call_tool("ask", {"question": "What does the UK and OpenAI memorandum cover?"})
            assert not result.is_error, text_of(result)
            answer = result.structured_content
            assert answer["model"].lower().startswith("smollm2") and isinstance(answer["refused"], bool)
            for c in answer["citations"]:
                assert c["quote"] and c["doc_id"] and c["end"] > c["start"]
            doc = (await session.read_resource("doc://mou-uk-openai")).contents[0].text
            assert "OpenAI" in doc.split("\n---\n\n", 1)[0]

    asyncio.run(asyncio.wait_for(main(), 600))
