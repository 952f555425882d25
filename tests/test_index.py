import numpy as np
import pytest

from rag.errors import IndexMissingError, IndexStaleError
from rag.index import load_index
from rag.indexing import build_index, expected_manifest, open_index
from rag.stores.faiss import FaissIndex


def test_faiss_top_k_equals_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[17] + 0.1 * rng.normal(size=32).astype(np.float32)
    store = FaissIndex(32)
    store.build(np.arange(200, dtype=np.int64), v)
    got = [r for r, _ in store.search(q, 10)]
    want = list(np.argsort(-(v @ q))[:10])
    assert got == want


def test_save_load_round_trip_returns_same_hits(settings, embedder, index_data):
    loaded = load_index(settings.index_dir, expected_manifest(settings, embedder))
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in index_data.chunks]
    q = embedder.embed_query("Cohere data centres")
    assert loaded.vectors.search(q, 3) == index_data.vectors.search(q, 3)
    assert set(loaded.documents) == {"openai-deal", "cohere-mou", "skills-plan"}
    m = loaded.manifest
    assert m["chunk_count"] == len(loaded.chunks) and m["embedding_dim"] == embedder.dim
    assert {"format_version", "corpus_hash", "chunking_hash", "built_at", "versions"} <= set(m)


def test_missing_and_stale_index_name_the_fix(settings, embedder, tmp_path):
    with pytest.raises(IndexMissingError, match="python -m rag index"):
        open_index(settings, embedder)
    build_index(settings, embedder, progress=False)
    (settings.corpus_dir / "skills-plan.md").write_text("---\ntitle: x\n---\nChanged text.\n")
    with pytest.raises(IndexStaleError, match="corpus"):
        open_index(settings, embedder)
    fresh = open_index(settings, embedder, rebuild=True)
    assert any("Changed text" in c.text for c in fresh.chunks)
    open_index(settings, embedder)  # no longer stale


def test_interrupted_build_leaves_previous_index_usable(settings, embedder, index_data, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(FaissIndex, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, embedder, progress=False)
    monkeypatch.undo()
    again = load_index(settings.index_dir, expected_manifest(settings, embedder))
    assert len(again.chunks) == len(index_data.chunks)
