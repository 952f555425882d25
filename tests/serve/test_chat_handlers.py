"""The browser chat's handlers, called directly (no Gradio, no HTTP): asking streams checked
sentences (never the draft) then a cited answer, errors become turns, votes are saved, documents are opened, added and removed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from rag.library import DocumentLibrary
from rag.serve import chat_handlers as h
from rag.serve.feedback import FeedbackLog

SECTORS = "OpenAI may provide technology to education and defence [1]."
QUESTION = "Which sectors could OpenAI work with?"
NOTE = "# Zephyr lighthouse\n\nThe zephyr lighthouse programme funds coastal AI labs in Cornwall.\n"


def collect(views: AsyncIterator[h.ChatView]) -> list[h.ChatView]:
    """Every view an answer yields, ticks (empty views) left out."""

    async def run() -> list[h.ChatView]:
        return [v async for v in views if v != h.ChatView()]

    return asyncio.run(run())


@pytest.fixture
def make_chat(make_pipeline, settings):
    """`make_chat(replies)` -> (pipeline, library, generator)."""

    def make(replies: list[str] | None = None):
        pipe, gen = make_pipeline(replies)
        return pipe, DocumentLibrary(pipe.retriever, settings), gen

    return make


def test_respond_streams_checked_sentences_never_the_draft_then_the_cited_answer(make_chat):
    unsupported = "OpenAI will pay nine billion pounds for bananas [1]."
    pipe, library, _ = make_chat([f"{SECTORS} {unsupported} It will expand its London office [1]."])
    answers = []
    views = collect(h.respond(pipe, library, f"  {QUESTION} ", [], answers.append))
    first, last = views[0], views[-1]
    assert first.question == "" and "Searching the documents" in first.messages[-1]["content"]
    streaming = [v.messages[-1]["content"] for v in views[1:-1]]
    assert any("Writing and checking" in m for m in streaming)
    assert any(SECTORS in m and "London" not in m for m in streaming)  # the first sentence, before the rest
    assert not any("bananas" in m for m in streaming + [last.messages[-1]["content"]])
    assert all(v.turns is None for v in views[1:-1])  # drafts leave the kept conversation alone
    assert len(last.turns) == 1 and last.turns[0]["kind"] == "answer" and last.turns[0]["n"] == 1
    assert last.turns[0]["citations"][0]["doc_id"] == "openai-deal"
    assert 'id="src-1-1"' in last.sources and "[[1]](#src-1-1" in last.messages[-1]["content"]
    assert len(answers) == 1 and answers[0].answer.startswith(f"{SECTORS} It will expand its London office [")


def test_respond_sends_history_and_numbers_the_next_turn(make_chat):
    pipe, library, gen = make_chat([SECTORS, "How many staff?", "It employs over 100 staff [1]."])
    turns = collect(h.respond(pipe, library, QUESTION, []))[-1].turns
    last = collect(h.respond(pipe, library, "How many staff?", turns))[-1]
    assert [t["n"] for t in last.turns] == [1, 2] and len(turns) == 1  # the input list is not changed
    assert QUESTION in gen.prompts[1][-1]["content"]  # the rewrite saw the first question


def test_an_empty_question_only_sets_the_note(make_chat):
    pipe, library, gen = make_chat()
    (view,) = collect(h.respond(pipe, library, "   ", []))
    assert view.messages is None and view.turns is None and "Type a question first" in view.note
    assert gen.prompts == []


def test_errors_become_turns_and_bugs_are_not_shown(make_chat, caplog):
    pipe, library, gen = make_chat()

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    gen.stream = explode
    last = collect(h.respond(pipe, library, QUESTION, []))[-1]
    assert last.turns[-1]["kind"] == "error" and last.turns[-1]["text"] == h.GENERIC_ERROR
    assert "secret" not in json.dumps(last.messages) and "secret internal detail" in caplog.text
    assert h.history_of(last.turns) == []  # a failed turn is not history for the next question


def test_vote_saves_the_last_answer(make_chat, settings):
    pipe, library, _ = make_chat([SECTORS])
    log = FeedbackLog(settings.data_dir / "feedback.jsonl")
    comment, note = h.vote(log, True, "nice", [])
    assert comment == "nice" and "Ask a question first" in note
    turns = collect(h.respond(pipe, library, QUESTION, []))[-1].turns
    comment, note = h.vote(log, False, "wrong", turns)
    assert comment == "" and "saved" in note
    saved = json.loads(log.path.read_text().splitlines()[-1])
    assert saved["helpful"] is False and saved["comment"] == "wrong" and saved["citations"][0]["n"] == 1


def test_documents_listing_open_add_and_remove(make_chat, tmp_path):
    pipe, library, _ = make_chat()
    before = h.listing(pipe, library)
    assert len(before.choices) == 3 and before.uploaded == [] and "3 indexed documents" in before.summary
    assert "not legally binding" in h.open_document(library, "cohere-mou")
    assert h.open_document(library, None) == "" and "nope" in h.open_document(library, "nope")

    assert "Choose a file first" in h.add_document(pipe, library, None, set()).note
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"not a zip")
    failed = h.add_document(pipe, library, str(broken), {str(broken)})
    assert "is not a Word .docx file" in failed.note and failed.clear_file and failed.listing is None

    note = tmp_path / "zephyr-note.md"
    note.write_text(NOTE, encoding="utf-8")
    added = h.add_document(pipe, library, str(note), {str(note)})
    assert "Added “Zephyr lighthouse”" in added.note and added.clear_file
    assert added.listing.uploaded == [("Zephyr lighthouse", "zephyr-note")] and "4 documents" in added.listing.table

    assert "Choose an uploaded document" in h.remove_document(pipe, library, None).note
    assert h.remove_document(pipe, library, "openai-deal").listing is None  # corpus documents stay
    removed = h.remove_document(pipe, library, "zephyr-note")
    assert "Removed “Zephyr lighthouse”" in removed.note and removed.listing.uploaded == []


def test_clear_chat_empties_everything():
    view = h.clear_chat()
    assert view.messages == [] and view.turns == [] and view.note == "" and "Sources" in view.sources


def test_server_faults_are_shown_without_server_paths(make_chat):
    from rag.errors import GenerationError

    pipe, library, gen = make_chat()

    def fail(*args, **kwargs):
        raise GenerationError("the model could not load /srv/secret/models/q.gguf")

    gen.stream = fail
    last = collect(h.respond(pipe, library, QUESTION, []))[-1]
    assert last.turns[-1]["text"] == "the model could not load q.gguf"


def test_documents_tab_changes_need_a_writer(make_chat, tmp_path):
    pipe, library, _ = make_chat()
    note = tmp_path / "zephyr-note.md"
    note.write_text(NOTE, encoding="utf-8")
    refused = h.add_document(pipe, library, str(note), {str(note)}, allowed=False)
    assert "needs an admin key" in refused.note and not refused.clear_file and refused.listing is None
    assert "zephyr-note" not in library.retriever.documents and note.exists()
    assert h.add_document(pipe, library, str(note), {str(note)}, allowed=True).listing.uploaded
    assert not note.exists()  # the upload is deleted once indexed
    assert "needs an admin key" in h.remove_document(pipe, library, "zephyr-note", allowed=False).note
    assert h.remove_document(pipe, library, "zephyr-note", allowed=True).listing.uploaded == []


def test_only_files_the_upload_route_stored_are_indexed(make_chat, tmp_path):
    pipe, library, _ = make_chat()
    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    stored = uploads / "abc" / "note.md"
    stored.write_text(NOTE, encoding="utf-8")
    outside = tmp_path / "secret.md"
    outside.write_text("# Server secret\n\nThe database password is hunter2.\n", encoding="utf-8")
    copied = uploads / "def" / "secret.md"  # what Gradio makes of a server path named in an event
    copied.parent.mkdir()
    copied.write_bytes(outside.read_bytes())
    (uploads / "abc" / "link.md").symlink_to(outside)
    named = [outside, uploads / "abc" / ".." / ".." / "secret.md", uploads / "abc" / "link.md", copied, uploads]
    for path in [*map(str, named), "/etc/passwd"]:
        view = h.add_document(pipe, library, path, {str(stored)})
        assert "not uploaded through this page" in view.note and view.listing is None, path
    assert outside.exists() and "secret" not in library.retriever.documents
    assert all("hunter2" not in c.text for c in library.retriever.chunks)
    assert h.add_document(pipe, library, str(uploads / "abc" / ".." / "abc" / "note.md"), {str(stored)}).listing
