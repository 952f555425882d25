"""Integration: the retrieval and lifecycle tests against a real Milvus server process on 127.0.0.1.

Marked `milvus_server`; skipped with the reason when `make milvus-servers` has not installed it.
"""

import pytest

from rag.indexing import build_index, open_index
from rag.retrieval import HybridRetriever
from rag.stores import factory
from tests.stores import test_every_store
from tests.stores.servers import INSTALL_HINT, lite_server, lite_server_binary, self_signed_cert, tls_proxy

pytestmark = [
    pytest.mark.milvus_server,
    pytest.mark.skipif(lite_server_binary() is None, reason=INSTALL_HINT),
]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    with lite_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


@pytest.fixture
def store_settings(settings, server_uri, request):
    """The tiny-corpus settings on the server, one collection per test."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:60]
    return settings.model_copy(update={"vector_store": "milvus", "milvus_uri": server_uri, "milvus_collection": name})


# The same retrieval and lifecycle tests as on FAISS and Milvus Lite, on the server.
test_hybrid_finds_the_right_document = test_every_store.test_hybrid_finds_the_right_document
test_dense_ranking_matches_the_faiss_store = test_every_store.test_dense_ranking_matches_the_faiss_store
test_added_and_removed_documents_change_the_store = test_every_store.test_added_and_removed_documents_change_the_store
test_save_load_round_trip_and_staleness = test_every_store.test_save_load_round_trip_and_staleness
test_upload_survives_a_restart = test_every_store.test_upload_survives_a_restart


def test_the_server_runs_bm25_and_hybrid_search(store_settings, embedder):
    data = build_index(store_settings, embedder, progress=False)
    assert data.vectors.keyword and data.vectors.describe()["keyword_search"] == "engine BM25"
    q = "Will Cohere build data centres in Canada?"
    fused = data.vectors.hybrid_search(embedder.embed_query(q), q, 3)
    assert data.chunks[data.rows[fused[0][0]]].doc_id == "cohere-mou"


def test_a_second_app_instance_sees_the_same_collection(store_settings, embedder):
    build_index(store_settings, embedder, progress=False)
    one = HybridRetriever(open_index(store_settings, embedder), embedder)
    two = HybridRetriever(open_index(store_settings, embedder), embedder)  # another client, same collection
    q = "OpenAI London office staff"
    assert [h.chunk.chunk_id for h in one.retrieve(q).hits] == [h.chunk.chunk_id for h in two.retrieve(q).hits]
    assert one.data.vectors.client is not two.data.vectors.client


def test_a_stopped_server_is_a_clear_error(settings, tmp_path):
    with lite_server(tmp_path / "brief") as uri:
        pass
    s = settings.model_copy(update={"vector_store": "milvus", "milvus_uri": uri})
    factory.CONNECT_TIMEOUT, old = 2.0, factory.CONNECT_TIMEOUT
    try:
        with pytest.raises(factory.VectorStoreError, match=f"cannot reach the Milvus server at {uri}"):
            factory.connect(s)
    finally:
        factory.CONNECT_TIMEOUT = old


def test_the_engine_has_no_aliases_nor_hnsw_so_rebuilds_in_place_and_records_flat(store_settings, embedder, caplog):
    """The milvus-lite engine answers alias calls UNIMPLEMENTED and refuses HNSW, like Lite."""
    s = store_settings.model_copy(update={"milvus_index": "hnsw"})
    build_index(s, embedder, progress=False)
    with caplog.at_level("INFO", logger="rag.stores.milvus"):
        again = build_index(s, embedder, progress=False)
    info = again.manifest["vector_store"]
    assert (info["alias"], info["target"], info["index"]) == (False, s.milvus_collection, "FLAT")
    assert "the engine refused HNSW (invalid index type: HNSW" in info["index_fallback"]
    assert f"rebuilding {s.milvus_collection} in place" in caplog.text
    assert again.vectors.client.list_collections().count(s.milvus_collection) == 1
    assert len(again.vectors.passages([int(k) for k in list(again.rows)[:3]])) == 3


def test_tls_with_the_right_ca_answers_and_a_wrong_ca_is_a_clear_error(
    store_settings, embedder, server_uri, tmp_path, monkeypatch
):
    pair, other = self_signed_cert(tmp_path / "tls"), self_signed_cert(tmp_path / "tls", "other")
    if pair is None or other is None:
        pytest.skip("no openssl to make a test certificate")
    monkeypatch.setattr(factory, "CONNECT_TIMEOUT", 3.0)
    with tls_proxy(int(server_uri.rsplit(":", 1)[1]), *pair) as port:
        s = store_settings.model_copy(update={"milvus_uri": f"https://localhost:{port}", "milvus_ca": str(pair[0])})
        build_index(s, embedder, progress=False)  # the proxy speaks only TLS: this went through it
        hit = HybridRetriever(open_index(s, embedder), embedder).retrieve("Cohere data centres in Canada").hits[0]
        assert hit.chunk.doc_id == "cohere-mou"
        # pymilvus shares one connection per URI, token and database, whatever the certificate: so
        # the wrong CA is tried on the other name the certificate holds, 127.0.0.1
        wrong = s.model_copy(update={"milvus_uri": f"https://127.0.0.1:{port}", "milvus_ca": str(other[0])})
        with pytest.raises(factory.VectorStoreError, match="and that RAG_MILVUS_CA signed the certificate"):
            factory.connect(wrong)
        clear = s.model_copy(update={"milvus_uri": f"http://localhost:{port}", "milvus_ca": ""})
        with pytest.raises(
            factory.VectorStoreError, match=f"cannot reach the Milvus server at http://localhost:{port}"
        ):
            factory.connect(clear)
