"""The HTTP API over the fake pipeline: ask (JSON and SSE), OpenAI-compatible chat (also through
the OpenAI SDK and LangChain against a real server), search, documents, auth, errors, health, metrics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.indexing import uploads_dir
from rag.library import DocumentLibrary
from rag.prompts import REFUSAL
from tests.live import serve

SECTORS = "OpenAI may provide technology to education and defence [1]."
QUESTION = "Which sectors could OpenAI work with?"
NOTE = b"# Zephyr lighthouse\n\nThe zephyr lighthouse programme funds coastal AI labs in Cornwall.\n"


@pytest.fixture
def make_client(make_pipeline, settings):
    """`make_client(replies, api_keys="")` -> (TestClient, scripted generator, app)."""

    def make(replies: list[str] | None = None, api_keys: str = ""):
        pipe, gen = make_pipeline(replies)
        s = settings.model_copy(update={"api_keys": api_keys})
        app = create_app(pipe, DocumentLibrary(pipe.retriever, s), s)
        return TestClient(app, raise_server_exceptions=False), gen, app

    return make


def sse_events(text: str) -> list[tuple[str, str]]:
    """Parse an SSE body into (event, data) pairs, skipping comments (pings)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((event, "\n".join(data)))
    return out


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# --- ask ---------------------------------------------------------------------------------


def test_ask_returns_the_answer_json(make_client):
    client, gen, _ = make_client([SECTORS])
    body = client.post("/api/ask", json={"question": QUESTION}).json()
    assert body["answer"] == SECTORS and body["refused"] is False
    assert body["citations"][0]["doc_id"] == "openai-deal" and "education" in body["citations"][0]["quote"]
    assert body["model"] == "scripted" and body["retrieved"]
    assert QUESTION in gen.prompts[0][-1]["content"]


def test_ask_passes_history_and_top_k(make_client):
    client, gen, _ = make_client(
        [
            "How many staff does OpenAI employ in London?",
            "OpenAI will expand its London office, which employs over 100 staff [1].",
        ]
    )
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": SECTORS}]
    body = client.post("/api/ask", json={"question": "How many staff?", "history": history, "top_k": 1}).json()
    assert "100 staff" in body["answer"] and len(body["retrieved"]) == 1
    assert "Follow-up question: How many staff?" in gen.prompts[0][-1]["content"]  # the rewrite saw the history


def test_ask_streams_server_sent_events(make_client):
    client, _, _ = make_client([SECTORS])
    resp = client.post("/api/ask", json={"question": QUESTION, "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "rewritten" and kinds[-1] == "answer" and kinds.count("token") >= 3
    tokens = "".join(json.loads(d)["text"] for e, d in events if e == "token")
    assert tokens == SECTORS
    final = json.loads(events[-1][1])
    assert final["answer"] == SECTORS and final["citations"][0]["n"] == 1


def test_refusal_is_an_answer_not_an_error(make_client):
    client, _, _ = make_client([REFUSAL])
    body = client.post("/api/ask", json={"question": "What colour is the moon in the documents?"}).json()
    assert body["refused"] is True and body["answer"] == REFUSAL and body["citations"] == []


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"question": "   "}}, 400, "empty_question"),
        ({"json": {"question": "   ", "stream": True}}, 400, "empty_question"),
        ({"json": {}}, 422, "invalid_request"),
        ({"json": {"question": "x", "top_k": 0}}, 422, "invalid_request"),
        ({"json": {"question": "x" * 2001}}, 422, "invalid_request"),
        ({"json": {"question": "x", "history": [{"role": "system", "content": "hi"}]}}, 422, "invalid_request"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
    ],
)
def test_bad_input_gets_the_error_shape(make_client, kwargs, status, code):
    client, _, _ = make_client()
    err = assert_error(client.post("/api/ask", **kwargs), status, code)
    if "content" in kwargs:
        assert "not valid JSON" in err["message"]
    if kwargs.get("json") == {}:
        assert "question" in err["message"]


def test_unknown_routes_and_documents_are_json_404s(make_client):
    client, _, _ = make_client()
    assert_error(client.get("/api/documents/nope"), 404, "not_found")
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_error(client.get("/nothing-here"), 404, "not_found")


