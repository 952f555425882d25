"""The load test's CI run (`bench/load.py --fake`): a few seconds of clients going through every door
into the model (the page's chat through Gradio's Python client, `/api/ask` JSON and streamed,
`/v1/chat/completions`) and `/api/search`, against the whole app with the echo generator and an
answer queue of three places (five clients), so that some are told the server is busy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from rag.errors import RateLimitedError, RequestTimeoutError, ServerBusyError
from rag.serve.render import chat_messages, sources_html, status_html
from rag.serve.server import WarmupApp

LOAD_PY = Path(__file__).resolve().parent.parent / "bench" / "load.py"


@pytest.fixture(scope="module")
def load() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_load", LOAD_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_a_short_fake_run_through_every_door(load):
    args = load.parse_args(
        ["--fake", "--clients", "5", "--duration", "3", "--max-queue", "3", "--max-requests", "300"]
        + ["--request-timeout", "30", "--key", "reader"]  # the page's client sends the key like the API's
    )
    result, table = load.measure(args)
    statuses = result["statuses"]
    assert all(statuses[door]["200"] >= 1 for door in load.ROUTES), table
    assert sum(counts["503"] for counts in statuses.values()) >= 1, table
    assert all(load.other_errors(counts) == 0 for counts in statuses.values()), table
    assert sum(result["wrong"].values()) == 0, table
    assert all(counts["lost"] == 0 for counts in statuses.values()), table
    assert not result["problems"] and not load.failed(result), table


def error_turn(text: str) -> dict:
    return {"n": 1, "question": "Q?", "standalone": "Q?", "kind": "error", "text": text, "citations": []}


@pytest.mark.parametrize(
    ("error", "status"),
    [(ServerBusyError(), "503"), (RequestTimeoutError(), "504"), (RuntimeError("Something went wrong"), "error")],
)
def test_the_page_error_turns_are_read_as_the_api_statuses(load, error, status):
    turn = error_turn(str(error))
    reply = load.page_reply(("", chat_messages([turn]), sources_html([]), ""))
    assert (reply.status, reply.questions) == (status, ["Q?"])


def test_a_page_refused_before_its_turn_is_read_from_the_note(load):
    skipped = {"__type__": "update"}
    note = status_html("error", str(RateLimitedError(3)))
    assert load.page_reply(("", skipped, skipped, note)).status == "429"


def test_a_page_answer_for_another_question_is_caught(load):
    expected = load.Expected("openai-deal", "openai-deal", {"openai-deal"}, {"UK signs AI deal with OpenAI"})
    turn = error_turn("Yes [1].") | {"question": "Other?", "kind": "answer"}
    reply = load.page_reply(("", chat_messages([turn]), sources_html([turn]), ""))
    assert reply.status == "200" and load.mismatch("page", reply, "Q?", expected)


def test_the_load_waits_for_the_app_and_stops_when_it_cannot_start(load):
    server = WarmupApp()  # `python app.py` while it loads the model

    async def wait(timeout_s: float) -> str:
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await load.wait_ready(client, timeout_s)

    with pytest.raises(SystemExit, match="not ready after 0 s"):
        asyncio.run(wait(0))
    server.failed("the model file is missing")
    with pytest.raises(SystemExit, match="could not start: the model file is missing"):
        asyncio.run(wait(0))
