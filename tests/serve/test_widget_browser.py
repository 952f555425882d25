"""The embeddable chat widget (`/widget.js`) in headless Chromium (the Debian package; Playwright
never downloads one), on host pages served from other origins than the app's.

The app runs as `make run` composes it (fake models, one API key, `RAG_CORS_ORIGINS` listing one
host page's origin). A page on that origin gets streamed, cited answers; a page on an origin not
listed gets nothing, and the model never runs for it. A scripted host server, speaking the
`/api/ask` event protocol itself, checks that checked sentences show as they arrive, the final
answer adds what follows them without replacing them, and each refusal, partial answer and error
is shown as such. The tests without a browser check the script's route and the CORS rules over HTTP.

With `RAG_SCREENSHOT_DIR` set, the browser tests save widget-open.png, widget-answer.png and
widget-phone.png there (docs/screenshots/ was made so).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from pydantic import SecretStr

from rag.library import DocumentLibrary
from rag.serve.server import WarmupApp, build_app, uvicorn_options
from rag.serve.widget import CACHE_CONTROL, widget_script
from tests.live import CHROMIUM, NO_CHROMIUM, EchoGenerator, ask, chromium, serve

KEY = "reader"
TITLE = "Ask the AI policy documents"
QUESTION = "Which sectors could OpenAI work with?"
SECTORS = "education, defence, security and justice"
SHOTS = os.environ.get("RAG_SCREENSHOT_DIR")

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)

# The host page tries to restyle everything, the widget's class names included: none of it may
# reach the widget, and none of the widget's styles may reach the page.
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example County Council — AI in our services</title>
<style>
* {{ font-family: Georgia, serif !important; color: rgb(59, 42, 26) !important; }}
body {{ margin: 0; background: #f6f1e7; line-height: 1.6; }}
header {{ background: #2f4f4f; padding: 1.2em 1.5em; }}
header h1 {{ margin: 0; font-size: 1.5em; color: #fff !important; }}
main {{ max-width: 40em; margin: 0 auto; padding: 1em 1.5em; }}
button, .launcher, .panel, .send {{ background: rgb(255, 105, 180) !important; border-radius: 0 !important; }}
p {{ margin: 40px 0; }}
</style></head><body>
<header><h1>Example County Council</h1></header>
<main>
<h2>How we use AI in our services</h2>
<p>We follow the government's guidance on artificial intelligence in public services. The assistant
in the corner answers questions from the UK AI policy documents, and cites the passage each answer
comes from.</p>
<p><button class="launcher" id="host-button" type="button">A button of the host page</button></p>
</main>
{script}
</body></html>"""


