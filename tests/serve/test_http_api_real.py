"""The HTTP API over the real packaged models (slow): one known question through `POST /api/ask`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rag.library import DocumentLibrary
from rag.serve.http_api import create_app

pytestmark = pytest.mark.slow


def test_ask_endpoint_with_the_default_model(qwen15, real_pipeline, real_settings):
    pipe = real_pipeline(qwen15)
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, real_settings), real_settings))
    r = client.post("/api/ask", json={"question": "Which sectors could OpenAI work with under the agreement?"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"answer", "refused", "partial", "citations", "retrieved", "timings", "model", "decision"}
    assert not body["refused"] and "education" in body["answer"].lower()
    doc = body["citations"][0]["doc_id"]
    assert doc in {"mou-uk-openai", "openai-expand-uk-office-press-release", "uk-openai-partnership-article"}
    got = client.get(f"/api/documents/{doc}").json()
    c = body["citations"][0]
    assert c["quote"] in got["body"] and got["body"][c["start"] : c["end"]] == c["quote"]
