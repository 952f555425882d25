"""The HTTP API over the fake pipeline: ask (JSON and SSE), OpenAI-compatible chat (also through
the OpenAI SDK and LangChain against a real server), search, documents, auth, errors, health, metrics."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from rag.errors import EmptyQuestionError, NotFoundError
from rag.indexing import uploads_dir
from rag.library import DocumentLibrary
from rag.prompts import REFUSAL
from rag.serve.http_api import create_app, document_with_body, index_status, search_results
from tests.live import serve

SECTORS = "OpenAI may provide technology to education and defence [1]."
STAFF = "OpenAI will expand its London office, which employs over 100 staff [1]."
QUESTION = "Which sectors could OpenAI work with?"
NOTE = b"# Zephyr lighthouse\n\nThe zephyr lighthouse programme funds coastal AI labs in Cornwall.\n"


@pytest.fixture
def make_client(make_pipeline, settings):
    """`make_client(replies, api_keys="")` -> (TestClient, scripted generator, app)."""

    def make(replies: list[str] | None = None, api_keys: str = ""):
        pipe, gen = make_pipeline(replies)
        s = settings.model_copy(update={"api_keys": SecretStr(api_keys)})
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


def test_ask_streams_checked_sentences_then_the_answer(make_client):
    unsupported = "OpenAI will pay nine billion pounds for bananas [1]."
    client, _, _ = make_client([f"{SECTORS} {unsupported} {STAFF}"])
    resp = client.post("/api/ask", json={"question": QUESTION, "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    kinds = [e for e, _ in events]
    assert kinds[:2] == ["rewritten", "writing"] and kinds[-1] == "answer" and "token" not in kinds
    sentences = [json.loads(d) for e, d in events if e == "sentence"]
    assert sentences[0]["text"] == SECTORS and sentences[0]["citations"][0]["doc_id"] == "openai-deal"
    assert "bananas" not in resp.text.split("event: answer")[0]  # the dropped sentence was never sent
    final = json.loads(events[-1][1])
    assert final["answer"] == " ".join(s["text"] for s in sentences) and "bananas" not in final["answer"]
    cited = [c["n"] for s in sentences for c in s["citations"]]
    assert cited == [c["n"] for c in final["citations"]]  # each citation sent once, with its sentence


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
    s = settings.model_copy(update={"api_keys": SecretStr("sk-test")})
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
    assert "".join(pieces) == SECTORS

    bad = openai.OpenAI(base_url=f"{live_server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])


def test_openai_sdk_stream_delivers_the_first_checked_sentence_while_the_model_writes(make_pipeline, settings):
    import openai

    # Two sentences, the model writing one word every 0.15 s: the first sentence is checked and
    # sent about 1.5 s before the model has finished the second.
    pipe, _ = make_pipeline([f"{SECTORS} {STAFF}"] * 2, per_word_s=0.15)
    s = settings.model_copy(update={"api_keys": SecretStr("sk-test")})
    with serve(create_app(pipe, DocumentLibrary(pipe.retriever, s), s)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
        messages = [{"role": "user", "content": QUESTION}]
        whole = client.chat.completions.create(model="rag", messages=messages).choices[0].message.content
        t0 = time.monotonic()
        arrivals, pieces, last = [], [], None
        for chunk in client.chat.completions.create(model="rag", messages=messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic() - t0)
                pieces.append(chunk.choices[0].delta.content)
            last = chunk
    timings = last.model_extra["timings"]
    assert "".join(pieces) == whole and pieces[0] == SECTORS
    assert timings["first_sentence_s"] > 0 and timings["total_s"] - timings["first_sentence_s"] > 1.0
    # The first content chunk arrived when the first checked sentence existed, not at the end.
    assert arrivals[0] < timings["first_sentence_s"] + 0.5 < timings["total_s"]
    assert last.model_extra["sources"][0]["doc_id"] == "openai-deal"


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
    assert (
        "search query is empty"
        in assert_error(client.get("/api/search", params={"q": " "}), 400, "empty_question")["message"]
    )


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
        ({"file": ("broken.docx", b"not a zip", "application/octet-stream")}, "is not a Word .docx file"),
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
    err = assert_error(client.post("/api/documents", files={"file": ("big.txt", big, "text/plain")}), 413, "too_large")
    assert "limit of 10 MB" in err["message"]


def chunked(data: bytes, size: int = 64 * 1024):
    """A request body sent in chunks with no Content-Length, as a client may stream it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_streamed_bodies_are_bounded_on_every_route(make_client, settings, tmp_path):
    client, _, _ = make_client([SECTORS])
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'.encode()
    upload = head + b"x" * (11 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    resp = client.post(
        "/api/documents",
        content=chunked(upload),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in resp.request.headers
    assert "limit of 10 MB" in assert_error(resp, 413, "too_large")["message"]
    assert not list(tmp_path.rglob("big*"))

    chat = json.dumps({"messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode()
    resp = client.post("/v1/chat/completions", content=chunked(chat), headers={"content-type": "application/json"})
    assert_error(resp, 413, "too_large")
    vote = json.dumps({"helpful": True, "citations": [{"quote": "y" * 2_000_000}]}).encode()
    resp = client.post("/api/feedback", content=chunked(vote), headers={"content-type": "application/json"})
    assert_error(resp, 413, "too_large")
    assert not (settings.data_dir / "feedback.jsonl").exists()
    ask = json.dumps({"question": QUESTION}).encode()
    resp = client.post("/api/ask", content=chunked(ask, 8), headers={"content-type": "application/json"})
    assert resp.json()["answer"] == SECTORS  # a small body in many chunks is fine


def test_feedback_is_appended(make_client, settings):
    client, _, _ = make_client()
    resp = client.post("/api/feedback", json={"helpful": False, "question": "q", "answer": "a", "comment": "wrong"})
    assert resp.status_code == 201
    lines = (settings.data_dir / "feedback.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["comment"] == "wrong" and json.loads(lines[-1])["helpful"] is False


def test_route_handlers_work_without_http(make_pipeline, settings):
    pipe, _ = make_pipeline()
    library = DocumentLibrary(pipe.retriever, settings)
    found = search_results(pipe, "Cohere data centres Canada", 2, library)
    assert [r["rank"] for r in found["results"]] == [1, 2] and found["results"][0]["doc_id"] == "cohere-mou"
    with pytest.raises(EmptyQuestionError):
        search_results(pipe, "  ", 2, library)
    assert "not legally binding" in document_with_body(library, "cohere-mou")["body"]
    with pytest.raises(NotFoundError):
        document_with_body(library, "nope")
    assert index_status(pipe)["documents"] == 3


# --- auth, health, metrics, schema -------------------------------------------------------


def test_api_keys_guard_api_and_v1_but_not_health(make_client):
    client, _, _ = make_client([SECTORS], api_keys="k1, k2")
    assert_error(client.get("/api/documents"), 401, "unauthorized")
    resp = client.get("/api/documents", headers={"Authorization": "Bearer nope"})
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"
    assert_error(
        client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}), 401, "unauthorized"
    )
    assert client.get("/api/documents", headers={"Authorization": "Bearer k2"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    for path in ("/metrics", "/openapi.json"):  # open without keys, behind them with keys
        assert_error(client.get(path), 401, "unauthorized")
        assert client.get(path, headers={"Authorization": "Bearer k1"}).status_code == 200


def test_admin_keys_guard_uploads_and_removals(make_pipeline, settings):
    pipe, _ = make_pipeline()
    s = settings.model_copy(update={"api_keys": SecretStr("reader"), "admin_keys": SecretStr("admin")})
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, s), s), raise_server_exceptions=False)
    reader, admin = {"Authorization": "Bearer reader"}, {"Authorization": "Bearer admin"}
    files = {"file": ("Zephyr Note.md", NOTE, "text/markdown")}
    for headers in ({}, reader):
        err = assert_error(client.post("/api/documents", files=files, headers=headers), 401, "unauthorized")
        assert "admin key" in err["message"] or not headers
    assert client.get("/api/documents", headers=reader).status_code == 200
    assert client.get("/api/documents", headers=admin).status_code == 200  # an admin key reads too
    assert client.post("/api/documents", files=files, headers=admin).status_code == 201
    assert_error(client.delete("/api/documents/zephyr-note", headers=reader), 401, "unauthorized")
    assert client.delete("/api/documents/zephyr-note", headers=admin).status_code == 200


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


def test_metrics_label_made_up_methods_other(make_client):
    client, _, _ = make_client()
    for method in ("BREW", "X-1", "PROPFIND"):
        client.request(method, "/healthz")
    client.head("/healthz")
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{method="other",route="/healthz",status="405"} 3.0' in text
    assert 'method="HEAD"' in text and not any(m in text for m in ("BREW", "X-1", "PROPFIND"))


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


def test_a_non_ascii_bearer_token_is_a_401_not_a_500(make_client, caplog):
    client, _, _ = make_client(api_keys="k1")
    for token in ("café".encode(), "ключ".encode(), b"k1\xff"):
        resp = client.get("/api/documents", headers={"Authorization": b"Bearer " + token})
        assert_error(resp, 401, "unauthorized")
    assert "k1" not in caplog.text


def test_server_errors_carry_no_server_paths(make_client):
    from rag.errors import ModelMissingError

    client, gen, _ = make_client()

    def missing(*args, **kwargs):
        raise ModelMissingError("model file /srv/secret/models/qwen.gguf does not exist")

    gen.stream = missing
    err = assert_error(client.post("/api/ask", json={"question": QUESTION}), 503, "model_missing")
    assert err["message"] == "model file qwen.gguf does not exist"
    streamed = client.post("/api/ask", json={"question": QUESTION, "stream": True})
    (error,) = [json.loads(d)["error"] for e, d in sse_events(streamed.text) if e == "error"]
    assert error["message"] == "model file qwen.gguf does not exist"
    chunks = client.post(
        "/v1/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    )
    assert "/srv" not in chunks.text and "qwen.gguf does not exist" in chunks.text


def test_uploads_are_marked_wherever_they_are_cited(make_client):
    client, _, _ = make_client(["The zephyr lighthouse programme funds coastal AI labs in Cornwall [1].", SECTORS])
    assert client.post("/api/documents", files={"file": ("Zephyr Note.md", NOTE, "text/markdown")}).status_code == 201
    body = client.post("/api/ask", json={"question": "What does the zephyr lighthouse programme fund?"}).json()
    assert body["citations"][0]["doc_id"] == "zephyr-note" and body["citations"][0]["uploaded"] is True
    body = client.post("/api/ask", json={"question": QUESTION}).json()
    assert body["citations"][0]["doc_id"] == "openai-deal" and body["citations"][0]["uploaded"] is False
    hits = client.get("/api/search", params={"q": "zephyr lighthouse", "k": 1}).json()["results"]
    assert hits[0]["uploaded"] is True
    listed = {d["doc_id"]: d["uploaded"] for d in client.get("/api/documents").json()["documents"]}
    assert listed["zephyr-note"] is True and listed["openai-deal"] is False


def test_cross_site_pages_cannot_upload(make_client, make_pipeline, settings):
    client, _, _ = make_client()
    files = {"file": ("Zephyr Note.md", NOTE, "text/markdown")}
    resp = client.post("/api/documents", files=files, headers={"Origin": "https://evil.example"})
    assert "RAG_CORS_ORIGINS" in assert_error(resp, 403, "forbidden")["message"]
    assert_error(client.post("/api/documents", files=files, headers={"Origin": "null"}), 403, "forbidden")
    assert "zephyr-note" not in client.get("/api/documents").text
    assert client.post("/api/documents", files=files, headers={"Origin": "http://testserver"}).status_code == 201

    pipe, _ = make_pipeline()
    s = settings.model_copy(update={"cors_origins": "https://intranet.example, http://localhost:3000/"})
    allowed = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, s), s), raise_server_exceptions=False)
    other = {"file": ("Other Note.md", NOTE, "text/markdown")}
    resp = allowed.post("/api/documents", files=other, headers={"Origin": "http://localhost:3000"})
    assert resp.status_code == 201 and resp.headers["access-control-allow-origin"] == "http://localhost:3000"
    preflight = allowed.options(
        "/api/ask", headers={"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
    )
    assert (
        preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://intranet.example"
    )
    assert (
        "access-control-allow-origin"
        not in client.get("/api/documents", headers={"Origin": "https://x.example"}).headers
    )


def test_a_full_queue_answers_503_with_retry_after(make_pipeline, settings):
    import asyncio

    import httpx

    from tests.live import EchoGenerator

    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator(delay=0.05)
    s = settings.model_copy(update={"max_queue": 1})
    app = create_app(pipe, DocumentLibrary(pipe.retriever, s), s)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            ask = {"question": QUESTION}
            chat = {"messages": [{"role": "user", "content": QUESTION}]}
            both = await asyncio.gather(
                client.post("/api/ask", json=ask), client.post("/v1/chat/completions", json=chat)
            )
            after = await client.post("/api/ask", json=ask)
            return both, after

    both, after = asyncio.run(main())
    assert sorted(r.status_code for r in both) == [200, 503]
    busy = next(r for r in both if r.status_code == 503)
    assert_error(busy, 503, "busy") and busy.headers["retry-after"] == "10"
    assert after.status_code == 200  # the place was given back


def test_an_answer_over_the_time_limit_is_a_504(make_pipeline, settings):
    from tests.live import EchoGenerator

    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator(delay=0.2)
    s = settings.model_copy(update={"request_timeout_s": 0.3})
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, s), s), raise_server_exceptions=False)
    assert (
        "took longer" in assert_error(client.post("/api/ask", json={"question": QUESTION}), 504, "timeout")["message"]
    )
    streamed = client.post("/api/ask", json={"question": QUESTION, "stream": True})
    assert sse_events(streamed.text)[-1][0] == "error" and '"timeout"' in sse_events(streamed.text)[-1][1]


