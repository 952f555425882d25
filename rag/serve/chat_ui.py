"""The browser chat (Gradio 6): streamed answers whose [n] markers link to a sources panel with the
quoted words highlighted, follow-up questions, a Documents tab to read, add and remove documents,
and helpful/not-helpful feedback.

`build_ui` lays out the two tabs and wires them to the plain handlers in `rag.serve.chat_handlers`;
it receives the built pipeline and library and never builds models. `mount_ui` puts the page on a
FastAPI app with its stylesheet and the small script that opens a cited source. HTML pieces come
from `rag.serve.render`. Nothing is fetched from the internet: Gradio serves its own assets and fonts.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr  # this module is the Gradio page; Gradio reads its handlers' `gr.Request` hints

from rag.errors import RagError
from rag.library import DocumentLibrary
from rag.loaders import SUPPORTED_SUFFIXES
from rag.pipeline import RagPipeline
from rag.serve import chat_handlers as h
from rag.serve.admission import Admission, Identity, page_user
from rag.serve.chat_handlers import TITLE, ChatView, DocumentsView, Listing
from rag.serve.error_responses import client_message
from rag.serve.feedback import FeedbackLog
from rag.serve.render import sources_html, status_html
from rag.settings import Settings
from rag.types import Answer

EXAMPLES = [
    "Which sectors could OpenAI work with under the agreement?",
    "What is an AI Growth Zone?",
    "How much time did Copilot save civil servants?",
]
CSS_PATH = Path(__file__).with_name("chat_ui.css")

# The narrow-screen page margin, and a script that opens the source card a [n] link points at: unfolds an older answer's sources, scrolls the
# card into view, moves keyboard focus to it and flashes it. Delegated, so it survives re-renders.
HEAD = """<style>
/* Gradio scopes custom CSS inside its container; the page margin sits outside it, hence here. */
@media (max-width: 640px) { .gradio-container .main.app { padding: 8px 10px !important; } }
</style>
<script>
document.addEventListener('click', function (e) {
  var a = e.target.closest ? e.target.closest('a[href^="#src-"]') : null;
  if (!a) return;
  var el = document.getElementById(a.getAttribute('href').slice(1));
  if (!el) return;
  e.preventDefault();
  for (var d = el.parentElement; d; d = d.parentElement) { if (d.tagName === 'DETAILS') d.open = true; }
  el.scrollIntoView({behavior: 'smooth', block: 'center'});
  el.focus({preventScroll: true});
  el.classList.remove('rag-flash'); void el.offsetWidth; el.classList.add('rag-flash');
}, true);
</script>"""


@dataclass
class AskTab:
    """The Ask tab's components."""

    chat: Any
    question: Any
    ask: Any
    examples: list[Any]
    comment: Any
    helpful: Any
    not_helpful: Any
    note: Any
    clear: Any
    sources: Any


@dataclass
class DocumentsTab:
    """The Documents tab's components."""

    tab: Any
    table: Any
    pick: Any
    reader: Any
    file: Any
    add: Any
    upload_note: Any
    remove_pick: Any
    remove: Any


def build_ui(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    settings: Settings,
    *,
    feedback: FeedbackLog | None = None,
    on_answer: Callable[[Answer], None] | None = None,
    admission: Admission | None = None,
) -> Any:
    """The chat page.

    Args:
        pipeline: the built pipeline; the page only calls `stream`.
        library: lists, opens, adds and removes documents.
        settings: where feedback goes (when `feedback` is not given) and the keys that changes need.
        feedback: the feedback log; defaults to `<data_dir>/feedback.jsonl`.
        on_answer: called with every finished `Answer` (the app counts them in its metrics).
        admission: the keys, rate limit and answer gate the page shares with the API (built from
            `settings` when not given; `build_app` passes the API's).

    Returns:
        A `gr.Blocks`; mount it with `mount_ui` so its stylesheet and script come along. Nothing
        about the documents is in its configuration: the listing arrives with the page's load
        event, which Gradio runs only for a signed-in page when the server has keys.
    """
    feedback = feedback or FeedbackLog.from_settings(settings)
    admission = admission or Admission.from_settings(settings)
    # Uploads older than this are deleted even if never added (every 5 minutes, those over 15).
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=False, delete_cache=(300, 900)) as ui:
        summary = gr.HTML(h.summary_html(pipeline, None), js_on_load=None)
        if admission.access.operators:
            gr.HTML(
                '<p class="rag-signin"><a href="/login">Sign in with a key</a> · <a href="/logout">Sign out</a></p>',
                js_on_load=None,
            )
        turns = gr.State([])
        with gr.Tabs():
            ask = ask_tab()
            store = library.retriever.data.vectors.describe()["store"]
            docs = documents_tab(h.Listing("", "", [], []), library.max_bytes, store)
        wire_ask(ask, turns, pipeline, library, feedback, on_answer, admission)
        wire_documents(docs, summary, ui, pipeline, library, admission)
    ui.rag_admission = admission  # for mount_ui's auth_dependency
    return ui