def test_unexpected_errors_are_generic_500s_and_logged(make_client, caplog):
    client, gen, _ = make_client()

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    gen.stream = explode
    resp = client.post("/api/ask", json={"question": QUESTION})
    err = assert_error(resp, 500, "internal_error")
    assert "secret" not in err["message"] and "Traceback" not in resp.text
    assert "secret internal detail" in caplog.text  # logged server-side, with the traceback


# --- OpenAI-compatible -------------------------------------------------------------------


def test_chat_completions_plain(make_client):
    client, _, _ = make_client([SECTORS])
    body = client.post(
        "/v1/chat/completions",
        json={
            "model": "anything",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}],
            "max_tokens": 50,
            "temperature": 0.2,
            "top_p": 1,
            "n": 1,
        },
    ).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": SECTORS, "refusal": None}
    assert choice["finish_reason"] == "stop" and body["usage"]["completion_tokens"] > 0
    assert body["sources"][0]["doc_id"] == "openai-deal"


def test_chat_completions_stream_sends_checked_text_then_done(make_client):
    client, _, _ = make_client(
        [
            "OpenAI may provide technology to education and defence [1]. "
            "OpenAI will pay nine billion pounds for bananas [2]."
        ]
    )
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        },
    )
    events = [d for _, d in sse_events(resp.text)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(d) for d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == SECTORS  # the unsupported banana sentence never reached the client
    final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop")
    assert final["sources"][0]["doc_id"] == "openai-deal"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_chat_completions_needs_a_user_message_last(make_client):
    client, _, _ = make_client()
    assert_error(client.post("/v1/chat/completions", json={"model": "m", "messages": []}), 422, "invalid_request")
    resp = client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]})
    assert "last message" in assert_error(resp, 400, "bad_request")["message"]


@pytest.fixture
def live_server(make_pipeline, settings):
    """A real uvicorn server over the fake pipeline, with API key `sk-test`."""
    pipe, _ = make_pipeline([SECTORS] * 4)
    s = settings.model_copy(update={"api_keys": "sk-test"})
    with serve(create_app(pipe, DocumentLibrary(pipe.retriever, s), s)) as url:
        yield url


def test_openai_sdk_works_unchanged(live_server):
    import openai

    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="sk-test", max_retries=0)
    r = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    assert r.choices[0].message.content == SECTORS
    assert r.model_extra["sources"][0]["doc_id"] == "openai-deal"

    stream = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == SECTORS and len(pieces) > 3

    bad = openai.OpenAI(base_url=f"{live_server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])


def test_langchain_chat_openai_works_unchanged(live_server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{live_server}/v1", api_key="sk-test", model="rag", max_retries=0)
    assert llm.invoke(QUESTION).content == SECTORS
    assert "".join(chunk.content for chunk in llm.stream(QUESTION)) == SECTORS


# --- search and documents ----------------------------------------------------------------


def test_search_returns_scored_chunks(make_client):
    client, _, _ = make_client()
    body = client.get("/api/search", params={"q": "Cohere data centres Canada", "k": 2}).json()
    assert len(body["results"]) == 2
    top = body["results"][0]
    assert top["doc_id"] == "cohere-mou" and top["rank"] == 1 and top["score"] > 0 and "Canada" in top["text"]
    assert_error(client.get("/api/search", params={"q": "x", "k": 0}), 422, "invalid_request")
    assert_error(client.get("/api/search", params={"q": " "}), 400, "empty_question")


def test_documents_crud(make_client, settings):
    client, _, _ = make_client()
    docs = client.get("/api/documents").json()["documents"]
    assert {d["doc_id"] for d in docs} == {"openai-deal", "cohere-mou", "skills-plan"}
    one = client.get("/api/documents/cohere-mou").json()
    assert one["title"] == "Memorandum with Cohere" and "not legally binding" in one["body"]

    resp = client.post("/api/documents", files={"file": ("Zephyr Note.md", NOTE, "text/markdown")})
    assert resp.status_code == 201 and resp.json()["doc_id"] == "zephyr-note" and resp.json()["uploaded"]
    hits = client.get("/api/search", params={"q": "zephyr lighthouse", "k": 1}).json()["results"]
    assert hits[0]["doc_id"] == "zephyr-note"

    assert_error(client.delete("/api/documents/openai-deal"), 400, "bad_document")
    assert client.delete("/api/documents/zephyr-note").json() == {"deleted": "zephyr-note"}
    assert_error(client.delete("/api/documents/zephyr-note"), 404, "not_found")
    assert not any(uploads_dir(settings).iterdir())


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"file": ("tool.exe", b"MZ", "application/octet-stream")}, "not a file type"),
        ({"file": ("broken.docx", b"not a zip", "application/octet-stream")}, "could not be read"),
        ({"file": ("openai-deal.md", NOTE, "text/markdown")}, "corpus document already has"),
        ({"other": ("x.md", NOTE, "text/markdown")}, "field called `file`"),
    ],
)
def test_failed_upload_leaves_no_trace(make_client, settings, files, message):
    client, _, _ = make_client()
    before_docs = client.get("/api/documents").json()
    before_health = client.get("/healthz").json()["index"]
    current = (settings.index_dir / "CURRENT").read_text()
    err = assert_error(client.post("/api/documents", files=files), 400, "bad_document")
    assert message in err["message"]
    assert client.get("/api/documents").json() == before_docs
    assert client.get("/healthz").json()["index"] == before_health
    assert (settings.index_dir / "CURRENT").read_text() == current
    up = uploads_dir(settings)
    assert not up.exists() or not any(up.iterdir())


