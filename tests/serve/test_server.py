"""The one-process server: a loading page and 503s while the model loads, then the full app
(browser chat at "/", API beside it) without a restart; a failed load is shown on the page."""

from __future__ import annotations

import httpx
import pytest

from rag.library import DocumentLibrary
from rag.serve.server import WarmupApp, build_app
from tests.live import EchoGenerator, serve


@pytest.fixture
def echo_pipeline(make_pipeline):
    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator()
    return pipe


def test_loading_page_then_the_full_app(echo_pipeline, settings):
    server = WarmupApp()
    with serve(server) as url:
        page = httpx.get(f"{url}/")
        assert page.status_code == 503 and "Loading the model" in page.text and "/healthz" in page.text
        assert httpx.get(f"{url}/healthz").json()["status"] == "loading"
        err = httpx.post(f"{url}/api/ask", json={"question": "x"})
        assert err.status_code == 503 and err.json()["error"]["code"] == "loading"
        widget = httpx.get(f"{url}/widget.js")  # a host page opened while the model loads gets its widget
        assert widget.status_code == 200 and widget.headers["content-type"].startswith("application/javascript")

        server.ready(build_app(echo_pipeline, settings, DocumentLibrary(echo_pipeline.retriever, settings)))

        health = httpx.get(f"{url}/healthz").json()
        assert health["status"] == "ok" and health["model"] == "echo-test"
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "UK AI policy documents" in page.text  # the Gradio page
        answer = httpx.post(f"{url}/api/ask", json={"question": "Which sectors could OpenAI work with?"}, timeout=30)
        assert answer.json()["citations"][0]["doc_id"] == "openai-deal"
        # Gradio's own routes (its queue started in the lifespan that `ready` ran) answer too.
        assert httpx.get(f"{url}/config").status_code == 200


def test_while_loading_a_listed_site_can_read_the_503():
    server = WarmupApp({"http://127.0.0.1:9"})
    with serve(server) as url:
        listed = httpx.post(f"{url}/api/ask", json={"question": "x"}, headers={"Origin": "http://127.0.0.1:9"})
        other = httpx.post(f"{url}/api/ask", json={"question": "x"}, headers={"Origin": "http://evil.example"})
    assert listed.status_code == 503 and listed.headers["access-control-allow-origin"] == "http://127.0.0.1:9"
    assert other.status_code == 503 and "access-control-allow-origin" not in other.headers


def test_a_failed_load_is_shown_not_hidden():
    server = WarmupApp()
    with serve(server) as url:
        server.failed("model file /srv/models/x.gguf does not exist")
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 503 and health.json() == {
            "status": "error",
            "message": "model file x.gguf does not exist",  # what is wrong, without the server's paths
        }
        assert "could not start: model file x.gguf does not exist" in httpx.get(f"{url}/").text
