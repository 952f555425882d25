"""What the browser chat does when someone asks, votes, opens, adds or removes a document: plain
functions over the pipeline and the library that return what the page should show.

They never import Gradio, so tests call them directly; `rag.serve.chat_ui` lays out the page and
wires these in, turning `None` ("leave that part as it is") into Gradio's skip. A `RagError` is
shown with its own message; anything else is a bug: logged, and shown as a generic apology.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rag.errors import NotFoundError, RagError
from rag.library import DocumentLibrary
from rag.pipeline import RagPipeline, StreamEvent
from rag.serve.error_responses import client_message
from rag.serve.feedback import FeedbackLog
from rag.serve.provenance import uploaded_ids
from rag.serve.render import (
    chat_messages,
    document_markdown,
    documents_table_html,
    drafting_markdown,
    esc,
    sources_html,
    status_html,
    turn_record,
)
from rag.serve.streaming import AnswerGate, AnswerStream
from rag.types import Answer

log = logging.getLogger(__name__)

TITLE = "UK AI policy documents — cited answers"
T = TypeVar("T")
TICK_S = 1.0  # how often a waiting answer lets Gradio check that its page is still open
GENERIC_ERROR = "Something went wrong while answering. It has been logged; please try again."

Turns = list[dict[str, Any]]  # the conversation as the page keeps it (see `render.turn_record`)


@dataclass
class ChatView:
    """What one step of the chat changes on the page; `None` leaves that part as it is."""

    question: str | None = None  # the question box
    messages: list[dict[str, str]] | None = None  # the conversation shown
    turns: Turns | None = None  # the conversation kept
    sources: str | None = None  # the sources panel
    note: str | None = None  # the status line under the chat


@dataclass
class Listing:
    """The page parts that show which documents are indexed."""

    summary: str  # the header line with the counts
    table: str  # the Documents tab's table
    choices: list[tuple[str, str]]  # (title, doc_id) of every document, to read
    uploaded: list[tuple[str, str]]  # (title, doc_id) of the uploads, to remove


@dataclass
class DocumentsView:
    """The result of adding or removing a document."""

    note: str  # the status line on the Documents tab
    clear_file: bool = False  # empty the file picker, so the next file can be chosen
    listing: Listing | None = None  # the new listing, when the index changed


# --- asking -------------------------------------------------------------------------------


def history_of(turns: Turns) -> list[dict[str, str]]:
    """The answered turns as chat history for the pipeline (errors are left out)."""
    out = []
    for t in turns:
        if t["kind"] in ("answer", "refused"):
            out += [{"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["text"]}]
    return out


async def respond(
    pipeline: RagPipeline,
    library: DocumentLibrary,
    question: str,
    turns: Turns | None,
    on_answer: Callable[[Answer], None] | None = None,
    gate: AnswerGate | None = None,
    tick_s: float = TICK_S,
) -> AsyncIterator[ChatView]:
    """Answer `question` after `turns`: the pending question, each checked sentence as it comes (never
    the model's unchecked draft), then the answer with its sources (or the error, as a turn of its own).

    The answer runs like an API answer (`AnswerStream`): through `gate` (its queue and time
    limit), in a worker thread that stops when this iterator is closed (Gradio closes it when the
    page goes away). While nothing new arrives it yields an empty view every `tick_s`, so a page
    that has gone is noticed even while the answer waits for the model.

    Args:
        pipeline: answers the question.
        library: the documents the source cards quote from.
        question: as typed.
        turns: the conversation so far (not changed; the views carry the new list).
        on_answer: called with the finished `Answer` (the app counts it in its metrics).
        gate: the app's answer gate, shared with the API (None: no queue or time limit).
    """
    question = (question or "").strip()
    turns = list(turns or [])
    if not question:
        yield ChatView(note=status_html("info", "Type a question first."))
        return
    n = len(turns) + 1
    done = chat_messages(turns)
    pending = [{"role": "user", "content": esc(question)}]
    standalone, sent, writing = question, "", False
    yield ChatView(
        "", done + pending + [{"role": "assistant", "content": drafting_markdown(question, "", "")}], turns, None, ""
    )
    events = ticking(answer_events(pipeline, question, history_of(turns), gate), tick_s)
    try:
        async for ev in events:
            if ev is None:
                yield ChatView()  # nothing new: lets Gradio see whether the page is still there
                continue
            if ev.kind == "rewritten":
                standalone = ev.data
            elif ev.kind == "token":
                if writing:
                    continue  # the unchecked draft is not shown: nothing changed on the page
                writing = True
            elif ev.kind == "sentence":
                sent = f"{sent} {ev.data}" if sent else ev.data
            else:
                if on_answer is not None:
                    on_answer(ev.data)
                docs = library.retriever.documents
                turns.append(turn_record(n, question, ev.data, docs, uploaded_ids(library)))
                yield ChatView("", chat_messages(turns), turns, sources_html(turns), "")
                return
            draft = {"role": "assistant", "content": drafting_markdown(question, standalone, sent, writing)}
            yield ChatView(messages=done + pending + [draft])
    except RagError as e:
        message = client_message(e)
    except Exception:
        log.exception("answering %r failed", question)
        message = GENERIC_ERROR
    finally:
        await events.aclose()  # stops the answer when the page has gone (this iterator was closed)
    turns.append(
        {"n": n, "question": question, "standalone": standalone, "kind": "error", "text": message, "citations": []}
    )
    yield ChatView("", chat_messages(turns), turns, None, "")


async def answer_events(
    pipeline: RagPipeline, question: str, history: list[dict[str, str]], gate: AnswerGate | None
) -> AsyncIterator[StreamEvent]:
    """The events of one answer started through `gate`; closing this iterator stops the answer."""
    stream = await AnswerStream.start(pipeline, question, history, None, gate)
    try:
        async for ev in stream.events():
            yield ev
    finally:
        await stream.close()


async def ticking(items: AsyncIterator[T], tick_s: float) -> AsyncIterator[T | None]:
    """`items`, with a None whenever `tick_s` pass without one; closes `items` when closed itself.

    `[x async for x in ticking(slow_pair(), 1.0)]` -> `[1, None, None, 2]` when 2 comes 2.5 s after 1.
    """
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=tick_s)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                item = task.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # it is being abandoned
                await pending
        await items.aclose()  # type: ignore[attr-defined]


def clear_chat() -> ChatView:
    """An empty conversation and sources panel."""
    return ChatView(messages=[], turns=[], sources=sources_html([]), note="")


def vote(feedback: FeedbackLog, helpful: bool, comment: str, turns: Turns | None) -> tuple[str, str]:
    """Record whether the last answer helped.

    Returns:
        The comment box's new text (emptied once saved) and the status line.
    """
    answered = [t for t in turns or [] if t["kind"] in ("answer", "refused")]
    if not answered:
        return comment, status_html("info", "Ask a question first, then say whether the answer helped.")
    t = answered[-1]
    citations = [{k: c[k] for k in ("n", "doc_id", "title", "url", "quote")} for c in t["citations"]]
    try:
        feedback.record(
            helpful=helpful, question=t["question"], answer=t["text"], citations=citations, comment=comment or ""
        )
    except OSError:
        log.exception("saving feedback failed")
        return comment, status_html("error", "Sorry, your feedback could not be saved.")
    return "", status_html("ok", "Thank you: your feedback on the last answer was saved.")


# --- documents ----------------------------------------------------------------------------


def summary_html(pipeline: RagPipeline, library: DocumentLibrary | None) -> str:
    """The page header: the title, what answers rest on (counted when `library` is given), and the model."""
    held = "the indexed documents"
    if library is not None:
        n_docs, n_chunks = len(library.retriever.documents), len(library.retriever.chunks)
        held = f"the {n_docs} indexed documents ({n_chunks} passages)"
    return (
        f'<header class="rag-header"><h1>{esc(TITLE)}</h1></header>'
        f'<p class="rag-sub">Answers come only from {held}; '
        f"every sentence links to the passage it rests on. Model: {esc(pipeline.model_name)}.</p>"
    )


def listing(pipeline: RagPipeline, library: DocumentLibrary) -> Listing:
    """The header, the table and the two document pickers, as the index is now."""
    infos = library.list()
    return Listing(
        summary=summary_html(pipeline, library),
        table=documents_table_html(infos),
        choices=[(i.title, i.doc_id) for i in infos],
        uploaded=[(i.title, i.doc_id) for i in infos if i.uploaded],
    )


def open_document(library: DocumentLibrary, doc_id: str | None) -> str:
    """A document to read, as Markdown (empty when none is chosen)."""
    if not doc_id:
        return ""
    try:
        return document_markdown(library.get(doc_id), library.info(doc_id))
    except NotFoundError as e:
        return str(e)


NEEDS_KEY_NOTE = "Adding and removing documents needs an admin key: sign in with it (the “Sign in” link above)."
NOT_AN_UPLOAD = "That file was not uploaded through this page; choose the file again."


def uploaded_file(path: str, uploads: Collection[str]) -> Path | None:
    """`path` when it is one of the files Gradio's upload route stored (`uploads`), compared after
    resolving links and "..", else None: the client chooses the path it sends, and Gradio copies
    a server file or a URL named there into its cache before any handler runs.

    `uploaded_file("/tmp/gradio/ab/x.md", {"/tmp/gradio/ab/x.md"})` -> that path;
    `uploaded_file("/etc/passwd", {"/tmp/gradio/ab/x.md"})` -> None.
    """
    try:
        p = Path(path).resolve(strict=True)
        stored = {Path(u).resolve() for u in list(uploads)}
    except (OSError, RuntimeError, ValueError):
        return None
    return p if p.is_file() and p in stored else None


def add_document(
    pipeline: RagPipeline, library: DocumentLibrary, path: str | None, uploads: Collection[str], allowed: bool = True
) -> DocumentsView:
    """Index the file the browser uploaded to `path`, then delete the upload (the picker is
    emptied once it was tried).

    Args:
        uploads: the paths Gradio's upload route stored; any other path is refused and left alone.
        allowed: whether the person may change documents (`Admission.may_write`).
    """
    if not path:
        return DocumentsView(status_html("error", "Choose a file first."))
    if not allowed:
        return DocumentsView(status_html("error", NEEDS_KEY_NOTE))
    p = uploaded_file(path, uploads)
    if p is None:
        log.warning("refused to index a file that was not uploaded: %r", path)
        return DocumentsView(status_html("error", NOT_AN_UPLOAD), clear_file=True)
    try:
        info = library.add(Path(path).name, p.read_bytes())
    except RagError as e:
        return DocumentsView(status_html("error", client_message(e)), clear_file=True)
    except Exception:
        log.exception("upload of %s failed", p.name)
        return DocumentsView(status_html("error", "Sorry, that file could not be added. It has been logged."), True)
    finally:
        p.unlink(missing_ok=True)  # the library keeps its own copy; Gradio's is not needed again
    note = status_html("ok", f"Added “{info.title}” ({info.chunks} passages). You can ask about it now.")
    return DocumentsView(note, clear_file=True, listing=listing(pipeline, library))


def remove_document(
    pipeline: RagPipeline, library: DocumentLibrary, doc_id: str | None, allowed: bool = True
) -> DocumentsView:
    """Remove an uploaded document from the index (see `add_document` for `allowed`)."""
    if not doc_id:
        return DocumentsView(status_html("error", "Choose an uploaded document to remove."))
    if not allowed:
        return DocumentsView(status_html("error", NEEDS_KEY_NOTE))
    try:
        title = library.get(doc_id).title
        library.remove(doc_id)
    except RagError as e:
        return DocumentsView(status_html("error", client_message(e)))
    except Exception:
        log.exception("removing %s failed", doc_id)
        return DocumentsView(status_html("error", "Sorry, that document could not be removed. It has been logged."))
    return DocumentsView(status_html("ok", f"Removed “{title}”."), listing=listing(pipeline, library))
