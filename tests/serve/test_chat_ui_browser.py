"""The browser chat end to end in headless Chromium (the Debian package; Playwright never downloads
one): streamed, cited answers, opening a source, a follow-up, the Documents tab, upload and removal,
feedback, phone width, and no request leaving 127.0.0.1.

`take_screenshots(url, folder)` is also used by hand against the real app for docs/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from rag.library import DocumentLibrary
from rag.serve.server import build_app
from tests.live import CHROMIUM, NO_CHROMIUM, EchoGenerator, ask, chromium, serve

NOTE = "---\ntitle: Zephyr lighthouse note\n---\n\n# Zephyr lighthouse\n\nThe zephyr lighthouse programme funds coastal AI labs in Cornwall.\n"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM),
]


@pytest.fixture
def app_url(make_pipeline, settings):
    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator(delay=0.12)  # slow enough to see the answer being written
    with serve(build_app(pipe, settings, DocumentLibrary(pipe.retriever, settings))) as url:
        yield url


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


def test_chat_cites_follows_up_and_answers_from_an_upload(app_url, browser, settings, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or r.url))
    page.goto(app_url)
    expect(page).to_have_title("UK AI policy documents — cited answers", timeout=20_000)
    expect(page.get_by_role("button", name="Ask", exact=True)).to_be_visible()

    # 1. A streamed answer: "writing" shows first (never the unchecked draft), then the checked
    # answer with a linked [1].
    ask(page, "Which sectors could OpenAI work with?")
    expect(page.locator("#rag-chat .rag-drafting", has_text="Writing and checking")).to_be_visible(timeout=20_000)
    link = page.locator('#rag-chat a[href="#src-1-1"]')
    expect(link).to_be_visible(timeout=20_000)
    expect(page.locator("#rag-chat")).to_contain_text("education")

    # 2. Opening the citation focuses its card, with the quote highlighted in its paragraph.
    link.click()
    card = page.locator("#src-1-1")
    expect(card).to_be_focused()
    expect(card.locator("mark")).to_contain_text("education, defence, security and justice")
    expect(card).to_contain_text("UK signs AI deal with OpenAI")
    expect(card).to_contain_text("Test Desk · 22 July 2025")
    expect(card.get_by_role("link", name="UK signs AI deal with OpenAI")).to_have_attribute(
        "href", "https://example.org/openai-deal"
    )

    # 3. A follow-up is rewritten with the conversation, and says what it searched for.
    ask(page, "How many staff does it employ in London?")
    expect(page.locator('#rag-chat a[href="#src-2-1"]')).to_be_visible(timeout=20_000)
    expect(page.locator("#rag-chat .rag-searched").last).to_contain_text("Searched for:")
    expect(page.locator("#rag-chat")).to_contain_text("100 staff")
    expect(page.locator("details.rag-older")).to_contain_text("Answer 1")  # earlier sources folded away

    # 4. A question the documents cannot answer gets the calm "not in the documents" state.
    page.get_by_role("button", name="Clear conversation").click()
    ask(page, "zzxq wombat frobnicate")
    expect(page.locator("#rag-chat .rag-notfound")).to_contain_text("Not in the documents", timeout=20_000)

    # 5. Feedback on that answer is saved.
    page.get_by_text("Was the last answer helpful?").click()
    page.get_by_label("Comment (optional)").fill("fine")
    page.get_by_role("button", name="👍 Helpful").click()
    expect(page.locator("#rag-note")).to_contain_text("feedback on the last answer was saved")
    saved = [json.loads(x) for x in (settings.data_dir / "feedback.jsonl").read_text().splitlines()]
    assert saved[-1]["helpful"] is True and saved[-1]["comment"] == "fine"

    # 6. Documents tab: read a document; a broken upload is refused and changes nothing.
    page.get_by_role("tab", name="Documents").click()
    table = page.locator("#rag-doc-table")
    expect(table).to_contain_text("3 documents in the index")
    page.get_by_label("Open a document to read it").click()
    page.get_by_role("option", name="Memorandum with Cohere").click()
    expect(page.locator("#rag-reader")).to_contain_text("not legally binding")

    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"not a zip file")
    page.locator("#rag-upload input[type=file]").set_input_files(str(broken))
    page.locator("#rag-add").click()
    expect(page.locator("#rag-upload-note")).to_contain_text("is not a Word .docx file", timeout=20_000)
    expect(table).to_contain_text("3 documents in the index")

    note = tmp_path / "zephyr-note.md"
    note.write_text(NOTE, encoding="utf-8")
    page.locator("#rag-upload input[type=file]").set_input_files(str(note))
    page.locator("#rag-add").click()
    expect(page.locator("#rag-upload-note")).to_contain_text("Added “Zephyr lighthouse note”", timeout=20_000)
    expect(table).to_contain_text("4 documents in the index")
    expect(table).to_contain_text("uploaded")

    # 7. The upload is answerable at once, and cited.
    page.get_by_role("tab", name="Ask").click()
    page.get_by_role("button", name="Clear conversation").click()
    ask(page, "What does the zephyr lighthouse programme fund?")
    expect(page.locator('#rag-chat a[href="#src-1-1"]')).to_be_visible(timeout=20_000)
    expect(page.locator("#src-1-1")).to_contain_text("Zephyr lighthouse note")
    expect(page.locator("#src-1-1 mark")).to_contain_text("coastal AI labs")

    # 8. And it can be removed again.
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("Uploaded documents").click()
    page.get_by_role("option", name="Zephyr lighthouse note").click()
    page.get_by_role("button", name="Remove this upload").click()
    expect(page.locator("#rag-upload-note")).to_contain_text("Removed “Zephyr lighthouse note”", timeout=20_000)
    expect(table).to_contain_text("3 documents in the index")

    assert hosts == {"127.0.0.1"}, f"the page fetched from {hosts - {'127.0.0.1'}}"
    take_screenshots(app_url, tmp_path / "shots", browser=browser)
    assert all(p.stat().st_size > 10_000 for p in (tmp_path / "shots").glob("*.png"))
    if os.environ.get("RAG_SCREENSHOT_DIR"):
        take_screenshots(app_url, Path(os.environ["RAG_SCREENSHOT_DIR"]), browser=browser)


def test_phone_width_has_no_sideways_scroll(app_url, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(app_url)
    ask(page, "Which sectors could OpenAI work with?")
    expect(page.locator('#rag-chat a[href="#src-1-1"]')).to_be_visible(timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator('#rag-chat a[href="#src-1-1"]').click()
    expect(page.locator("#src-1-1")).to_be_in_viewport()


def take_screenshots(
    url: str,
    folder: Path,
    question: str = "Which sectors could OpenAI work with?",
    browser=None,
    timeout_ms: int = 300_000,
) -> list[Path]:
    """Desktop (1280x900) and phone (390x844) screenshots of a cited answer, with its source open."""
    from playwright.sync_api import expect

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with chromium() if browser is None else contextlib.nullcontext(browser) as b:
        for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = b.new_page(viewport=viewport, device_scale_factor=1)
            page.goto(url)
            ask(page, question)
            expect(page.locator('#rag-chat a[href^="#src-"]').first).to_be_visible(timeout=timeout_ms)
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.wait_for_timeout(400)
            out.append(folder / f"chat-{name}.png")
            page.screenshot(path=str(out[-1]))
            page.locator('#rag-chat a[href^="#src-"]').first.click()
            page.wait_for_timeout(1800)  # let the smooth scroll and the flash finish
            out.append(folder / f"sources-{name}.png")
            page.screenshot(path=str(out[-1]))
            page.close()
    return out


class BrokenGenerator:
    """Fails the way real backends do: a `RagError` with a message for the user, or a bug."""

    name = "broken"
    supports_opening_floor = False

    def generate(self, messages, max_tokens=300, temperature=0.0):
        return "".join(self.stream(messages, max_tokens, temperature))

    def stream(self, messages, max_tokens=300, temperature=0.0, opening_floor=None):
        from rag.errors import GenerationError

        if "server" in messages[-1]["content"]:
            raise GenerationError("The model server did not answer: start it, or switch RAG_BACKEND.")
        raise RuntimeError("secret internal detail")
        yield ""  # pragma: no cover


def test_errors_are_friendly_and_the_keyboard_opens_sources(make_pipeline, settings, browser, caplog):
    from playwright.sync_api import expect

    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator()
    with serve(build_app(pipe, settings)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        ask(page, "Which sectors could OpenAI work with?")
        link = page.locator('#rag-chat a[href="#src-1-1"]')
        expect(link).to_be_visible(timeout=20_000)
        link.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#src-1-1")).to_be_focused()

        pipe.generator = BrokenGenerator()
        ask(page, "Which sectors could OpenAI work with?")
        error = page.locator("#rag-chat .rag-error").last
        expect(error).to_contain_text("Something went wrong", timeout=20_000)
        expect(page.locator("#rag-chat")).not_to_contain_text("secret")
        expect(page.locator("#rag-chat")).not_to_contain_text("Traceback")
        assert "secret internal detail" in caplog.text  # logged for the maintainer

        ask(page, "Which sectors could OpenAI work with the server on?")
        expect(page.locator("#rag-chat .rag-error").last).to_contain_text(
            "The model server did not answer", timeout=20_000
        )

        # The chatbot's own bin icon clears the conversation state too, not just the display.
        pipe.generator = EchoGenerator()
        page.get_by_role("button", name="Clear", exact=True).click()
        ask(page, "Which sectors could OpenAI work with?")
        expect(page.locator('#rag-chat a[href="#src-1-1"]')).to_be_visible(timeout=20_000)
        expect(page.locator("#rag-chat .rag-error")).to_have_count(0)
        expect(page.locator("#rag-chat .rag-searched")).to_have_count(0)  # no history: nothing rewritten


@contextlib.contextmanager
def keyed_page(make_pipeline, settings, browser, **keys):
    """The whole app served with these key settings, and a page that has opened "/"."""
    pipe, _ = make_pipeline()
    pipe.generator = EchoGenerator()
    s = settings.model_copy(update=keys)
    with serve(build_app(pipe, s, DocumentLibrary(pipe.retriever, s))) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        yield url, page


def test_documents_tab_changes_need_an_admin_sign_in(make_pipeline, settings, browser, tmp_path):
    from playwright.sync_api import expect
    from pydantic import SecretStr

    with keyed_page(make_pipeline, settings, browser, admin_keys=SecretStr("sk-admin")) as (url, page):
        page.get_by_role("tab", name="Documents").click()
        table = page.locator("#rag-doc-table")
        expect(table).to_contain_text("3 documents in the index", timeout=20_000)  # reading stays open
        expect(page.locator("#rag-upload-note")).to_contain_text("needs an admin key")
        expect(page.locator("#rag-add")).to_be_disabled()

        page.get_by_role("link", name="Sign in with a key").click()
        page.get_by_label("Key").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not one of this server's keys")
        page.get_by_label("Key").fill("sk-admin")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/")
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#rag-add")).to_be_enabled(timeout=20_000)
        note = tmp_path / "zephyr-note.md"
        note.write_text(NOTE, encoding="utf-8")
        page.locator("#rag-upload input[type=file]").set_input_files(str(note))
        page.locator("#rag-add").click()
        expect(page.locator("#rag-upload-note")).to_contain_text("Added “Zephyr lighthouse note”", timeout=20_000)
        expect(table).to_contain_text("4 documents in the index")


def test_with_reader_keys_the_page_opens_after_signing_in(make_pipeline, settings, browser):
    from playwright.sync_api import expect
    from pydantic import SecretStr

    with keyed_page(make_pipeline, settings, browser, api_keys=SecretStr("sk-reader")) as (url, page):
        expect(page.get_by_role("heading", level=1)).to_contain_text("UK AI policy documents")
        assert "/login" in page.url and page.locator("#rag-chat").count() == 0  # no page before a key
        page.get_by_label("Key").fill("sk-reader")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/")
        ask(page, "Which sectors could OpenAI work with?")
        expect(page.locator("#rag-chat")).to_contain_text("[1]", timeout=30_000)
        page.get_by_role("link", name="Sign out").click()
        page.wait_for_url("**/login")
        assert page.request.get(f"{url}/config").status == 401


def test_the_key_passage_shows_with_linked_markers(make_pipeline, settings, browser):
    from playwright.sync_api import expect

    pipe, _ = make_pipeline(["OpenAI may provide technology to education [1]."], key_passage=True)
    with serve(build_app(pipe, settings, DocumentLibrary(pipe.retriever, settings))) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        ask(page, "Which sectors could OpenAI provide technology to?")
        chat = page.locator("#rag-chat")
        expect(chat).to_contain_text(
            "Key passage: “OpenAI may provide technology to education, defence, security and justice.”",
            timeout=20_000,
        )
        links = page.locator('#rag-chat a[href="#src-1-1"]')
        expect(links).to_have_count(2)  # the answer's marker and the key passage's
        links.last.click()
        expect(page.locator("#src-1-1")).to_be_focused()
