"""Integration: the store against a real Milvus deployment (standalone with etcd and MinIO, or a cluster).

Runs when `RAG_TEST_MILVUS_URI` names a server that answers (`docker compose -f deploy/docker-compose.yml
up -d`, then `make test-milvus-standalone`); otherwise every test is skipped, saying why. Marked
`milvus_standalone`. Each test makes its own collections (and database) and drops them afterwards.
Unlike the milvus-lite engine, such a server has aliases, HNSW and databases, so these tests are
the ones that exercise the alias swap and the HNSW index for real.
"""

import os
import socket
import threading
import uuid
from urllib.parse import urlparse

import pytest
from pydantic import SecretStr

from rag.errors import VectorStoreError
from rag.indexing import build_index, open_index
from rag.retrieval import HybridRetriever
from rag.stores import milvus_plan
from tests.stores import test_every_store

URI = os.environ.get("RAG_TEST_MILVUS_URI", "").strip()
TOKEN = os.environ.get("RAG_TEST_MILVUS_TOKEN", "")


def _skip_reason() -> str | None:
    if not URI:
        return "RAG_TEST_MILVUS_URI is not set: start deploy/docker-compose.yml and run `make test-milvus-standalone`"
    u = urlparse(URI)
    try:
        socket.create_connection((u.hostname or "", u.port or 19530), timeout=2).close()
    except OSError as e:
        return f"nothing answers at RAG_TEST_MILVUS_URI={URI} ({e})"
    return None


