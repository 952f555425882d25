"""Milvus Lite behind the seam: rankings against brute force, BM25 in the engine, clear errors."""

from pathlib import Path

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


# --- index type, search parameters, passage text, alias swap, TLS and database settings ---


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(20, dim))[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def rows(n: int, doc: str = "d", seed: int = 0):
    chunks = [chunk(i, f"passage {i} of {doc}", doc=doc) for i in range(n)]
    return chunk_keys(chunks), clustered(n, seed=seed), chunks


@pytest.fixture
def lite_client(lite_settings):
    client = factory.connect(lite_settings)
    yield client
    client.close()


def milvus_store(client, lite_settings, name: str = "rag_t", requested: str = "auto", info=None):
    from rag.stores.milvus import MilvusIndex

    return MilvusIndex(client, name, 16, factory.milvus_uri(lite_settings)[0], requested, info)


def test_lite_refuses_hnsw_so_the_store_falls_back_and_records_why(lite_client, lite_settings, caplog):
    store = milvus_store(lite_client, lite_settings, requested="hnsw")
    ids, v, chunks = rows(50)
    with caplog.at_level("WARNING", logger="rag.stores.milvus"):
        store.build(ids, v, chunks)
    assert "the engine refused HNSW (invalid index type: HNSW" in caplog.text
    assert lite_client.describe_index("rag_t", "dense")["index_type"] == "FLAT"
    info = store.save(Path("unused"))
    assert (info["index"], info["index_requested"]) == ("FLAT", "hnsw")
    assert "local mode only support FLAT IVF_FLAT AUTOINDEX" in info["index_fallback"]
    assert [i for i, _ in store.search(v[7], 1)] == [ids[7]]


def test_auto_builds_ivf_flat_above_the_threshold_and_every_search_passes_nprobe(
    lite_client, lite_settings, monkeypatch
):
    from rag.stores import milvus_plan
    from tests.fakes import AliasingMilvus

    monkeypatch.setattr(milvus_plan, "EXACT_MAX", 100)
    spy = AliasingMilvus(lite_client, aliases=False)  # Lite, recording each call
    store = milvus_store(spy, lite_settings)
    ids, v, chunks = rows(300)
    store.build(ids, v, chunks)
    described = lite_client.describe_index("rag_t", "dense")
    assert (described["index_type"], described["nlist"]) == ("IVF_FLAT", "68")  # 4 * isqrt(300)
    assert store.save(Path("unused"))["search_params"] == {"nprobe": 32}
    store.search(v[3], 5)
    store.hybrid_search(v[3], "passage 3", 5)
    store.keyword_search("passage 3", 5)
    dense = [kw["search_params"] for a, kw in spy.called("search") if kw["anns_field"] == "dense"]
    assert dense == [{"metric_type": "IP", "params": {"nprobe": 32}}]
    reqs = spy.called("hybrid_search")[0][0][1]  # (collection, requests, ranker)
    assert reqs[0].param == {"metric_type": "IP", "params": {"nprobe": 32}}
    brute = [int(ids[i]) for i in np.argsort(-(v @ v[3]))[:5]]
    assert [i for i, _ in store.search(v[3], 5)] == brute  # Lite searches small segments exactly


def test_passages_are_kept_in_the_collection_cut_on_a_character_boundary(lite_client, lite_settings):
    from rag.stores.milvus import VARCHAR_MAX, fit_utf8

    texts = ["Le café coûte 3 €.", "é" * 40_000]  # the second is 80,000 bytes in UTF-8
    chunks = [chunk(i, t, doc=f"doc{i}") for i, t in enumerate(texts)]
    ids = chunk_keys(chunks)
    store = milvus_store(lite_client, lite_settings)
    store.build(ids, clustered(2), chunks)
    got = store.passages([int(ids[0]), int(ids[1]), 12345])
    assert set(got) == {int(ids[0]), int(ids[1])}
    assert got[int(ids[0])] == {"chunk_id": "doc0#0000", "doc_id": "doc0", "title": "t", "text": "Le café coûte 3 €."}
    long = got[int(ids[1])]["text"]
    assert long == "é" * (VARCHAR_MAX // 2) and len(long.encode()) == 65_534  # 65,535 would split an é
    # any Milvus client reads them by field, without our code or chunks file
    raw = lite_client.query("rag_t", filter='doc_id == "doc0"', output_fields=["text", "chunk_id"])
    assert raw[0]["text"] == "Le café coûte 3 €." and raw[0]["chunk_id"] == "doc0#0000"
    assert fit_utf8("naïve", 3) == "na" and fit_utf8("abc", 3) == "abc"


def test_lite_has_no_aliases_so_a_rebuild_replaces_the_collection_in_place(lite_client, lite_settings, caplog):
    store = milvus_store(lite_client, lite_settings)
    store.build(*rows(20, "a"))
    with caplog.at_level("INFO", logger="rag.stores.milvus"):
        store.build(*rows(30, "b", seed=1))
    assert "has no aliases (Milvus Lite): rebuilding rag_t in place" in caplog.text
    assert lite_client.list_collections() == ["rag_t"] and len(store) == 30
    info = store.save(Path("unused"))
    assert (info["collection"], info["target"], info["alias"]) == ("rag_t", "rag_t", False)


def test_a_rebuild_fills_a_new_collection_then_moves_the_alias_then_drops_the_old(lite_client, lite_settings):
    from tests.fakes import AliasingMilvus

    server = AliasingMilvus(lite_client)  # Lite with a server's aliases
    store = milvus_store(server, lite_settings)
    ids_a, v_a, chunks_a = rows(40, "a")
    store.build(ids_a, v_a, chunks_a)
    first = store.target
    assert first.startswith("rag_t__") and server.aliases == {"rag_t": first}
    assert lite_client.list_collections() == [first]  # "rag_t" is only an alias
    reader = milvus_store(server, lite_settings, info=store.save(Path("unused")))  # another app instance
    assert reader.search(v_a[5], 1)[0][0] == ids_a[5] and len(reader) == 40

    server.calls.clear()
    ids_b, v_b, chunks_b = rows(25, "b", seed=1)
    store.build(ids_b, v_b, chunks_b)
    second = store.target
    assert second != first and server.aliases == {"rag_t": second}
    assert lite_client.list_collections() == [second]
    order = [(name, args[0] if args else None) for name, args, _ in server.calls]
    last_insert = max(i for i, c in enumerate(order) if c == ("insert", second))
    assert order.index(("create_collection", second)) < last_insert < order.index(("alter_alias", second))
    assert order.index(("alter_alias", second)) < order.index(("drop_collection", first))  # never without one
    # the reader was not reopened: through the alias it now searches the new collection
    assert reader.search(v_b[5], 1)[0][0] == ids_b[5] and len(reader) == 25
    saved = store.save(Path("unused"))
    assert (saved["collection"], saved["target"], saved["alias"]) == ("rag_t", second, True)


def test_a_failed_rebuild_leaves_the_live_collection_serving(lite_client, lite_settings):
    from tests.fakes import AliasingMilvus

    server = AliasingMilvus(lite_client)
    store = milvus_store(server, lite_settings)
    ids, v, chunks = rows(40, "a")
    store.build(ids, v, chunks)
    live = store.target
    server.fail_on = "insert"
    with pytest.raises(VectorStoreError, match=r"injected failure of insert\); “rag_t” is unchanged"):
        store.build(*rows(25, "b", seed=1))
    assert server.aliases == {"rag_t": live} and lite_client.list_collections() == [live]  # half-built one dropped
    assert store.target == live and store.search(v[9], 1)[0][0] == ids[9] and len(store) == 40


def test_a_collection_made_before_aliases_becomes_an_alias_of_the_new_one(lite_client, lite_settings):
    from tests.fakes import AliasingMilvus

    milvus_store(lite_client, lite_settings).build(*rows(10, "old"))  # a real collection named rag_t
    assert lite_client.list_collections() == ["rag_t"]
    server = AliasingMilvus(lite_client)
    store = milvus_store(server, lite_settings)
    ids, v, chunks = rows(15, "new", seed=1)
    store.build(ids, v, chunks)
    assert lite_client.list_collections() == [store.target] and server.aliases == {"rag_t": store.target}
    assert store.search(v[2], 1)[0][0] == ids[2] and len(store) == 15


def test_a_foreign_collection_is_not_replaced_on_a_server_either(lite_client, lite_settings):
    from tests.fakes import AliasingMilvus

    lite_client.create_collection("rag_t", dimension=4)
    with pytest.raises(VectorStoreError, match="was not made by this app"):
        milvus_store(AliasingMilvus(lite_client), lite_settings).build(*rows(5))
    assert lite_client.list_collections() == ["rag_t"]


def test_the_manifest_names_the_alias_and_its_collection_and_loads_through_them(lite_client, lite_settings):
    from tests.fakes import AliasingMilvus

    server = AliasingMilvus(lite_client)
    store = milvus_store(server, lite_settings, requested="ivf_flat")
    ids, v, chunks = rows(60)
    store.build(ids, v, chunks)
    manifest = {"vector_store": store.save(Path("unused")), "embedding_dim": 16, "chunk_count": 60}
    loaded = factory.load_store(Path("unused"), manifest, lite_settings, client=server)
    assert (loaded.collection, loaded.target, loaded.plan) == ("rag_t", store.target, store.plan)
    assert loaded.index_type == "IVF_FLAT" and loaded.describe()["search_params"] == {
        "nprobe": 28
    }  # 4 * isqrt(60) lists, all probed
    assert loaded.search(v[11], 1)[0][0] == ids[11]


def test_tls_and_database_settings_become_client_options(settings, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings.model_copy(
        update={"milvus_uri": "https://milvus.example:19530", "milvus_ca": str(ca), "milvus_db_name": "policy"}
    )
    opts = factory.client_options(s)
    assert opts["uri"] == "https://milvus.example:19530" and opts["db_name"] == "policy"
    assert opts["secure"] is True and opts["server_pem_path"] == str(ca.resolve())
    plain = factory.client_options(settings.model_copy(update={"milvus_uri": "http://h:19530"}))
    assert "secure" not in plain and "db_name" not in plain and "server_pem_path" not in plain


@pytest.mark.parametrize(
    "update, message",
    [
        ({"milvus_uri": "https://h:19530", "milvus_ca": "/nope/ca.pem"}, "RAG_MILVUS_CA='/nope/ca.pem': no such file"),
        ({"milvus_uri": "http://h:19530", "milvus_ca": "ca.pem"}, "is not a TLS server: give the server as https://"),
        ({"milvus_ca": "ca.pem"}, "is not a TLS server"),  # Milvus Lite
        ({"milvus_db_name": "policy"}, "RAG_MILVUS_DB_NAME='policy': Milvus Lite has one database"),
    ],
)
def test_tls_and_database_mistakes_are_clear_setting_errors(settings, update, message):
    with pytest.raises(BadInputError, match=message):
        factory.connect(settings.model_copy(update=update))


def test_the_database_is_part_of_the_store_label(settings, embedder):
    from rag.indexing import store_label

    s = settings.model_copy(update={"vector_store": "milvus", "milvus_collection": "c"})
    assert store_label(s, embedder) == "milvus:c"
    assert store_label(s.model_copy(update={"milvus_db_name": "policy"}), embedder) == "milvus:policy/c"


def test_a_server_that_refuses_the_first_lookup_is_a_clear_error(lite_settings):
    from tests.fakes import AliasingMilvus

    client = AliasingMilvus(factory.connect(lite_settings), fail_on="has_collection")
    with pytest.raises(VectorStoreError, match=r"refused to look up .*injected failure.*RAG_MILVUS_DB_NAME"):
        factory.make_store(lite_settings, 16, "fake", client=client)