def host_page(script_src: str, key: str | None = KEY, title: str = TITLE) -> str:
    key_attr = f' data-key="{key}"' if key else ""
    return HOST_PAGE.format(script=f'<script src="{script_src}" data-title="{title}"{key_attr}></script>')


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event, with CRLF line ends as sse-starlette sends them."""
    return f"event: {event}\r\ndata: {json.dumps(data)}\r\n\r\n"


class HostSite:
    """A web server on its own 127.0.0.1 port, so another origin than the app's: `pages` maps a
    path to HTML. It can also play the API itself: it serves the widget script, and answers each
    `POST /api/ask` with the next of `replies` ((status, headers, parts): a part is text to send,
    a number of seconds to pause, or an Event to wait for), recording each request in `asked`."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.page_headers: dict[str, dict[str, str]] = {}  # extra response headers by path
        self.replies: list[tuple[int, dict[str, str], list[Any]]] = []
        self.asked: list[tuple[dict[str, str], dict[str, Any]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path == "/widget.js":
                    body, kind = widget_script(), "application/javascript"
                elif path in site.pages:
                    body, kind = site.pages[path].encode(), "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in site.page_headers.get(path, {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                site.asked.append((dict(self.headers), body))
                status, headers, parts = site.replies.pop(0)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for part in parts:
                    if isinstance(part, threading.Event):
                        part.wait(30)
                    elif isinstance(part, float):
                        time.sleep(part)
                    else:
                        self.wfile.write(part.encode())
                        self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def running(self) -> Iterator[HostSite]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def sites() -> Iterator[tuple[HostSite, HostSite]]:
    """Two host sites: the first one's origin is listed in RAG_CORS_ORIGINS, the second's is not."""
    with HostSite().running() as listed, HostSite().running() as unlisted:
        yield listed, unlisted


@pytest.fixture
def app(make_pipeline, settings, sites) -> Iterator[tuple[str, EchoGenerator]]:
    """The whole app as `make run` serves it, with a key and the first host site's origin allowed;
    both sites serve host pages that embed its widget. Yields the app's URL and its generator."""
    listed, unlisted = sites
    s = settings.model_copy(update={"api_keys": SecretStr(KEY), "cors_origins": listed.origin})
    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator(delay=0.03)
    server = WarmupApp()
    options = {k: v for k, v in uvicorn_options(s).items() if k not in ("host", "port")}
    with serve(server, **options) as url:
        server.ready(build_app(pipe, s, DocumentLibrary(pipe.retriever, s)))
        for site in sites:
            site.pages["/"] = host_page(f"{url}/widget.js")
            site.pages["/wrong-key.html"] = host_page(f"{url}/widget.js", key="not-the-key")
        yield url, pipe.generator


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.wait_for_timeout(300)
        page.screenshot(path=str(Path(SHOTS) / name))


def count_in_answers(page, text: str) -> int:
    """How many times `text` occurs in the widget's answer text (a repeat would be a bug)."""
    return page.evaluate(
        """t => [...document.querySelector('rag-chat-widget').shadowRoot.querySelectorAll('.text')]
              .map(e => e.textContent.split(t).length - 1).reduce((a, b) => a + b, 0)""",
        text,
    )


# --- over HTTP, without a browser ---------------------------------------------------------


def test_the_script_is_served_without_sign_in_and_cached(app):
    url, _ = app
    with httpx.Client(base_url=url) as client:
        script = client.get("/widget.js")
        assert script.status_code == 200 and script.content == widget_script()
        assert script.headers["content-type"].startswith("application/javascript")
        assert script.headers["cache-control"] == CACHE_CONTROL
        assert script.headers["cross-origin-resource-policy"] == "cross-origin"
        again = client.get("/widget.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        # The page itself still needs the sign-in, and questions still need the key.
        assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
        assert client.post("/api/ask", json={"question": QUESTION}).status_code == 401
        refused = client.post("/widget.js")
        assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"


def test_cors_lets_the_listed_origin_stream_and_refuses_the_rest(app, sites):
    url, generator = app
    listed, unlisted = sites
    with httpx.Client(base_url=url, timeout=60) as client:
        asking = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        ok = client.options("/api/ask", headers={"Origin": listed.origin, **asking})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == listed.origin
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        no = client.options("/api/ask", headers={"Origin": unlisted.origin, **asking})
        assert "access-control-allow-origin" not in no.headers

        body = {"question": QUESTION, "stream": True}
        auth = {"Authorization": f"Bearer {KEY}"}
        with client.stream("POST", "/api/ask", json=body, headers={"Origin": listed.origin, **auth}) as resp:
            assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == listed.origin
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert "event: answer" in resp.read().decode()
        asked = len(generator.prompts)

        # A page on an origin not listed is refused before its key is checked or the model runs,
        # even for a request a browser sends without asking first (no preflight: no content type).
        for headers in ({"Content-Type": "application/json", **auth}, {}):
            cross = client.post("/api/ask", content=json.dumps(body), headers={"Origin": unlisted.origin, **headers})
            assert cross.status_code == 403 and cross.json()["error"]["code"] == "forbidden"
            assert "RAG_CORS_ORIGINS" in cross.json()["error"]["message"]
            assert "access-control-allow-origin" not in cross.headers
        assert len(generator.prompts) == asked


# --- the widget in the browser, against the app --------------------------------------------


@pytest.mark.browser
@needs_chromium
def test_a_listed_site_gets_streamed_cited_answers(app, sites, browser):
    from playwright.sync_api import expect

    url, _ = app
    listed, _ = sites
    page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or r.url))
    page.goto(listed.origin + "/")

    launcher = page.get_by_role("button", name=TITLE)
    expect(launcher).to_have_attribute("aria-expanded", "false")
    panel = page.get_by_role("dialog", name=TITLE)
    expect(panel).to_be_hidden()
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(panel).to_be_visible()
    expect(page.get_by_label("Your question")).to_be_focused()
    expect(page.locator("rag-chat-widget .log")).to_have_attribute("aria-live", "polite")
    shot(page, "widget-open.png")

    # A question streams back a checked answer with a numbered citation; once, not twice.
    ask(page, QUESTION)
    answer = page.locator("rag-chat-widget .turn").nth(0)
    cite = answer.locator("button.cite", has_text="[1]").first
    expect(cite).to_be_visible(timeout=30_000)
    expect(answer.locator(".status")).to_have_count(0, timeout=30_000)  # the final answer arrived
    expect(answer.locator(".text")).to_contain_text(SECTORS)
    assert count_in_answers(page, SECTORS) == 1

    # The citation opens its quote, with the document's title and a link to it.
    source = answer.locator("details.src").first
    expect(source).not_to_have_attribute("open", "")
    cite.click()
    expect(source).to_have_attribute("open", "")
    expect(source.locator("summary")).to_be_focused()
    expect(source.locator("blockquote")).to_contain_text(SECTORS)
    expect(source.locator("summary")).to_contain_text("UK signs AI deal with OpenAI")
    expect(source.get_by_role("link")).to_have_attribute("href", "https://example.org/openai-deal")
    expect(cite).to_have_attribute("aria-label", "Source 1: UK signs AI deal with OpenAI")
    shot(page, "widget-answer.png")

    # A follow-up carries the conversation: the server rewrites it with the earlier question.
    ask(page, "How many staff does it employ in London?")
    second = page.locator("rag-chat-widget .turn").nth(1)
    expect(second.locator("button.cite").first).to_be_visible(timeout=30_000)
    expect(second.locator(".searched")).to_contain_text("Searched for:")
    expect(second.locator(".text")).to_contain_text("100 staff")

    # What the documents do not hold is refused, and shown as a refusal (in a new conversation, or
    # the question would be searched for together with the last one).
    page.get_by_role("button", name="New chat").click()
    ask(page, "zzxq wombat frobnicate")
    refusal = page.locator("rag-chat-widget .turn").nth(0).locator(".notice.refused")
    expect(refusal).to_contain_text("Not in the documents", timeout=30_000)
    expect(refusal).to_contain_text("answers only from its documents")

    # The host page's CSS does not reach the widget, nor the widget's the page.
    styles = page.evaluate(
        """() => {
            const root = document.querySelector('rag-chat-widget').shadowRoot;
            const css = (el) => getComputedStyle(el);
            const mine = css(root.querySelector('.launcher')), theirs = css(document.getElementById('host-button'));
            return {mine: [mine.backgroundColor, mine.fontFamily, mine.color],
                    theirs: [theirs.backgroundColor, theirs.fontFamily, theirs.borderRadius]};
        }"""
    )
    assert styles["mine"][0] == "rgb(29, 78, 216)" and "Georgia" not in styles["mine"][1]
    assert styles["mine"][2] == "rgb(255, 255, 255)"
    assert styles["theirs"] == ["rgb(255, 105, 180)", "Georgia, serif", "0px"]

    # Escape closes the panel and gives the focus back to the button.
    page.get_by_label("Your question").focus()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    assert hosts == {"127.0.0.1"}, f"the page fetched from {hosts - {'127.0.0.1'}}"


@pytest.mark.browser
@needs_chromium
def test_an_unlisted_origin_or_a_wrong_key_gets_nothing_and_says_why(app, sites, browser):
    from playwright.sync_api import expect

    url, generator = app
    listed, unlisted = sites
    page = browser.new_page(viewport={"width": 1280, "height": 860})

    # The script loads anywhere (it is no secret), but the browser gets no answer for a page whose
    # origin the server does not list: the preflight is refused, so the question is never sent.
    page.goto(unlisted.origin + "/")
    page.get_by_role("button", name=TITLE).click()
    ask(page, QUESTION)
    error = page.locator("rag-chat-widget .notice.error")
    expect(error).to_contain_text(f"Could not reach the answer service at {url}.", timeout=30_000)
    expect(error).to_contain_text("RAG_CORS_ORIGINS")
    expect(page.locator("rag-chat-widget button.cite")).to_have_count(0)
    assert generator.prompts == []

    # A listed page with a wrong key is told so, with the server's own message.
    page.goto(listed.origin + "/wrong-key.html")
    page.get_by_role("button", name=TITLE).click()
    ask(page, QUESTION)
    error = page.locator("rag-chat-widget .notice.error")
    expect(error).to_contain_text("needs a key that this page did not send, or sent wrong", timeout=30_000)
    expect(error).to_contain_text("This server needs an API key")
    assert generator.prompts == []


@pytest.mark.browser
@needs_chromium
def test_phone_width_and_keyboard(app, sites, browser):
    from playwright.sync_api import expect

    listed, _ = sites
    page = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page.goto(listed.origin + "/")
    launcher = page.get_by_role("button", name=TITLE)
    panel = page.get_by_role("dialog", name=TITLE)

    # Tab reaches the button after the page's own one; Enter opens the panel with the focus in it.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(page.get_by_label("Your question")).to_be_focused()
    box = panel.bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 740)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    cite = page.locator("rag-chat-widget button.cite").first
    expect(cite).to_be_visible(timeout=30_000)
    expect(page.locator("rag-chat-widget .status")).to_have_count(0, timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    # A citation opens from the keyboard too.
    cite.focus()
    page.keyboard.press("Enter")
    source = page.locator("rag-chat-widget details.src").first
    expect(source).to_have_attribute("open", "")
    expect(source.locator("summary")).to_be_focused()
    expect(source.locator("blockquote")).to_be_in_viewport()
    shot(page, "widget-phone.png")  # (takes the focus away for the picture)
    source.locator("summary").focus()

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")


# --- the widget against a scripted server speaking the event protocol ----------------------

SKILLS = {
    "n": 1,
    "doc_id": "skills-plan",
    "title": "Skills plan",
    "url": "https://example.org/skills",
    "quote": "The plan aims to train 7.5 million workers in AI skills by 2030.",
    "start": 0,
    "end": 62,
    "publisher": "Test Department",
    "date": "2025-01-13",
    "uploaded": False,
}
NOTE = SKILLS | {
    "n": 2,
    "doc_id": "zephyr-note",
    "title": "Zephyr note",
    "url": "javascript:alert(1)",
    "quote": "Training starts in Cornwall.",
    "publisher": "",
    "date": "",
    "uploaded": True,
}
FIRST = "The plan aims to train 7.5 million workers in AI skills [1]."
SECOND = "Training starts in Cornwall [1][2]."
KEY_PASSAGE = "Key passage: “train 7.5 million workers in AI skills by 2030” [1]"
STREAM = {"Content-Type": "text/event-stream"}
JSON = {"Content-Type": "application/json"}


def answer_event(text: str, citations: list[dict[str, Any]], refused: bool = False, partial: bool = False) -> str:
    return sse("answer", {"answer": text, "refused": refused, "partial": partial, "citations": citations})


@pytest.mark.browser
@needs_chromium
def test_sentences_show_as_they_arrive_and_the_answer_adds_the_rest(sites, browser):
    from playwright.sync_api import expect

    site, _ = sites
    site.pages["/"] = host_page("/widget.js", key="site-key")
    # A strict policy: the widget's styles are a constructed sheet, which `style-src` does not block.
    site.page_headers["/"] = {"Content-Security-Policy": "default-src 'self'; style-src 'self'"}
    go = threading.Event()
    site.replies.append(
        (
            200,
            STREAM,
            [
                sse("rewritten", {"question": "What does the skills plan aim for?"}),
                sse("writing", {}),
                ": ping - keep-alive\r\n\r\n",
                sse("sentence", {"text": FIRST, "citations": [SKILLS]}),
                go,  # the test looks at the first sentence before the rest is sent
                sse("sentence", {"text": SECOND, "citations": [NOTE]}),
                "event: answer\r",  # a CRLF split across two reads
                0.05,
                "\n" + answer_event(f"{FIRST} {SECOND}\n\n{KEY_PASSAGE}", [SKILLS, NOTE]).split("\r\n", 1)[1],
            ],
        )
    )
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(site.origin + "/")
    page.get_by_role("button", name=TITLE).click()
    ask(page, "What does the skills plan aim for?")

    turn = page.locator("rag-chat-widget .turn").first
    text = turn.locator(".text")
    expect(text).to_have_text(FIRST, timeout=20_000)
    expect(page.locator("rag-chat-widget .head")).to_have_css("background-color", "rgb(29, 78, 216)")
    expect(turn.locator(".status")).to_contain_text("checking its citations")
    expect(turn.locator("details.src")).to_have_count(1)
    page.evaluate("document.querySelector('rag-chat-widget').shadowRoot.querySelector('.text p').dataset.seen = '1'")
    go.set()

    expect(turn.locator(".status")).to_have_count(0, timeout=20_000)
    paragraphs = text.locator("p")
    expect(paragraphs).to_have_text([f"{FIRST} {SECOND}", KEY_PASSAGE])
    expect(paragraphs.first).to_have_attribute("data-seen", "1")  # added to, never replaced
    assert count_in_answers(page, "7.5 million workers in AI skills [1].") == 1
    expect(turn.locator("button.cite")).to_have_count(4)

    sources = turn.locator("details.src")
    expect(sources).to_have_count(2)
    sources.nth(0).locator("summary").click()
    expect(sources.nth(0).locator(".meta")).to_have_text("Test Department · 13 January 2025")
    expect(sources.nth(0).get_by_role("link")).to_have_attribute("href", "https://example.org/skills")
    sources.nth(1).locator("summary").click()
    expect(sources.nth(1).locator(".badge")).to_have_text("uploaded")
    expect(sources.nth(1).get_by_role("link")).to_have_count(0)  # not an http(s) link: not a link

    headers, body = site.asked[0]
    assert headers["Authorization"] == "Bearer site-key"
    assert body == {"question": "What does the skills plan aim for?", "history": [], "stream": True}


@pytest.mark.browser
@needs_chromium
def test_refusals_partial_answers_and_errors_are_shown_as_such(sites, browser):
    from playwright.sync_api import expect

    site, _ = sites
    site.pages["/"] = host_page("/widget.js", key=None)
    partial = "I couldn't write a checked answer; the closest passages say: “train 7.5 million workers” [1]"
    busy = json.dumps({"error": {"code": "busy", "message": "The server is busy; try again in 10 s."}})
    limited = json.dumps({"error": {"code": "rate_limited", "message": "Too many requests; slow down."}})
    timeout = {"error": {"code": "timeout", "message": "The answer took longer than 120 s."}}
    site.replies += [
        # Before sentence events, the stream sent the model's draft as `token` events: never shown.
        (
            200,
            STREAM,
            [
                sse("token", {"text": "Unchecked "}),
                sse("token", {"text": "draft"}),
                answer_event(partial, [SKILLS], partial=True),
            ],
        ),
        (200, STREAM, [answer_event("I can't find that in the documents.", [], refused=True)]),
        (429, JSON | {"Retry-After": "7"}, [limited]),
        (503, JSON | {"Retry-After": "10"}, [busy]),
        (200, STREAM, [sse("sentence", {"text": FIRST, "citations": [SKILLS]}), sse("error", timeout)]),
        (200, STREAM, [sse("rewritten", {"question": "x"})]),  # the connection closes without an answer
    ]
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(site.origin + "/")
    page.get_by_role("button", name=TITLE).click()
    turns = page.locator("rag-chat-widget .turn")

    def asked(question: str, n: int):
        ask(page, question)
        expect(turns.nth(n).locator(".status")).to_have_count(0, timeout=20_000)
        return turns.nth(n)

    labelled = asked("What does the plan aim for?", 0)
    expect(labelled.locator(".partial .label")).to_have_text("Partial answer")
    expect(labelled.locator(".text")).to_contain_text("the closest passages say")
    expect(labelled).not_to_contain_text("Unchecked")
    expect(labelled.locator("details.src")).to_have_count(1)

    refused = asked("What is the zephyr budget?", 1)
    expect(refused.locator(".notice.refused")).to_contain_text("Not in the documents")
    expect(refused.locator(".notice.refused")).to_contain_text("I can't find that in the documents.")
    expect(refused.locator(".notice.error")).to_have_count(0)

    limited_turn = asked("Another?", 2)
    expect(limited_turn.locator(".notice.error")).to_contain_text("Too many questions for now. Try again in 7 s.")
    expect(limited_turn.locator(".notice.error")).to_contain_text("Too many requests; slow down.")

    busy_turn = asked("And another?", 3)
    expect(busy_turn.locator(".notice.error")).to_contain_text("busy or still starting. Try again in 10 s.")
    expect(busy_turn.locator(".notice.error")).to_contain_text("The server is busy; try again in 10 s.")

    stopped = asked("A slow one?", 4)
    expect(stopped.locator(".text")).to_have_text(FIRST)  # what was checked stays
    expect(stopped.locator(".notice.error")).to_contain_text("The answer took too long.")
    expect(stopped.locator(".notice.error")).to_contain_text("The answer took longer than 120 s.")

    cut = asked("A cut one?", 5)
    expect(cut.locator(".notice.error")).to_contain_text("The answer stopped before it was finished.")

    # Answered turns go back as history; failed ones do not. No key attribute: no Authorization.
    headers, body = site.asked[2]
    assert "Authorization" not in headers
    assert [m["role"] for m in body["history"]] == ["user", "assistant", "user", "assistant"]
    assert body["history"][0] == {"role": "user", "content": "What does the plan aim for?"}
    assert len(site.asked[5][1]["history"]) == 4

    # "New chat" forgets the conversation.
    page.get_by_role("button", name="New chat").click()
    expect(turns).to_have_count(0)
    expect(page.get_by_label("Your question")).to_be_focused()