def identity_of(request: gr.Request | None, admission: Admission) -> Identity:
    """Who is using the page: the name Gradio's `auth_dependency` gave (`page_user`), else the address."""
    host = request.client.host if request is not None and request.client else ""
    return Identity.parse(getattr(request, "username", None), host)


def ask_tab() -> AskTab:
    """Lay out the Ask tab: the conversation, the question box, examples, feedback and sources."""

    with gr.Tab("Ask", id="ask"), gr.Row(equal_height=False, elem_classes="rag-main"):
        with gr.Column(scale=3, min_width=320):
            chat = gr.Chatbot(
                label="Conversation",
                elem_id="rag-chat",
                height=520,
                feedback_options=None,
                buttons=["copy"],
                autoscroll=True,
                placeholder="Ask a question about UK AI policy, or start from an example below.",
            )
            with gr.Row(elem_classes="rag-ask-row"):
                question = gr.Textbox(
                    label="Your question",
                    elem_id="rag-question",
                    scale=5,
                    placeholder="e.g. What is an AI Growth Zone?",
                    max_length=2000,
                    autofocus=True,
                    lines=1,
                    max_lines=4,
                )
                ask = gr.Button("Ask", variant="primary", elem_id="rag-ask", scale=1, min_width=80)
            with gr.Row(elem_classes="rag-examples"):
                examples = [gr.Button(q, size="sm", elem_classes="rag-example") for q in EXAMPLES]
            with gr.Accordion("Was the last answer helpful?", open=False, elem_id="rag-feedback"):
                comment = gr.Textbox(label="Comment (optional)", lines=2, max_length=2000, elem_id="rag-comment")
                with gr.Row():
                    helpful = gr.Button("👍 Helpful", size="sm", elem_id="rag-helpful")
                    not_helpful = gr.Button("👎 Not helpful", size="sm", elem_id="rag-not-helpful")
            note = gr.HTML("", elem_id="rag-note", js_on_load=None)
            clear = gr.Button("Clear conversation", size="sm", variant="secondary")
        with gr.Column(scale=2, min_width=300):
            sources = gr.HTML(sources_html([]), elem_id="rag-sources", js_on_load=None)
    return AskTab(chat, question, ask, examples, comment, helpful, not_helpful, note, clear, sources)


def documents_tab(first: Listing, max_bytes: int, store: str = "faiss") -> DocumentsTab:
    """Lay out the Documents tab: the table and a reader on the left, upload and removal on the right
    (enabled on load for those who may change documents)."""

    with gr.Tab("Documents", id="documents") as tab, gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            table = gr.HTML(first.table, elem_id="rag-doc-table", js_on_load=None)
            # Its choices arrive with the page's load event (per session, after the key check);
            # an id that is not a document is answered by the reader, not by a Gradio error.
            pick = gr.Dropdown(
                first.choices,
                value=None,
                label="Open a document to read it",
                elem_id="rag-doc-pick",
                allow_custom_value=True,
            )
            reader = gr.Markdown("", elem_id="rag-reader", elem_classes="rag-reader")
        with gr.Column(scale=2, min_width=300):
            gr.HTML(
                '<h2 class="rag-h2">Add a document</h2><p class="rag-muted">PDF, Word (.docx), HTML, '
                f"Markdown or text, up to {max_bytes // 1_000_000} MB. It is searchable as soon "
                f"as it is added; uploads can be removed again. Vector store: {html.escape(store)}.</p>",
                js_on_load=None,
            )
            file = gr.File(
                label="File to add", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath", elem_id="rag-upload"
            )
            add = gr.Button("Add to the index", variant="primary", elem_id="rag-add")
            upload_note = gr.HTML("", elem_id="rag-upload-note", js_on_load=None)
            remove_pick = gr.Dropdown(first.uploaded, value=None, label="Uploaded documents", elem_id="rag-remove-pick")
            remove = gr.Button("Remove this upload", variant="stop", elem_id="rag-remove")
    return DocumentsTab(tab, table, pick, reader, file, add, upload_note, remove_pick, remove)


def _keep_none(*values: Any) -> tuple[Any, ...]:
    """Gradio outputs, with `None` ("leave it as it is") as Gradio's skip."""

    return tuple(gr.skip() if v is None else v for v in values)


def _chat_outputs(view: ChatView) -> tuple[Any, ...]:
    return _keep_none(view.question, view.messages, view.turns, view.sources, view.note)


def _listing_outputs(listing: Listing | None) -> tuple[Any, ...]:

    if listing is None:
        return (gr.skip(),) * 4
    return (
        listing.summary,
        listing.table,
        gr.update(choices=listing.choices),
        gr.update(choices=listing.uploaded, value=None),
    )


