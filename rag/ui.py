"""The browser chat (Gradio 6): streamed answers whose [n] markers link to a sources panel with the
quoted words highlighted, follow-up questions, a Documents tab to read, add and remove documents,
and helpful/not-helpful feedback.

`build_ui` receives the built pipeline and library and never builds models; `mount_ui` puts the
page on a FastAPI app with its stylesheet and the small script that opens a cited source.
HTML pieces come from `rag.ui_render`. Nothing is fetched from the internet: Gradio serves its
own assets and fonts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag.errors import NotFoundError, RagError
from rag.feedback import FeedbackLog
from rag.library import DocumentLibrary
from rag.loaders import SUPPORTED_SUFFIXES
from rag.pipeline import RagPipeline
from rag.settings import Settings
from rag.types import Answer
from rag.ui_render import (
    answer_markdown,
    chat_messages,
    document_markdown,
    documents_table_html,
    drafting_markdown,
    esc,
    sources_html,
    turn_record,
)

log = logging.getLogger(__name__)

TITLE = "UK AI policy documents — cited answers"
GENERIC_ERROR = "Something went wrong while answering. It has been logged; please try again."
EXAMPLES = [
    "Which sectors could OpenAI work with under the agreement?",
    "What is an AI Growth Zone?",
    "How much time did Copilot save civil servants?",
]
CSS_PATH = Path(__file__).with_name("ui.css")

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


def _status(kind: str, text: str) -> str:
    role = "alert" if kind == "error" else "status"
    return f'<p class="rag-{kind}-note" role="{role}">{esc(text)}</p>'


def build_ui(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    settings: Settings,
    *,
    feedback: FeedbackLog | None = None,
    on_answer: Callable[[Answer], None] | None = None,
) -> Any:
    """The chat page.

    Args:
        pipeline: the built pipeline; the page only calls `stream`.
        library: lists, opens, adds and removes documents.
        settings: where feedback goes (when `feedback` is not given).
        feedback: the feedback log; defaults to `<data_dir>/feedback.jsonl`.
        on_answer: called with every finished `Answer` (the app counts them in its metrics).

    Returns:
        A `gr.Blocks`; mount it with `mount_ui` so its stylesheet and script come along.
    """
    import gradio as gr

    feedback = feedback or FeedbackLog.from_settings(settings)

    def history_of(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
        out = []
        for t in turns:
            if t["kind"] in ("answer", "refused"):
                out += [{"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["text"]}]
        return out

    def respond(question: str, turns: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        question = (question or "").strip()
        turns = list(turns or [])
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), _status("info", "Type a question first.")
            return
        n = len(turns) + 1
        done = chat_messages(turns)
        pending = [{"role": "user", "content": esc(question)}]
        standalone, raw = question, ""
        yield (
            "",
            done + pending + [{"role": "assistant", "content": drafting_markdown(question, "", "")}],
            turns,
            gr.skip(),
            "",
        )
        try:
            for ev in pipeline.stream(question, history_of(turns)):
                if ev.kind == "rewritten":
                    standalone = ev.data
                elif ev.kind == "token":
                    raw += ev.data
                else:
                    answer: Answer = ev.data
                    if on_answer is not None:
                        on_answer(answer)
                    turns.append(turn_record(n, question, answer, library.retriever.documents))
                    yield "", chat_messages(turns), turns, sources_html(turns), ""
                    return
                draft = {"role": "assistant", "content": drafting_markdown(question, standalone, raw)}
                yield gr.skip(), done + pending + [draft], gr.skip(), gr.skip(), gr.skip()
        except RagError as e:
            message = str(e)
        except Exception:
            log.exception("answering %r failed", question)
            message = GENERIC_ERROR
        turns.append(
            {"n": n, "question": question, "standalone": standalone, "kind": "error", "text": message, "citations": []}
        )
        yield "", chat_messages(turns), turns, gr.skip(), ""

    def clear() -> tuple[Any, ...]:
        return [], [], sources_html([]), ""

    def vote(helpful: bool, comment: str, turns: list[dict[str, Any]]) -> tuple[str, str]:
        answered = [t for t in turns or [] if t["kind"] in ("answer", "refused")]
        if not answered:
            return comment, _status("info", "Ask a question first, then say whether the answer helped.")
        t = answered[-1]
        citations = [{k: c[k] for k in ("n", "doc_id", "title", "url", "quote")} for c in t["citations"]]
        try:
            feedback.record(
                helpful=helpful, question=t["question"], answer=t["text"], citations=citations, comment=comment or ""
            )
        except OSError:
            log.exception("saving feedback failed")
            return comment, _status("error", "Sorry, your feedback could not be saved.")
        return "", _status("ok", "Thank you: your feedback on the last answer was saved.")

    def doc_choices() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        infos = library.list()
        return [(i.title, i.doc_id) for i in infos], [(i.title, i.doc_id) for i in infos if i.uploaded]

    def summary() -> str:
        n_docs, n_chunks = len(library.retriever.documents), len(library.retriever.chunks)
        return (
            f'<header class="rag-header"><h1>{esc(TITLE)}</h1></header>'
            f'<p class="rag-sub">Answers come only from the {n_docs} indexed documents ({n_chunks} passages); '
            f"every sentence links to the passage it rests on. Model: {esc(pipeline.model_name)}.</p>"
        )

    def refresh() -> tuple[Any, ...]:
        every, uploaded = doc_choices()
        return (
            summary(),
            documents_table_html(library.list()),
            gr.update(choices=every),
            gr.update(choices=uploaded, value=None),
        )

    def open_doc(doc_id: str | None) -> str:
        if not doc_id:
            return ""
        try:
            return document_markdown(library.get(doc_id), library.info(doc_id))
        except NotFoundError as e:
            return str(e)

    def upload(path: str | None) -> tuple[Any, ...]:
        if not path:
            return (_status("error", "Choose a file first."), gr.skip(), *([gr.skip()] * 4))
        p = Path(path)
        try:
            info = library.add(p.name, p.read_bytes())
        except RagError as e:  # the file is cleared either way, so the next one can be chosen
            return (_status("error", str(e)), None, *([gr.skip()] * 4))
        except Exception:
            log.exception("upload of %s failed", p.name)
            return (
                _status("error", "Sorry, that file could not be added. It has been logged."),
                None,
                *([gr.skip()] * 4),
            )
        note = _status("ok", f"Added “{info.title}” ({info.chunks} passages). You can ask about it now.")
        return (note, None, *refresh())

    def remove(doc_id: str | None) -> tuple[Any, ...]:
        if not doc_id:
            return (_status("error", "Choose an uploaded document to remove."), *([gr.skip()] * 4))
        try:
            title = library.get(doc_id).title
            library.remove(doc_id)
        except RagError as e:
            return (_status("error", str(e)), *([gr.skip()] * 4))
        except Exception:
            log.exception("removing %s failed", doc_id)
            return (
                _status("error", "Sorry, that document could not be removed. It has been logged."),
                *([gr.skip()] * 4),
            )
        return (_status("ok", f"Removed “{title}”."), *refresh())

    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=False) as ui:
        sub = gr.HTML(summary(), js_on_load=None)
        turns = gr.State([])
        with gr.Tabs():
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
                        example_buttons = [gr.Button(q, size="sm", elem_classes="rag-example") for q in EXAMPLES]
                    with gr.Accordion("Was the last answer helpful?", open=False, elem_id="rag-feedback"):
                        comment = gr.Textbox(
                            label="Comment (optional)", lines=2, max_length=2000, elem_id="rag-comment"
                        )
                        with gr.Row():
                            up = gr.Button("👍 Helpful", size="sm", elem_id="rag-helpful")
                            down = gr.Button("👎 Not helpful", size="sm", elem_id="rag-not-helpful")
                    note = gr.HTML("", elem_id="rag-note", js_on_load=None)
                    clear_btn = gr.Button("Clear conversation", size="sm", variant="secondary")
                with gr.Column(scale=2, min_width=300):
                    sources = gr.HTML(sources_html([]), elem_id="rag-sources", js_on_load=None)
            with gr.Tab("Documents", id="documents") as docs_tab:
                every, uploaded = doc_choices()
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=320):
                        table = gr.HTML(documents_table_html(library.list()), elem_id="rag-doc-table", js_on_load=None)
                        pick = gr.Dropdown(
                            every, value=None, label="Open a document to read it", elem_id="rag-doc-pick"
                        )
                        reader = gr.Markdown("", elem_id="rag-reader", elem_classes="rag-reader")
                    with gr.Column(scale=2, min_width=300):
                        gr.HTML(
                            '<h2 class="rag-h2">Add a document</h2><p class="rag-muted">PDF, Word (.docx), HTML, '
                            f"Markdown or text, up to {library.max_bytes // 1_000_000} MB. It is searchable as soon "
                            "as it is added; uploads can be removed again. "
                            f"Vector store: {esc(library.retriever.data.vectors.describe()['store'])}.</p>",
                            js_on_load=None,
                        )
                        file = gr.File(
                            label="File to add",
                            file_types=sorted(SUPPORTED_SUFFIXES),
                            type="filepath",
                            elem_id="rag-upload",
                        )
                        add_btn = gr.Button("Add to the index", variant="primary", elem_id="rag-add")
                        upload_note = gr.HTML("", elem_id="rag-upload-note", js_on_load=None)
                        remove_pick = gr.Dropdown(
                            uploaded, value=None, label="Uploaded documents", elem_id="rag-remove-pick"
                        )
                        remove_btn = gr.Button("Remove this upload", variant="stop", elem_id="rag-remove")

        chat_io = dict(
            inputs=[question, turns],
            outputs=[question, chat, turns, sources, note],
            show_progress="hidden",
            api_visibility="private",
        )
        question.submit(respond, **chat_io)
        ask.click(respond, **chat_io)
        for b, q in zip(example_buttons, EXAMPLES, strict=True):
            b.click(lambda q=q: q, None, question, api_visibility="private", queue=False).then(respond, **chat_io)
        clear_btn.click(clear, None, [chat, turns, sources, note], api_visibility="private")
        # The chatbot's own bin icon empties the display; the conversation state must follow it.
        chat.clear(clear, None, [chat, turns, sources, note], api_visibility="private")
        up.click(lambda c, t: vote(True, c, t), [comment, turns], [comment, note], api_visibility="private")
        down.click(lambda c, t: vote(False, c, t), [comment, turns], [comment, note], api_visibility="private")

        listing = [sub, table, pick, remove_pick]
        pick.change(open_doc, pick, reader, api_visibility="private")
        add_btn.click(upload, file, [upload_note, file, *listing], api_visibility="private")
        remove_btn.click(remove, remove_pick, [upload_note, *listing], api_visibility="private")
        docs_tab.select(refresh, None, listing, api_visibility="private")
        ui.load(refresh, None, listing, api_visibility="private")
    return ui


def mount_ui(app: Any, ui: Any, path: str = "/", max_file_bytes: int | None = None) -> Any:
    """Mount the page on a FastAPI app with its stylesheet, script and an upload size limit.

    Returns:
        The same FastAPI app.
    """
    import gradio as gr

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
    )


__all__ = ["EXAMPLES", "TITLE", "answer_markdown", "build_ui", "mount_ui"]
