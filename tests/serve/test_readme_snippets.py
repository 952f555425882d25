"""The README's "Use it from other tools" snippets, run as a reader would paste them, against the
app as `make run` composes it (page, API, /v1, /mcp, /widget.js) with the fake model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from rag.library import DocumentLibrary
from rag.serve.server import WarmupApp, build_app, uvicorn_options
from tests.live import serve

ROOT = Path(__file__).resolve().parents[2]
HOST = "http://127.0.0.1:7860"
KEY = "sk-readme"
SECTORS = "OpenAI may provide technology to education and defence [1]."


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Use it from other tools")
    return text[start : text.index("\n## ", start + 3)]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.S)


@pytest.fixture
def app_url(make_pipeline, settings):
    pipe, _ = make_pipeline([SECTORS] * 10)
    s = settings.model_copy(update={"api_keys": SecretStr(KEY)})
    server = WarmupApp()
    options = {k: v for k, v in uvicorn_options(s).items() if k not in ("host", "port")}
    with serve(server, **options) as url:
        server.ready(build_app(pipe, s, DocumentLibrary(pipe.retriever, s)))
        yield url


def run_snippet(code: str, url: str) -> str:
    code = code.replace(HOST, url).replace("YOUR_KEY", KEY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_section_has_a_snippet_for_each_tool():
    python = blocks("python")
    assert [("openai import OpenAI" in b, "ChatOpenAI" in b, "ClientSession" in b) for b in python] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert len(blocks("json")) == 1 and len(blocks("html")) == 1


@pytest.mark.parametrize("n", [0, 1, 2], ids=["openai-sdk", "langchain", "mcp"])
def test_each_python_snippet_prints_the_cited_answer(app_url, n):
    out = run_snippet(blocks("python")[n], app_url)
    assert SECTORS in out
    if n != 1:
        assert "UK signs AI deal with OpenAI" in out and "https://example.org/openai-deal" in out


def test_the_mcp_desktop_configuration_starts_the_stdio_server():
    import json

    config = json.loads(blocks("json")[0])["mcpServers"]["uk-ai-policy"]
    assert config["args"] == ["-m", "rag", "mcp"]
    help_text = subprocess.run([sys.executable, *config["args"], "--help"], capture_output=True, text=True, cwd=ROOT)
    assert help_text.returncode == 0 and "usage: python -m rag mcp" in help_text.stdout  # served: test_mcp.py


def test_the_widget_snippet_loads_the_served_script_with_its_attributes(app_url):
    tag = blocks("html")[0]
    src = re.search(r'src="([^"]+)"', tag).group(1).replace(HOST, app_url)
    script = httpx.get(src)
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    for attr in re.findall(r"\b(data-[a-z-]+)=", tag):
        assert attr.removeprefix("data-") in script.text  # the widget reads each attribute the snippet sets
