"""Saving a live change by appending: an upload or removal writes a delta beside hard links to the
previous build's files, and loading replays the deltas to the same chunks, documents and search
results as the live index; a full write (`compact`, or past `MAX_DELTAS`) folds them back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rag.index
from rag.errors import IndexMissingError
from rag.index import DELTAS, load_index, save_index, write_lock
from rag.library import DocumentLibrary
from rag.retrieval import HybridRetriever


def note(word: str) -> bytes:
    return f"# {word} note\n\nThe {word} programme funds coastal AI labs. {word.title()} grants open in May.\n".encode()


@pytest.fixture
def library(settings, embedder, index_data) -> DocumentLibrary:
    return DocumentLibrary(HybridRetriever(index_data, embedder, candidates=10), settings)


def current(settings):
    build = settings.index_dir / "builds" / (settings.index_dir / "CURRENT").read_text().strip()
    return build, json.loads((build / "manifest.json").read_text())


def same_as_live(settings, embedder, library: DocumentLibrary) -> None:
    """The saved index, loaded afresh, holds what the live one does, and searches the same."""
    live = library.retriever
    loaded = load_index(settings.index_dir)
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in live.chunks]
    assert sorted(loaded.documents) == sorted(live.documents)
    assert len(loaded.vectors) == len(loaded.chunks)
    fresh = HybridRetriever(loaded, embedder, candidates=10)
    for q in ("coastal AI labs grants", "zephyr programme", "What does the strategy say?"):
        assert [h.chunk.chunk_id for h in fresh.retrieve(q, 5).hits] == [
            h.chunk.chunk_id for h in live.retrieve(q, 5).hits
        ]


def test_an_upload_appends_a_delta_and_links_the_rest(settings, embedder, library):
    before, _ = current(settings)
    library.add("zephyr.md", note("zephyr"))
    after, manifest = current(settings)
    assert after != before
    assert [d["gen"] for d in manifest[DELTAS]] == [1]
    assert manifest[DELTAS][0]["chunks"] >= 1
    for name in ("vectors.faiss", "chunks.jsonl", "documents.jsonl"):  # not written again: the same file
        assert (after / name).stat().st_ino == (before / name).stat().st_ino
    rows = np.load(after / manifest[DELTAS][0]["vectors"])
    assert rows.shape == (manifest[DELTAS][0]["chunks"], embedder.dim)
    same_as_live(settings, embedder, library)


def test_loading_replays_uploads_and_removals_in_order(settings, embedder, library):
    library.add("zephyr.md", note("zephyr"))
    library.add("aurora.md", note("aurora"))
    library.remove("zephyr")
    library.add("zephyr.md", note("zephyr"))  # the same id again, after its removal
    _, manifest = current(settings)
    assert [d["gen"] for d in manifest[DELTAS]] == [1, 2, 3, 4]
    assert manifest[DELTAS][2]["removed"] == ["zephyr"]
    same_as_live(settings, embedder, library)


def test_changes_made_between_saves_are_one_delta_replayed_in_their_order(settings, embedder, index_data):
    retriever = HybridRetriever(index_data, embedder, candidates=10)
    from rag.types import Chunk, Document

    def doc(doc_id: str) -> tuple[list[Document], list[Chunk]]:
        text = f"The {doc_id} plan funds labs."
        return [Document(doc_id=doc_id, title=doc_id, body=text)], [Chunk(f"{doc_id}#0000", doc_id, text, 0, len(text))]

    retriever.add_documents(*doc("kestrel"))
    retriever.remove_document("kestrel")  # as an upload whose save failed is undone
    retriever.add_documents(*doc("osprey"))
    with write_lock(settings.index_dir):
        build = save_index(settings.index_dir, retriever.data)
    manifest = json.loads((build / "manifest.json").read_text())
    assert len(manifest[DELTAS]) == 1 and manifest[DELTAS][0]["removed"] == ["kestrel"]
    loaded = load_index(settings.index_dir)
    assert "kestrel" not in loaded.documents and "osprey" in loaded.documents
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in retriever.chunks]
    assert len(loaded.vectors) == len(loaded.chunks)


def test_compact_writes_everything_once_more_and_loads_the_same(settings, embedder, library):
    library.add("zephyr.md", note("zephyr"))
    library.remove("zephyr")
    library.add("aurora.md", note("aurora"))
    with write_lock(settings.index_dir):
        build = save_index(settings.index_dir, library.retriever.data, compact=True)
    manifest = json.loads((build / "manifest.json").read_text())
    assert DELTAS not in manifest and not (build / DELTAS).exists()
    same_as_live(settings, embedder, library)
    library.add("zephyr.md", note("zephyr"))  # and appending goes on from the compacted build
    _, manifest = current(settings)
    assert [d["gen"] for d in manifest[DELTAS]] == [1]
    same_as_live(settings, embedder, library)


def test_past_max_deltas_a_save_writes_everything(settings, embedder, library, monkeypatch):
    monkeypatch.setattr(rag.index, "MAX_DELTAS", 2)
    library.add("zephyr.md", note("zephyr"))
    library.add("aurora.md", note("aurora"))
    before, manifest = current(settings)
    assert len(manifest[DELTAS]) == 2
    library.remove("zephyr")
    after, manifest = current(settings)
    assert DELTAS not in manifest
    assert (after / "chunks.jsonl").stat().st_ino != (before / "chunks.jsonl").stat().st_ino
    same_as_live(settings, embedder, library)


def test_a_damaged_delta_is_reported_not_used(settings, library):
    library.add("zephyr.md", note("zephyr"))
    build, manifest = current(settings)
    records = build / manifest[DELTAS][0]["records"]
    records.write_text(records.read_text().replace("zephyr", "zephyx"))
    with pytest.raises(IndexMissingError, match="does not match its checksum"):
        load_index(settings.index_dir)


def test_a_stale_save_writes_everything(settings, embedder, index_data):
    """A version not loaded from the build CURRENT names (another process saved since) is written in full."""
    one = HybridRetriever(index_data, embedder, candidates=10)
    two = HybridRetriever(load_index(settings.index_dir), embedder, candidates=10)
    from rag.types import Chunk, Document

    text = "The heron plan funds labs."
    one.add_documents([Document(doc_id="heron", title="heron", body=text)], [Chunk("heron#0000", "heron", text, 0, 26)])
    with write_lock(settings.index_dir):
        save_index(settings.index_dir, one.data)
    two.remove_document(next(iter(two.documents)))
    with write_lock(settings.index_dir):
        build = save_index(settings.index_dir, two.data)
    manifest = json.loads((build / "manifest.json").read_text())
    assert DELTAS not in manifest  # two's changes were not made to the build one saved
    loaded = load_index(settings.index_dir)
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in two.chunks]
