"""The retrieval and index-lifecycle tests, run on every vector store (rankings, never scores)."""

import pytest

from rag.chunking import chunk_document
from rag.errors import IndexStaleError
from rag.index import load_index
from rag.indexing import build_index, expected_manifest, open_index
from rag.library import DocumentLibrary
from rag.retrieval import HybridRetriever
from rag.types import Document


def test_hybrid_finds_the_right_document(store_settings, embedder):
    data = build_index(store_settings, embedder, progress=False)
    r = HybridRetriever(data, embedder, candidates=10)
    res = r.retrieve("Will Cohere build data centres in Canada?", k=2)
    assert res.hits[0].chunk.doc_id == "cohere-mou"
    assert res.hits[0].dense_rank == 1 and res.hits[0].lexical_rank == 1
    assert res.best_dense > 0.3
    assert data.vectors.kind == store_settings.vector_store
    assert data.manifest["vector_store"]["kind"] == store_settings.vector_store


def test_dense_ranking_matches_the_faiss_store(store_settings, settings, embedder):
    faiss_data = build_index(settings, embedder, progress=False)
    data = build_index(store_settings, embedder, progress=False)
    for q in ("OpenAI London office staff", "skills plan workers 2030", "memorandum legally binding"):
        qv = embedder.embed_query(q)
        assert [r for r, _ in data.search(qv, 3)] == [r for r, _ in faiss_data.search(qv, 3)]


def test_added_and_removed_documents_change_the_store(store_settings, embedder):
    r = HybridRetriever(build_index(store_settings, embedder, progress=False), embedder, candidates=10)
    extra = Document(doc_id="extra", title="Quantum note", body="Quantum sensing pilots will start in Belfast.")
    r.add_documents([extra], chunk_document(extra))
    assert r.retrieve("quantum sensing Belfast", k=1).hits[0].chunk.doc_id == "extra"
    assert len(r.data.vectors) == len(r.chunks)
    r.remove_document("extra")
    assert all(h.chunk.doc_id != "extra" for h in r.retrieve("quantum sensing Belfast", k=5).hits)
    assert len(r.data.vectors) == len(r.chunks)


def test_save_load_round_trip_and_staleness(store_settings, embedder):
    built = build_index(store_settings, embedder, progress=False)
    loaded = open_index(store_settings, embedder)
    q = embedder.embed_query("Cohere data centres")
    assert [r for r, _ in loaded.search(q, 3)] == [r for r, _ in built.search(q, 3)]
    assert loaded.manifest["store"] == expected_manifest(store_settings, embedder)["store"]
    other = store_settings.model_copy(update={"vector_store": "milvus" if built.vectors.kind == "faiss" else "faiss"})
    with pytest.raises(IndexStaleError, match="vector store"):
        load_index(other.index_dir, expected_manifest(other, embedder), other)


def test_upload_survives_a_restart(store_settings, embedder):
    lib = DocumentLibrary(
        HybridRetriever(build_index(store_settings, embedder, progress=False), embedder), store_settings
    )
    lib.add("Quantum note.md", b"# Quantum note\n\nQuantum sensing pilots will start in Belfast.\n")
    reopened = HybridRetriever(open_index(store_settings, embedder), embedder)
    assert reopened.retrieve("quantum sensing Belfast", k=1).hits[0].chunk.doc_id == "quantum-note"
    lib2 = DocumentLibrary(reopened, store_settings)
    lib2.remove("quantum-note")
    again = HybridRetriever(open_index(store_settings, embedder), embedder)
    assert "quantum-note" not in again.documents and len(again.data.vectors) == len(again.chunks)
