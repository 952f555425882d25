"""DocumentLibrary: listing, reading, uploading (live and persisted) and removing documents;
every rejected or failed upload must leave no file and no index change behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rag.errors import DocumentError, NotFoundError
from rag.index import load_index
from rag.indexing import build_index, expected_manifest, open_index, uploads_dir
from rag.library import DocumentLibrary, slugify
from rag.retrieval import HybridRetriever

NOTE = b"""---
title: "Zephyr lighthouse note"
publisher: "Coastal Office"
date: 2025-09-01
---

# Zephyr lighthouse

The zephyr lighthouse programme funds coastal AI labs in Cornwall.
"""


@pytest.fixture
def library(settings, embedder, index_data) -> DocumentLibrary:
    return DocumentLibrary(HybridRetriever(index_data, embedder, candidates=10), settings)


def snapshot(library: DocumentLibrary) -> tuple:
    """Everything an upload may change: files under uploads, the live index, the saved index."""
    up = uploads_dir(library.settings)
    files = sorted(p.name for p in up.iterdir()) if up.is_dir() else []
    current = (library.settings.index_dir / "CURRENT").read_text()
    return files, len(library.retriever.chunks), sorted(library.retriever.documents), current


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose only content is `text` in Helvetica (enough for pypdf to extract)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def minimal_docx(heading: str, text: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(heading, level=1)
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_slugify_makes_safe_ids():
    assert slugify("AI Plan (final) v2") == "ai-plan-final-v2"
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("Café Données") == "cafe-donnees"
    assert slugify("???") == ""


def test_list_shows_corpus_metadata_and_chunk_counts(library):
    infos = {i.doc_id: i for i in library.list()}
    assert set(infos) == {"openai-deal", "cohere-mou", "skills-plan"}
    deal = infos["openai-deal"]
    assert deal.title == "UK signs AI deal with OpenAI" and deal.publisher == "Test Desk"
    assert deal.date == "2025-07-22" and deal.source_url == "https://example.org/openai-deal"
    assert deal.chunks == sum(c.doc_id == "openai-deal" for c in library.retriever.chunks) > 0
    assert not any(i.uploaded for i in infos.values())
    assert [i.doc_id for i in library.list()][0] == "openai-deal"  # newest first


def test_get_returns_body_and_unknown_id_is_not_found(library):
    assert "London office" in library.get("openai-deal").body
    with pytest.raises(NotFoundError, match="no document with the id"):
        library.get("nope")


def test_upload_is_searchable_listed_and_saved_fresh(library, settings, embedder):
    info = library.add("Zephyr Note.md", NOTE)
    assert info.doc_id == "zephyr-note" and info.uploaded and info.chunks >= 1
    assert info.title == "Zephyr lighthouse note" and info.publisher == "Coastal Office"
    assert (uploads_dir(settings) / "zephyr-note.md").read_bytes() == NOTE
    hits = library.retriever.retrieve("zephyr lighthouse coastal labs", 3).hits
    assert hits[0].chunk.doc_id == "zephyr-note"
    assert {i.doc_id: i.uploaded for i in library.list()}["zephyr-note"] is True

    # The saved index matches what a restart expects, so it is loaded, not rebuilt.
    saved = load_index(settings.index_dir, expected_manifest(settings, embedder))
    assert "zephyr-note" in saved.documents and len(saved.chunks) == len(library.retriever.chunks)
    reopened = open_index(settings, embedder, rebuild=False)
    assert reopened.documents["zephyr-note"].title == "Zephyr lighthouse note"
    # A full rebuild reads the uploads folder too, and still says it is uploaded.
    rebuilt = DocumentLibrary(HybridRetriever(build_index(settings, embedder, progress=False), embedder), settings)
    assert rebuilt.info("zephyr-note").uploaded


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("plain.txt", b"The zephyr lighthouse programme funds coastal labs.\n", "coastal labs"),
        (
            "page.html",
            b"<html><title>Zephyr page</title><body><h1>Zephyr</h1><p>Coastal labs get funds.</p>"
            b"<script>alert(1)</script></body></html>",
            "Coastal labs get funds.",
        ),
        ("memo.pdf", minimal_pdf("Zephyr lighthouse funds coastal labs"), "coastal labs"),
    ],
)
def test_upload_reads_each_supported_format(library, name, data, needle):
    info = library.add(name, data)
    body = library.get(info.doc_id).body
    assert needle in body and "alert(1)" not in body


def test_upload_reads_docx(library):
    info = library.add("Board Minutes.docx", minimal_docx("Zephyr minutes", "Coastal labs were approved."))
    assert "Coastal labs were approved." in library.get(info.doc_id).body
    assert info.doc_id == "board-minutes"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("virus.exe", b"MZ...", "not a file type I can read"),
        ("empty.md", b"", "is empty"),
        ("???.md", b"# Title\n\nText here.\n", "letters or digits"),
        ("openai-deal.md", b"# Clash\n\nSome text.\n", "corpus document already has the id"),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "not valid UTF-8"),
        ("broken.docx", b"this is not a zip file", "not a Word .docx file"),
        ("broken.pdf", b"%PDF-1.4 garbage", "could not be read|holds no text"),
        ("blank.md", b"---\ntitle: x\n---\n\n   \n", "holds no text"),
        ("badmeta.md", b"---\n- a list\n---\n\nBody.\n", "front matter"),
    ],
)
def test_rejected_upload_changes_nothing(library, name, data, message):
    before = snapshot(library)
    with pytest.raises(DocumentError, match=message):
        library.add(name, data)
    assert snapshot(library) == before


def test_oversized_upload_is_rejected_with_the_limit(settings, embedder, index_data):
    lib = DocumentLibrary(HybridRetriever(index_data, embedder), settings, max_bytes=100)
    before = snapshot(lib)
    with pytest.raises(DocumentError, match="the limit is"):
        lib.add("big.txt", b"x " * 100)
    assert snapshot(lib) == before


def test_uploading_the_same_name_twice_is_refused(library):
    library.add("note.md", NOTE)
    before = snapshot(library)
    with pytest.raises(DocumentError, match="already uploaded"):
        library.add("Note.txt", b"other text about zephyrs")
    assert snapshot(library) == before


def test_failure_while_saving_rolls_the_upload_back(library, monkeypatch):
    before = snapshot(library)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rag.library.save_index", broken_save)
    with pytest.raises(OSError, match="disk full"):
        library.add("note.md", NOTE)
    assert snapshot(library) == before
    assert "note" not in library.retriever.documents


def test_remove_upload_deletes_file_and_saves(library, settings, embedder):
    library.add("note.md", NOTE)
    library.remove("note")
    assert "note" not in library.retriever.documents
    assert not any(c.doc_id == "note" for c in library.retriever.chunks)
    assert not (uploads_dir(settings) / "note.md").exists()
    saved = open_index(settings, embedder, rebuild=False)  # fresh: no rebuild needed
    assert "note" not in saved.documents and len(saved.chunks) == len(library.retriever.chunks)


def test_corpus_documents_cannot_be_removed(library, settings):
    before = snapshot(library)
    with pytest.raises(DocumentError, match="part of the document corpus"):
        library.remove("openai-deal")
    with pytest.raises(NotFoundError):
        library.remove("nope")
    assert snapshot(library) == before
    assert Path(settings.corpus_dir / "openai-deal.md").exists()


def test_failed_remove_restores_the_document(library, monkeypatch):
    library.add("note.md", NOTE)
    before = snapshot(library)
    monkeypatch.setattr("rag.library.save_index", lambda *a, **k: (_ for _ in ()).throw(OSError("read-only")))
    with pytest.raises(OSError):
        library.remove("note")
    assert snapshot(library) == before
    assert library.retriever.retrieve("zephyr lighthouse", 1).hits[0].chunk.doc_id == "note"


# --- hostile files (issue 9): refused with the reason, nothing written -------------------


def slow_pdf(operations: int) -> bytes:
    """A one-page PDF whose content stream repeats one text operation `operations` times: valid,
    small (50 bytes an operation), and slow to extract (20,000 take seconds with pypdf)."""
    one = minimal_pdf("zephyr lighthouse")
    op = b"BT /F1 18 Tf 72 720 Td (zephyr lighthouse) Tj ET"
    stream = b"\n".join([op] * operations)
    head, rest = one.split(b"4 0 obj\n", 1)
    body, tail = rest.split(b"\nendobj\n", 1)
    pdf = head + b"4 0 obj\n" + b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream\nendobj\n" + tail
    # The cross-reference offsets after object 4 moved; pypdf repairs them (and so do viewers).
    return pdf


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("spaces.txt", b"  \n\n \t \n", "is empty"),
        ("fake.pdf", b"Quarterly note: the zephyr lighthouse funds coastal labs.\n", "is not a PDF"),
        ("fake.docx", minimal_pdf("Zephyr lighthouse"), "is not a Word .docx file"),
        ("nulls.txt", b"zephyr\x00lighthouse\x00coastal\x00labs " * 20, "binary data"),
        ("renamed.md", minimal_docx("Zephyr", "Coastal labs."), "binary data"),
        ("renamed.html", minimal_pdf("Zephyr lighthouse funds coastal labs"), "binary data"),
    ],
)
def test_hostile_upload_is_refused_with_its_reason(library, name, data, message):
    before = snapshot(library)
    with pytest.raises(DocumentError, match=message):
        library.add(name, data)
    assert snapshot(library) == before


def test_a_pdf_that_parses_too_long_is_stopped_and_changes_nothing(settings, embedder, index_data):
    # A limit the quick file meets with room to spare on a loaded machine (at 0.5 s it did not, once,
    # beside a two-core embedding job); the slow one has three times the operations of a PDF that took
    # about 5 s to parse here.
    lib = DocumentLibrary(HybridRetriever(index_data, embedder), settings, parse_timeout_s=1.5)
    before = snapshot(lib)
    with pytest.raises(DocumentError, match=r"took longer than 1.5 s to read"):
        lib.add("slow.pdf", slow_pdf(60_000))
    assert snapshot(lib) == before
    assert (
        lib.add("quick.pdf", minimal_pdf("Zephyr lighthouse funds coastal labs")).chunks >= 1
    )  # the cap only stops slow files


def test_questions_and_other_changes_go_on_while_an_upload_is_parsed(settings, embedder, index_data):
    """Parsing holds no lock: while one upload is stuck in its parser, a question is answered, another
    upload is added and removed, and the stuck upload then finishes."""
    import threading

    from rag.loaders import load_document

    parsing, release = threading.Event(), threading.Event()

    def loader(path: Path, doc_id: str):
        if doc_id == "slow-note":
            parsing.set()
            assert release.wait(30), "the test never released the parser"
        return load_document(path, doc_id)

    lib = DocumentLibrary(HybridRetriever(index_data, embedder), settings, loader=loader)
    result: dict = {}
    slow = threading.Thread(target=lambda: result.update(info=lib.add("slow note.md", NOTE)), daemon=True)
    slow.start()
    try:
        assert parsing.wait(30)
        hits = lib.retriever.retrieve("Which sectors could OpenAI work with?", 3).hits
        assert hits[0].chunk.doc_id == "openai-deal"
        done = threading.Thread(
            target=lambda: (lib.add("other.md", b"# Other\n\nA note on harbour cranes.\n"), lib.remove("other"))
        )
        done.start()
        done.join(10)
        assert not done.is_alive(), "another upload waited for the parse"
        assert "other" not in lib.retriever.documents
    finally:
        release.set()
        slow.join(30)
    assert result["info"].doc_id == "slow-note" and "slow-note" in lib.retriever.documents


def test_an_upload_waits_for_the_index_lock_then_gives_up_without_writing(settings, embedder, index_data, monkeypatch):
    """Another process holding `index/.write.lock` (say a second app on the same folders) makes an
    upload wait; past the wait it is refused as busy, with nothing written."""
    import fcntl

    from rag.errors import ServerBusyError

    lib = DocumentLibrary(HybridRetriever(index_data, embedder), settings)
    before = snapshot(lib)
    monkeypatch.setattr("rag.library.LOCK_WAIT_SECONDS", 0.3)
    with open(settings.index_dir / ".write.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ServerBusyError, match="Another process is writing the index"):
            lib.add("note.md", NOTE)
        assert snapshot(lib) == before
        fcntl.flock(held, fcntl.LOCK_UN)
    assert lib.add("note.md", NOTE).doc_id == "note"