def test_the_rate_limit_answers_429_per_key_or_address(make_pipeline, settings):
    pipe, _ = make_pipeline()
    s = settings.model_copy(update={"rate_limit": "2/minute", "api_keys": SecretStr("k1,k2")})
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, s), s), raise_server_exceptions=False)
    k1, k2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
    assert [client.get("/api/documents", headers=k1).status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/search", params={"q": "Cohere"}, headers=k1)
    assert_error(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 60
    chat = {"messages": [{"role": "user", "content": QUESTION}]}
    assert_error(client.post("/v1/chat/completions", json=chat, headers=k1), 429, "rate_limited")
    assert client.get("/api/documents", headers=k2).status_code == 200  # another key, its own allowance
    assert client.get("/healthz").status_code == 200  # not limited
    assert_error(client.get("/api/documents"), 401, "unauthorized")  # no key: told so, not counted


def test_without_keys_the_rate_limit_is_per_address_whatever_the_header(make_pipeline, settings):
    pipe, _ = make_pipeline()
    s = settings.model_copy(update={"rate_limit": "1/hour"})
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, s), s), raise_server_exceptions=False)
    assert client.get("/api/documents").status_code == 200
    assert_error(client.get("/api/documents", headers={"Authorization": "Bearer made-up"}), 429, "rate_limited")


