"""The app as `make run` starts it (the page mounted beside the API, served by uvicorn with the
options `app.py` uses), probed as a hostile client would: each test is one defect of issue 17
("The browser page is an open door") and its reproduction, which must fail.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from rag.library import DocumentLibrary
from rag.serve.server import WarmupApp, build_app, uvicorn_options
from rag.settings import Settings
from tests.live import EchoGenerator, serve
from tests.page_client import final_output, message_text, run_event

QUESTION = "Which sectors could OpenAI work with?"


@pytest.fixture
def full_app(make_pipeline, settings) -> Callable[..., Any]:
    """`with full_app(**settings_changes) as (client, library, generator):` the whole app on a port."""

    @contextmanager
    def start(delay: float = 0.0, **changes: Any) -> Iterator[tuple[httpx.Client, DocumentLibrary, EchoGenerator]]:
        s: Settings = settings.model_copy(update=changes)
        pipe, _ = make_pipeline()
        pipe.generator = EchoGenerator(delay)
        library = DocumentLibrary(pipe.retriever, s)
        server = WarmupApp()
        options = {k: v for k, v in uvicorn_options(s).items() if k not in ("host", "port")}
        with serve(server, **options) as url:
            server.ready(build_app(pipe, s, library))
            with httpx.Client(base_url=url, timeout=60) as client:
                yield client, library, pipe.generator

    return start


def ask_page(client: httpx.Client, question: str = QUESTION) -> str:
    """Ask through the page's chat event: "answer: <text>" when the reply cites a source, else the
    reply's text (an error or a refusal), or "note: <text>" when no reply was added."""
    out = final_output(run_event(client, "rag-question", "submit", [question, []]))
    chat, note = out[1], out[4]
    if not isinstance(chat, list) or not chat or chat[-1]["role"] != "assistant":
        return "note: " + (note if isinstance(note, str) else "")
    text = message_text(chat[-1])
    return ("answer: " if "#src-" in text else "") + text


# 1 ------------------------------------------------------------------------------------------


def test_add_document_cannot_read_a_server_file(full_app, tmp_path):
    secret = tmp_path / "server-secret.md"
    secret.write_text("# Server secret\n\nThe database password is hunter2.\n", encoding="utf-8")
    with full_app() as (client, library, _):
        file_data = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "x.md"}
        messages = run_event(client, "rag-add", "click", [file_data])
        note = str(final_output(messages)[0]) if messages[-1].get("success", True) else str(messages[-1])
    assert "server-secret" not in library.retriever.documents
    assert all("hunter2" not in c.text for c in library.retriever.chunks)
    assert "hunter2" not in note and secret.exists()


# 2 ------------------------------------------------------------------------------------------


def test_with_reader_keys_the_page_needs_a_key_like_the_api(full_app):
    with full_app(api_keys=SecretStr("reader")) as (client, library, _):
        assert client.get("/api/documents/openai-deal").status_code == 401
        config = client.get("/config")
        assert config.status_code == 401 and "openai-deal" not in config.text
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        with pytest.raises(httpx.HTTPStatusError) as refused:
            run_event(client, "rag-doc-pick", "change", ["openai-deal"])
        assert refused.value.response.status_code == 401
        assert (
            client.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}).status_code
            == 401
        )

        wrong = client.post("/login", data={"key": "guess", "next": "/"}, follow_redirects=False)
        assert wrong.status_code == 401 and "rag_session" not in wrong.cookies
        signed = client.post("/login", data={"key": "reader", "next": "/"}, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        assert (
            "httponly" in signed.headers["set-cookie"].lower()
            and "samesite=strict" in signed.headers["set-cookie"].lower()
        )
        reader = final_output(run_event(client, "rag-doc-pick", "change", ["openai-deal"]))
        assert "OpenAI" in str(reader[0])
        assert ask_page(client).startswith("answer:")
        client.get("/logout")
        assert client.get("/config").status_code == 401


def test_a_bearer_key_opens_the_page_routes_for_scripts(full_app):
    with full_app(api_keys=SecretStr("reader")) as (client, _, _):
        client.headers["Authorization"] = "Bearer reader"
        assert ask_page(client).startswith("answer:")


def test_the_login_form_refuses_other_sites_and_offsite_redirects(full_app):
    with full_app(api_keys=SecretStr("reader")) as (client, _, _):
        cross = client.post("/login", data={"key": "reader"}, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "rag_session" not in cross.cookies
        away = client.post("/login", data={"key": "reader", "next": "//evil.example/x"}, follow_redirects=False)
        assert away.headers["location"] == "/"


# 3 ------------------------------------------------------------------------------------------


def test_page_questions_share_the_api_queue(full_app):
    with full_app(delay=0.3, max_queue=2) as (client, _, _), concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask_page(client), range(8)))
    answered = [r for r in results if r.startswith("answer:")]
    busy = [r for r in results if "answering as many questions as it can" in r]
    assert len(answered) + len(busy) == 8, results
    assert 1 <= len(answered) <= 4 and len(busy) >= 4  # two places; a freed place may be taken again