SKIP = _skip_reason()
pytestmark = [pytest.mark.milvus_standalone, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


def raw_client(db_name: str = ""):
    """A pymilvus client of its own (not the app's), as another program reading the collection would use."""
    from pymilvus import MilvusClient

    return MilvusClient(uri=URI, token=TOKEN, db_name=db_name, alias=f"test-{uuid.uuid4().hex}")


def drop_everything_named(client, name: str) -> None:
    from rag.stores.factory import quiet_pymilvus

    try:
        with quiet_pymilvus():
            client.drop_alias(name)
    except Exception:
        pass
    for c in client.list_collections():
        if c == name or c.startswith(f"{name}__"):
            client.drop_collection(c)


@pytest.fixture
def store_settings(settings, request):
    """The tiny-corpus settings on the server, one collection name per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:8]}_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:50]
    yield settings.model_copy(
        update={
            "vector_store": "milvus",
            "milvus_uri": URI,
            "milvus_token": SecretStr(TOKEN),
            "milvus_collection": name,
        }
    )
    client = raw_client()
    drop_everything_named(client, name)
    client.close()


# The same retrieval and lifecycle tests as on FAISS, Milvus Lite and the milvus-lite server.
test_hybrid_finds_the_right_document = test_every_store.test_hybrid_finds_the_right_document
test_dense_ranking_matches_the_faiss_store = test_every_store.test_dense_ranking_matches_the_faiss_store
test_added_and_removed_documents_change_the_store = test_every_store.test_added_and_removed_documents_change_the_store
test_save_load_round_trip_and_staleness = test_every_store.test_save_load_round_trip_and_staleness
test_upload_survives_a_restart = test_every_store.test_upload_survives_a_restart


def test_a_rebuild_swaps_the_alias_while_another_client_keeps_searching(store_settings, embedder):
    name = store_settings.milvus_collection
    first = build_index(store_settings, embedder, progress=False).manifest["vector_store"]
    assert first["alias"] is True and first["target"].startswith(f"{name}__")
    reader = raw_client()
    assert reader.describe_alias(name)["collection_name"] == first["target"]
    q = embedder.embed_query("Cohere data centres in Canada").tolist()
    answers, errors, stop = [], [], threading.Event()

    def search_until_stopped() -> None:
        while not stop.is_set():
            try:
                res = reader.search(name, [q], anns_field="dense", limit=3, consistency_level="Strong")
                answers.append(len(res[0]))
            except Exception as e:  # a gap would show here as "collection not found"
                errors.append(repr(e))

    t = threading.Thread(target=search_until_stopped)
    t.start()
    try:
        second = build_index(store_settings, embedder, progress=False).manifest["vector_store"]
    finally:
        stop.set()
        t.join()
    assert errors == [] and len(answers) > 5 and min(answers) == 3
    assert second["target"] != first["target"] and reader.describe_alias(name)["collection_name"] == second["target"]
    assert not reader.has_collection(first["target"])  # dropped once the alias had moved
    reader.close()


def test_hnsw_is_built_on_a_server_and_ivf_flat_above_the_threshold(store_settings, embedder, monkeypatch):
    client = raw_client()
    data = build_index(store_settings.model_copy(update={"milvus_index": "hnsw"}), embedder, progress=False)
    info = data.manifest["vector_store"]
    assert info["index"] == "HNSW" and "index_fallback" not in info
    described = client.describe_index(info["target"], "dense")
    assert (described["index_type"], described["M"], described["efConstruction"]) == ("HNSW", "32", "80")
    assert data.vectors.engine_bm25 and data.vectors.keyword  # a 2.5 server runs BM25 itself
    r = HybridRetriever(data, embedder, candidates=10)
    assert r.retrieve("Will Cohere build data centres in Canada?", k=1).hits[0].chunk.doc_id == "cohere-mou"

    monkeypatch.setattr(milvus_plan, "EXACT_MAX", 2)
    data = build_index(store_settings, embedder, progress=False)
    n = len(data.chunks)
    described = client.describe_index(data.manifest["vector_store"]["target"], "dense")
    assert (described["index_type"], described["nlist"]) == ("IVF_FLAT", str(milvus_plan.nlist_for(n)))
    client.close()


def test_any_client_reads_the_passages_from_the_collection(store_settings, embedder):
    data = build_index(store_settings, embedder, progress=False)
    client = raw_client()
    got = client.query(
        store_settings.milvus_collection, filter='doc_id == "cohere-mou"', output_fields=["chunk_id", "text"]
    )
    want = {c.chunk_id: c.text for c in data.chunks if c.doc_id == "cohere-mou"}
    assert {r["chunk_id"]: r["text"] for r in got} == want and want
    client.close()


def test_a_collection_made_before_aliases_is_replaced_by_an_alias(store_settings, embedder):
    from pymilvus import DataType

    name = store_settings.milvus_collection
    client = raw_client()
    schema = client.create_schema(auto_id=False)  # the fields of the collections this app made before
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
    schema.add_field("lex", DataType.VARCHAR, max_length=65535)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=embedder.dim)
    client.create_collection(name, schema=schema)
    data = build_index(store_settings, embedder, progress=False)
    assert client.describe_alias(name)["collection_name"] == data.manifest["vector_store"]["target"]
    assert name not in client.list_collections() and len(data.vectors) == len(data.chunks)
    client.close()


def test_a_database_of_its_own_and_a_missing_one(store_settings, embedder):
    db = f"rag_test_{uuid.uuid4().hex[:8]}"
    admin = raw_client()
    admin.create_database(db)
    try:
        s = store_settings.model_copy(update={"milvus_db_name": db})
        data = build_index(s, embedder, progress=False)
        assert data.manifest["store"] == f"milvus:{db}/{s.milvus_collection}"
        inside = raw_client(db)
        assert data.manifest["vector_store"]["target"] in inside.list_collections()
        assert data.manifest["vector_store"]["target"] not in admin.list_collections()  # not in "default"
        assert HybridRetriever(open_index(s, embedder), embedder).retrieve("OpenAI London office").hits
        drop_everything_named(inside, s.milvus_collection)
        inside.close()
    finally:
        admin.drop_database(db)
        admin.close()
    absent = store_settings.model_copy(update={"milvus_db_name": f"absent_{uuid.uuid4().hex[:8]}"})
    with pytest.raises(VectorStoreError, match="RAG_MILVUS_DB_NAME"):
        build_index(absent, embedder, progress=False)
