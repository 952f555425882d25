"""Chunks and documents read on demand: a loaded index parses no record until one is asked for,
answers as the records it was saved from, and a build saved without the column files loads whole."""

from __future__ import annotations

import json

import pytest

from rag.index import load_index
from rag.stores.base import chunk_key
from rag.tables import CHUNK_COLUMNS, DOCUMENT_COLUMNS, ChunkTable, DocumentTable
from rag.types import Chunk, Document


def chunks_of(doc_id: str, n: int) -> list[Chunk]:
    return [Chunk(f"{doc_id}#{i:04d}", doc_id, f"{doc_id} passage {i} é", i * 10, i * 10 + 9) for i in range(n)]


@pytest.fixture
def saved(tmp_path) -> tuple[ChunkTable, list[Chunk]]:
    every = chunks_of("alpha", 3) + chunks_of("beta", 2) + chunks_of("gamma", 4)
    ChunkTable.of(every).save(tmp_path)
    return ChunkTable.open(tmp_path), every


def test_an_opened_table_reads_back_each_chunk_and_slice(saved):
    table, every = saved
    assert len(table) == len(every)
    assert table[4] == every[4] and table[-1] == every[-1]
    assert table[2:5] == every[2:5]
    assert list(table) == every
    assert table.keys.tolist() == [chunk_key(c.chunk_id) for c in every]
    with pytest.raises(IndexError):
        table[len(every)]


def test_changes_by_document_read_columns_and_keep_order(saved):
    table, every = saved
    new = chunks_of("delta", 2)
    changed = table.without({"beta"}).plus(new).without({"alpha"})
    want = [c for c in every if c.doc_id not in ("alpha", "beta")] + new
    assert list(changed) == want
    assert changed.counts() == {"gamma": 4, "delta": 2}
    assert changed.of_doc("delta") == new and changed.of_doc("beta") == []
    assert sorted(changed.keys_of({"gamma", "delta"})) == sorted(chunk_key(c.chunk_id) for c in want)
    assert changed.keys.tolist() == [chunk_key(c.chunk_id) for c in want]
    assert list(table) == every  # the table it came from is unchanged


def test_document_table_by_id(tmp_path):
    docs = [Document("a", "A", "body a"), Document("b", "B", "body b é"), Document("c", "C", "body c")]
    DocumentTable.of(docs).save(tmp_path)
    table = DocumentTable.open(tmp_path)
    assert table["b"] == docs[1] and "c" in table and "z" not in table
    changed = table.without({"a"}).plus([Document("d", "D", "body d"), Document("c", "C2", "new c")])
    assert sorted(changed) == ["b", "c", "d"] and len(changed) == 3
    assert changed["c"].title == "C2" and changed.get("a") is None
    assert len(table) == 3 and table["a"] == docs[0]
    assert len(changed.plus([Document("a", "A", "again")])) == 4  # removed, then added again


def test_loading_an_index_parses_no_chunk(settings, index_data, monkeypatch):
    parsed = []
    real = Chunk.from_dict.__func__

    monkeypatch.setattr(Chunk, "from_dict", classmethod(lambda cls, d: parsed.append(d) or real(cls, d)))
    data = load_index(settings.index_dir)
    assert parsed == []
    assert data.chunks[0] == index_data.chunks[0] and len(parsed) == 1
    assert sorted(data.documents) == sorted(index_data.documents)


def test_a_build_saved_without_columns_loads_whole(settings, index_data):
    build = settings.index_dir / "builds" / (settings.index_dir / "CURRENT").read_text().strip()
    manifest = json.loads((build / "manifest.json").read_text())
    for name in (CHUNK_COLUMNS, DOCUMENT_COLUMNS):
        (build / name).unlink()
        del manifest["files"][name]
    (build / "manifest.json").write_text(json.dumps(manifest))
    data = load_index(settings.index_dir)
    assert list(data.chunks) == list(index_data.chunks)
    assert dict(data.documents) == dict(index_data.documents)