def test_page_and_api_share_one_rate_limit(full_app):
    with full_app(rate_limit="3/minute") as (client, _, _):
        assert ask_page(client).startswith("answer:")
        assert ask_page(client).startswith("answer:")
        assert client.get("/api/search", params={"q": "OpenAI"}).status_code == 200  # the third
        assert "Too many requests" in ask_page(client)
        limited = client.get("/api/documents")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_page_questions_obey_the_time_limit(full_app):
    with full_app(delay=0.5, request_timeout_s=1.0) as (client, _, generator):
        assert "took longer than this server allows" in ask_page(client)
        time.sleep(1.0)
        pieces = sum(1 for p in generator.prompts)  # the worker stopped: no new prompts after the limit
        time.sleep(1.0)
        assert sum(1 for p in generator.prompts) == pieces


# 5 ------------------------------------------------------------------------------------------


def test_the_rate_limit_counts_a_key_however_its_header_is_spelt(full_app):
    with full_app(api_keys=SecretStr("reader"), rate_limit="2/minute") as (client, _, _):
        spellings = ["Bearer reader", "bearer reader", "Bearer  reader", "BEARER reader"]
        statuses = [client.get("/api/documents", headers={"Authorization": a}).status_code for a in spellings]
    assert statuses == [200, 200, 429, 429]


# 6 ------------------------------------------------------------------------------------------


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(full_app):
    with full_app(rate_limit="1/minute") as (client, _, _):
        first = client.get("/api/documents", headers={"X-Forwarded-For": "203.0.113.1"})
        second = client.get("/api/documents", headers={"X-Forwarded-For": "203.0.113.2"})
    assert (first.status_code, second.status_code) == (200, 429)
    with full_app(rate_limit="1/minute", trusted_proxies="127.0.0.1") as (client, _, _):
        first = client.get("/api/documents", headers={"X-Forwarded-For": "203.0.113.1"})
        second = client.get("/api/documents", headers={"X-Forwarded-For": "203.0.113.2"})
    assert (first.status_code, second.status_code) == (200, 200)  # two clients behind the proxy


# 8 ------------------------------------------------------------------------------------------


def upload(client: httpx.Client, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/gradio_api/upload", files={"files": ("n.md", b"# N\n\nA note.\n")}, headers=headers or {})


def test_gradio_uploads_obey_the_document_rules(full_app):
    with full_app(admin_keys=SecretStr("admin")) as (client, _, _):
        assert upload(client).status_code == 401
        assert upload(client, {"Authorization": "Bearer admin", "Origin": "https://evil.example"}).status_code == 403
        ok = upload(client, {"Authorization": "Bearer admin"})
        assert ok.status_code == 200 and ok.json()[0].endswith("n.md")
        too_big = client.post(
            "/gradio_api/upload",
            files={"files": ("big.md", b"x" * 11_000_000)},
            headers={"Authorization": "Bearer admin"},
        )
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    with full_app() as (client, _, _):  # no keys: one person on their own machine, but not another site
        assert upload(client, {"Origin": "https://evil.example"}).status_code == 403
        assert upload(client).status_code == 200


def test_an_added_upload_is_deleted_and_indexed(full_app):
    with full_app() as (client, library, _):
        (path,) = upload(client).json()
        note = final_output(
            run_event(client, "rag-add", "click", [{"path": path, "meta": {"_type": "gradio.FileData"}}])
        )
        assert "Added" in str(note[0]) and any(d.endswith("n") for d in library.retriever.documents)
        assert client.get(f"/gradio_api/file={path}").status_code in (403, 404)


# 9 ------------------------------------------------------------------------------------------


def test_wrong_keys_are_throttled_on_the_api_and_the_login_form(full_app):
    with full_app(api_keys=SecretStr("reader")) as (client, _, _):
        statuses = [
            client.get("/api/documents", headers={"Authorization": f"Bearer guess{i}"}).status_code for i in range(10)
        ]
        assert statuses == [401] * 10
        right = client.get("/api/documents", headers={"Authorization": "Bearer reader"})
        assert right.status_code == 429 and int(right.headers["retry-after"]) > 0  # even a right key, for a while
        form = client.post("/login", data={"key": "reader"})
        assert form.status_code == 429 and "Too many wrong keys" in form.text
        assert client.get("/config", headers={"Authorization": "Bearer reader"}).status_code == 429