def wire_ask(
    tab: AskTab,
    turns: Any,
    pipeline: RagPipeline,
    library: DocumentLibrary,
    feedback: FeedbackLog,
    on_answer: Callable[[Answer], None] | None,
    admission: Admission,
) -> None:
    """Connect the Ask tab to `respond`, `clear_chat` and `vote`. A question from the page is
    counted by the same rate limit and waits in the same answer gate as one from the API."""

    async def on_ask(question: str, kept: h.Turns, request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        identity = identity_of(request, admission)
        try:
            admission.require_reader(identity)
            if (question or "").strip():
                admission.count(identity)
        except RagError as e:
            yield _chat_outputs(h.ChatView(note=status_html("error", client_message(e))))
            return
        # Closed with this handler when Gradio drops it (the page went away): the answer stops.
        async with contextlib.aclosing(
            h.respond(pipeline, library, question, kept, on_answer, admission.gate)
        ) as views:
            async for view in views:
                yield _chat_outputs(view)

    def on_clear() -> tuple[Any, ...]:
        view = h.clear_chat()
        return view.messages, view.turns, view.sources, view.note

    # No Gradio concurrency limit: the shared answer gate decides, so the page and the API queue
    # together. "ask" is what Gradio's Python client calls (bench/load.py).
    chat_io: dict[str, Any] = dict(
        inputs=[tab.question, turns],
        outputs=[tab.question, tab.chat, turns, tab.sources, tab.note],
        show_progress="hidden",
        concurrency_limit=None,
    )
    tab.question.submit(on_ask, api_name="ask", api_visibility="undocumented", **chat_io)
    tab.ask.click(on_ask, api_visibility="private", **chat_io)
    for b, q in zip(tab.examples, EXAMPLES, strict=True):
        b.click(lambda q=q: q, None, tab.question, api_visibility="private", queue=False).then(
            on_ask, api_visibility="private", **chat_io
        )
    cleared = [tab.chat, turns, tab.sources, tab.note]
    tab.clear.click(on_clear, None, cleared, api_visibility="private")
    # The chatbot's own bin icon empties the display; the conversation state must follow it.
    tab.chat.clear(on_clear, None, cleared, api_visibility="private")
    voted = dict(inputs=[tab.comment, turns], outputs=[tab.comment, tab.note], api_visibility="private")
    tab.helpful.click(lambda c, t: h.vote(feedback, True, c, t), **voted)
    tab.not_helpful.click(lambda c, t: h.vote(feedback, False, c, t), **voted)


def wire_documents(
    tab: DocumentsTab, summary: Any, ui: Any, pipeline: RagPipeline, library: DocumentLibrary, admission: Admission
) -> None:
    """Connect the Documents tab to `open_document`, `add_document` and `remove_document`; the
    listing is refreshed whenever the tab or the page is opened (another visitor may have uploaded),
    and the upload controls are enabled for those who may change documents."""

    def may_write(request: gr.Request | None) -> bool:
        return admission.may_write(identity_of(request, admission))

    def on_refresh(request: gr.Request) -> tuple[Any, ...]:
        allowed = may_write(request)
        note = "" if allowed else status_html("info", h.NEEDS_KEY_NOTE)
        controls = (gr.update(interactive=allowed),) * 3
        return (*_listing_outputs(h.listing(pipeline, library)), *controls, note)

    def on_open(doc_id: str | None) -> str:
        return h.open_document(library, doc_id)

    def on_add(path: str | None, request: gr.Request) -> tuple[Any, ...]:
        view: DocumentsView = h.add_document(pipeline, library, path, ui.upload_file_set, may_write(request))
        return (view.note, None if view.clear_file else gr.skip(), *_listing_outputs(view.listing))

    def on_remove(doc_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        view = h.remove_document(pipeline, library, doc_id, may_write(request))
        return (view.note, *_listing_outputs(view.listing))

    listed = [summary, tab.table, tab.pick, tab.remove_pick]
    refreshed = [*listed, tab.file, tab.add, tab.remove, tab.upload_note]
    tab.pick.change(on_open, tab.pick, tab.reader, api_visibility="private")
    tab.add.click(on_add, [tab.file], [tab.upload_note, tab.file, *listed], api_visibility="private")
    tab.remove.click(on_remove, [tab.remove_pick], [tab.upload_note, *listed], api_visibility="private")
    tab.tab.select(on_refresh, None, refreshed, api_visibility="private")
    ui.load(on_refresh, None, refreshed, api_visibility="private")


def mount_ui(app: Any, ui: Any, path: str = "/", max_file_bytes: int | None = None) -> Any:
    """Mount the page on a FastAPI app with its stylesheet, script and an upload size limit, behind
    the page's `Admission` (Gradio's routes answer 401 to a page without the key it needs).

    Returns:
        The same FastAPI app.
    """
    admission: Admission = ui.rag_admission
    # Gradio checks that a file an event receives was uploaded (not any path the client names) only
    # once its app "has launched", which a mounted app never does; it is serving from here on.
    ui.has_launched = True

    # The reader's own system fonts: nothing to download, and the web fonts bundled with Gradio
    # render some bold glyphs inconsistently.
    theme = gr.themes.Default(
        primary_hue="blue",
        font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Arial", "sans-serif"),
        font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
    )
    return gr.mount_gradio_app(
        app,
        ui,
        path=path,
        theme=theme,
        css=CSS_PATH.read_text(encoding="utf-8"),
        head=HEAD,
        footer_links=[],
        max_file_size=max_file_bytes,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        run_history=False,
        auth_dependency=lambda request: page_user(admission, request),
    )