def test_oversized_upload_is_refused_before_reading(make_client):
    client, _, _ = make_client()
    big = b"x" * (10 * 1024 * 1024 + 100 * 1024)
    err = assert_error(
        client.post("/api/documents", files={"file": ("big.txt", big, "text/plain")}), 400, "bad_document"
    )
    assert "limit is 10 MB" in err["message"]


def test_feedback_is_appended(make_client, settings):
    client, _, _ = make_client()
    resp = client.post("/api/feedback", json={"helpful": False, "question": "q", "answer": "a", "comment": "wrong"})
    assert resp.status_code == 201
    lines = (settings.data_dir / "feedback.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["comment"] == "wrong" and json.loads(lines[-1])["helpful"] is False


# --- auth, health, metrics, schema -------------------------------------------------------


def test_api_keys_guard_api_and_v1_but_not_health(make_client):
    client, _, _ = make_client([SECTORS], api_keys="k1, k2")
    assert_error(client.get("/api/documents"), 401, "unauthorized")
    resp = client.get("/api/documents", headers={"Authorization": "Bearer nope"})
    assert_error(resp, 401, "unauthorized") and resp.headers["www-authenticate"] == "Bearer"
    assert_error(
        client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}), 401, "unauthorized"
    )
    assert client.get("/api/documents", headers={"Authorization": "Bearer k2"}).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_healthz_reports_index_and_model(make_client):
    client, _, _ = make_client()
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["model"] == "scripted"
    assert body["index"]["documents"] == 3 and body["index"]["chunks"] > 3 and body["index"]["built_at"]
    assert body["index"]["vector_store"] == {
        "store": "faiss",
        "keyword_search": "in-process BM25",
        "index": "flat",
        "vectors": body["index"]["chunks"],
    }


def test_metrics_count_requests_tokens_and_refusals(make_client):
    client, _, _ = make_client([SECTORS, REFUSAL])
    client.post("/api/ask", json={"question": QUESTION})
    client.post("/api/ask", json={"question": "Is the moon mentioned in the documents?"})
    client.get("/api/documents/nope")
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/api/ask",status="200"} 2.0' in text
    assert 'rag_http_requests_total{method="GET",route="/api/documents/{doc_id}",status="404"} 1.0' in text
    assert 'rag_http_request_duration_seconds_count{route="/api/ask"} 2.0' in text
    assert 'rag_answers_refused_total{interface="api"} 1.0' in text
    assert 'rag_answers_total{interface="api"} 2.0' in text
    assert "rag_tokens_generated_total 9.0" in text  # the nine words of SECTORS
    assert "rag_index_documents 3.0" in text


def test_metrics_registries_are_per_app(make_client):
    a, _, _ = make_client()
    b, _, _ = make_client()
    a.get("/healthz")
    assert 'route="/healthz"' not in b.get("/metrics").text


def test_openapi_schema_lists_the_routes(make_client):
    client, _, _ = make_client()
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/api/ask",
        "/api/search",
        "/api/documents",
        "/api/documents/{doc_id}",
        "/v1/chat/completions",
        "/healthz",
        "/metrics",
    ):
        assert p in paths
    assert "multipart/form-data" in paths["/api/documents"]["post"]["requestBody"]["content"]
