"""Helpers for tests that need a real HTTP server: uvicorn on a free 127.0.0.1 port in a thread,
and a generator that answers from whatever passage it is shown (for end-to-end chats).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from rag.lexical import tokenize
from rag.prompts import REFUSAL, REWRITE_SYSTEM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app: Any, timeout: float = 30.0, **options: Any) -> Iterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 until the block ends; yields the base URL.

    `options` go to `uvicorn.Config` (e.g. `rag.serve.server.uvicorn_options`, less host and port).
    """
    port = free_port()
    config = uvicorn.Config(
        app, **{"log_level": "warning", "lifespan": "on", **options, "host": "127.0.0.1", "port": port}
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


class EchoGenerator:
    """Answers with the first sentence of passage 1 plus "[1]", streamed word by word, or refuses
    when that passage shares no word with the question; rewrites a follow-up by appending the
    previous question. Deterministic, and its answers always pass the citation check."""

    name = "echo-test"
    supports_opening_floor = False

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.prompts: list[list[dict[str, str]]] = []

    def generate(self, messages: list[dict[str, str]], max_tokens: int = 300, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int = 300, temperature: float = 0.0, opening_floor: Any = None
    ) -> Iterator[str]:
        self.prompts.append(messages)
        user = messages[-1]["content"]
        if messages[0]["content"] == REWRITE_SYSTEM:
            question = user.split("Follow-up question:", 1)[1].split("\n", 1)[0].strip()
            previous = re.findall(r"^User: (.*)$", user, re.MULTILINE)
            yield f"{question} ({previous[-1]})" if previous else question
            return
        question = user.rsplit("Question:", 1)[1].split("\n", 1)[0]
        m = re.search(r'<passage id="1"[^>]*>\n(.*?)\n</passage>', user, re.DOTALL)
        passage = m.group(1) if m else ""
        if not set(tokenize(question)) & set(tokenize(passage)):
            yield REFUSAL
            return
        first = next((b for b in passage.split("\n") if b.strip() and not b.startswith("#")), passage)
        sentence = re.split(r"(?<=[.!?])\s", first.lstrip("-*• ").strip())[0].rstrip(".")
        for word in f"{sentence} [1].".split(" "):
            if self.delay:
                time.sleep(self.delay)
            yield word + " "


# --- headless Chromium for the browser tests (Debian's build; Playwright never downloads one) ---

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
NO_CHROMIUM = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's `Browser`), closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def ask(page: Any, question: str) -> None:
    """Type `question` in the box labelled "Your question" (the page's and the widget's) and send it."""
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
