"""Milvus Lite behind the seam: rankings against brute force, BM25 in the engine, clear errors."""

import numpy as np
import pytest

from rag.errors import BadInputError, IndexStaleError, VectorStoreError
from rag.indexing import build_index, open_index
from rag.stores import factory
from rag.stores.base import chunk_keys
from rag.types import Chunk


def chunk(i: int, text: str, doc: str = "d") -> Chunk:
    return Chunk(chunk_id=f"{doc}#{i:04d}", doc_id=doc, title="t", text=text, start=0, end=len(text))


@pytest.fixture
def store(lite_settings):
    s = factory.make_store(lite_settings, 16, "fake")
    yield s
    s.close()


def test_dense_top_k_equals_brute_force(store):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    chunks = [chunk(i, f"passage {i}") for i in range(300)]
    ids = chunk_keys(chunks)
    store.build(ids, v, chunks)
    assert len(store) == 300
    for qi in (3, 150, 299):
        q = v[qi] + 0.2 * rng.normal(size=16).astype(np.float32)
        want = [int(ids[i]) for i in np.argsort(-(v @ q))[:10]]
        assert [i for i, _ in store.search(q, 10)] == want


def test_engine_bm25_and_hybrid_rank_the_matching_passage_first(store):
    texts = ["Cohere data centres in Canada", "OpenAI London office staff", "skills plan for workers", "data sharing"]
    chunks = [chunk(i, t, doc=f"doc{i}") for i, t in enumerate(texts)]
    ids = chunk_keys(chunks)
    store.build(ids, np.eye(4, 16, dtype=np.float32), chunks)
    assert store.keyword  # Milvus Lite has BM25 functions
    assert [i for i, _ in store.keyword_search("data centres", 2)] == [ids[0], ids[3]]
    assert store.keyword_search("the of and", 2) == []  # only stop words
    assert store.hybrid_search(np.eye(1, 16, 1, dtype=np.float32)[0], "London staff", 2)[0][0] == ids[1]
    store.delete_document("doc0")
    assert [i for i, _ in store.keyword_search("data centres", 2)] == [ids[3]]


def test_dimension_mismatch_names_the_fix(lite_settings, embedder):
    build_index(lite_settings, embedder, progress=False)
    store = factory.make_store(lite_settings, 8, embedder.name)  # same collection, another dimension
    with pytest.raises(IndexStaleError, match="512-dimensional vectors but the embedding model gives 8"):
        store.check(1)


def test_missing_collection_reads_as_stale(lite_settings, embedder):
    data = build_index(lite_settings, embedder, progress=False)
    data.vectors.client.drop_collection(data.vectors.collection)
    with pytest.raises(IndexStaleError, match="is missing: rebuild it with `python -m rag index`"):
        open_index(lite_settings, embedder)


def test_a_collection_the_app_did_not_make_is_not_dropped(lite_settings, embedder):
    client = factory.connect(lite_settings)
    name = factory.collection_name(lite_settings, embedder.name)
    client.create_collection(name, dimension=4)
    with pytest.raises(VectorStoreError, match="was not made by this app"):
        build_index(lite_settings, embedder, progress=False)
    assert client.has_collection(name)


@pytest.mark.parametrize("uri", ["index/milvus", "ftp://host:19530", "http://:19530", "http://host:port"])
def test_malformed_uri_is_a_clear_setting_error(settings, uri):
    with pytest.raises(BadInputError, match="RAG_MILVUS_URI"):
        factory.milvus_uri(settings.model_copy(update={"milvus_uri": uri}))


def test_lite_uri_defaults_into_the_index_folder(settings):
    uri, lite = factory.milvus_uri(settings)
    assert lite and uri.endswith("index/milvus.db")
    assert factory.milvus_uri(settings.model_copy(update={"milvus_uri": "http://10.0.0.5:19530"})) == (
        "http://10.0.0.5:19530",
        False,
    )


def test_unreachable_server_is_a_clear_error(lite_settings, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing listens once the socket closes
    monkeypatch.setattr(factory, "CONNECT_TIMEOUT", 1.0)
    s = lite_settings.model_copy(update={"milvus_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(VectorStoreError, match=f"cannot reach the Milvus server at http://127.0.0.1:{port}"):
        factory.connect(s)


def test_collection_names_differ_by_corpus_and_model(settings, tmp_path):
    a = factory.collection_name(settings, "all-MiniLM-L6-v2")
    assert a.startswith("rag_corpus_all_minilm_l6_v2_")
    assert a != factory.collection_name(settings, "other-model")
    assert a != factory.collection_name(settings.model_copy(update={"corpus_dir": tmp_path / "x"}), "all-MiniLM-L6-v2")
    assert factory.collection_name(settings.model_copy(update={"milvus_collection": "mine"}), "m") == "mine"


def test_an_engine_without_bm25_keeps_our_own_keyword_index(lite_settings, embedder, monkeypatch):
    """Milvus 2.3 has no BM25 functions: the collection holds vectors and retrieval keeps rank-bm25."""
    from rag.retrieval import HybridRetriever
    from rag.stores import milvus

    monkeypatch.setattr(milvus, "_bm25_version", lambda client: False)
    data = build_index(lite_settings, embedder, progress=False)
    assert not data.vectors.keyword and "sparse" not in data.vectors._fields()
    assert data.vectors.describe()["keyword_search"] == "in-process BM25"
    opened = open_index(lite_settings, embedder)
    assert opened.keywords is not None and opened.manifest["keywords"]["passages"] == len(opened.chunks)  # saved
    r = HybridRetriever(opened, embedder, candidates=10)
    assert r._keywords is opened.keywords and len(r._keywords) == len(r.chunks)  # ours holds every passage
    hit = r.retrieve("Will Cohere build data centres in Canada?", k=1).hits[0]
    assert hit.chunk.doc_id == "cohere-mou" and hit.lexical_rank == 1


def test_an_engine_with_bm25_means_no_keyword_index_of_ours(lite_settings, embedder):
    """Milvus ranks by keyword itself: nothing of ours is built, saved or opened for it."""
    from rag.index import read_manifest
    from rag.retrieval import HybridRetriever

    data = build_index(lite_settings, embedder, progress=False)
    assert data.vectors.keyword and data.keywords is None
    build, manifest = read_manifest(lite_settings.index_dir)
    assert "keywords" not in manifest and not (build / "keywords").exists()
    r = HybridRetriever(open_index(lite_settings, embedder), embedder, candidates=10)
    assert r._keywords is None
    assert r.retrieve("Will Cohere build data centres in Canada?", k=1).hits[0].chunk.doc_id == "cohere-mou"