def test_a_wrong_method_is_a_405_naming_the_right_one(make_client):
    client, _, _ = make_client()
    resp = client.put("/api/ask", json={"question": QUESTION})
    assert "use POST" in assert_error(resp, 405, "method_not_allowed")["message"] and resp.headers["allow"] == "POST"
    assert assert_error(client.get("/v1/chat/completions"), 405, "method_not_allowed")
    assert client.post("/healthz").headers["allow"] == "GET"
    assert client.patch("/api/documents/openai-deal").headers["allow"] == "GET, DELETE"
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_error(client.get("/v1/models-and-more"), 404, "not_found")


def test_openapi_documents_the_error_statuses(make_client):
    client, _, _ = make_client()
    paths = client.get("/openapi.json").json()["paths"]
    ask, chat = paths["/api/ask"]["post"]["responses"], paths["/v1/chat/completions"]["post"]["responses"]
    for responses in (ask, chat):
        assert {"400", "401", "413", "422", "429", "503", "504"} <= set(responses)
        assert responses["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert {"400", "401", "403", "413"} <= set(paths["/api/documents"]["post"]["responses"])
    assert "404" in paths["/api/documents/{doc_id}"]["get"]["responses"]
    assert "HTTPValidationError" not in json.dumps(paths)  # 422 has the one error shape too


def test_a_client_that_hangs_up_stops_a_non_streamed_answer(make_pipeline, settings):
    import asyncio
    import threading

    pipe, gen = make_pipeline()
    stopped = threading.Event()

    def endless(messages, max_tokens=300, temperature=0.0, opening_floor=None):
        try:
            while True:
                time.sleep(0.01)
                yield "word "
        finally:
            stopped.set()

    gen.stream = endless
    app = create_app(pipe, DocumentLibrary(pipe.retriever, settings), settings)
    body = json.dumps({"question": QUESTION}).encode()

    async def main():
        sent = []
        events = [{"type": "http.request", "body": body, "more_body": False}]
        hangs_up_at = time.monotonic() + 0.3

        async def receive():
            if events:
                return events.pop(0)
            if time.monotonic() >= hangs_up_at:
                return {"type": "http.disconnect"}
            await asyncio.sleep(3600)  # nothing more until then (a poll cancels this wait)

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/ask",
            "raw_path": b"/api/ask",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
            "scheme": "http",
            "root_path": "",
            "http_version": "1.1",
        }
        await asyncio.wait_for(app(scope, receive, send), 20)
        return sent

    sent = asyncio.run(main())
    assert stopped.wait(5)  # before, the generation ran on with nobody to read it
    assert sent[0]["status"] == 499
