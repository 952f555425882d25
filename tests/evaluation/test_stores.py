"""The store-agreement check over the tiny corpus with the hashed fake embedder, on FAISS and Milvus
Lite (all in tmp_path), and its verdict on hand-made figures."""

from __future__ import annotations

import shutil

import pytest

from rag.errors import BadInputError
from rag.evaluation.milvus_server import INSTALL_HINT, free_port, lite_server, lite_server_binary
from rag.evaluation.stores import (
    AGREE,
    DISAGREE,
    INCOMPLETE,
    CachingEmbedder,
    StoreRun,
    agreement,
    compare_stores,
    render,
    run_store,
    store_settings,
)
from rag.stores import factory
from tests.stores.conftest import needs_milvus_lite


def _run(store: str, hit_at_5: float | None) -> StoreRun:
    if hit_at_5 is None:
        return StoreRun(store, skipped="no server")
    return StoreRun(store, {"n": 10, "hit_at_1": 0.5, "hit_at_5": hit_at_5, "mrr": 0.6})


@pytest.mark.parametrize(
    ("lite", "server", "code", "largest"),
    [
        (0.80, 0.80, AGREE, 0.0),
        (0.79, 0.81, AGREE, 0.01),  # within 0.01 either way
        (0.80, 0.82, DISAGREE, 0.02),
        (0.78, None, DISAGREE, 0.02),  # a disagreement outranks a store that could not run
        (0.80, None, INCOMPLETE, 0.0),
    ],
)
def test_the_verdict_allows_0_01_either_way_and_no_more(lite, server, code, largest):
    verdict = agreement([_run("faiss", 0.80), _run("milvus-lite", lite), _run("milvus-server", server)])
    assert verdict.exit_code == code
    assert verdict.largest == pytest.approx(largest)
    assert verdict.disagree == (["milvus-server"] if server == 0.82 else ["milvus-lite"] if lite == 0.78 else [])


def test_faiss_alone_is_incomplete_and_faiss_must_come_first():
    assert agreement([_run("faiss", 0.8)]).exit_code == INCOMPLETE
    with pytest.raises(BadInputError, match="the first store must be faiss"):
        agreement([_run("milvus-lite", 0.8), _run("faiss", 0.8)])


def test_the_caching_embedder_embeds_each_text_once(embedder):
    cached = CachingEmbedder(embedder)
    first = cached.embed_documents(["a cat", "a dog", "a cat"])
    again = cached.embed_documents(["a dog", "a cat"])
    assert (cached.embedded, cached.reused, embedder.calls) == (2, 3, 1)
    assert (again == first[[1, 0]]).all() and (first[0] == embedder.embed_documents(["a cat"])[0]).all()
    cached.embed_query("cat")[:] = 0  # a caller changing its copy does not change the cache
    assert cached.embed_query("cat").any() and embedder.calls == 3


@needs_milvus_lite
def test_faiss_and_milvus_lite_agree_on_the_tiny_set(settings, embedder, tiny_items, tmp_path):
    out = tmp_path / "run"
    cached = CachingEmbedder(embedder)
    runs = compare_stores(settings, cached, tiny_items, out, stores=("milvus-lite", "faiss"))

    assert [r.store for r in runs] == ["faiss", "milvus-lite"]  # FAISS first, whatever the order given
    faiss, lite = (r.summary for r in runs)
    assert faiss["n"] == lite["n"] == 5
    # Worked out by hand: each answerable item's document is the best (q1, q2, q4, q5), q3 has none.
    assert faiss["hit_at_1"] == lite["hit_at_1"] == 1.0 and faiss["hit_at_5"] == lite["hit_at_5"] == 1.0
    assert runs[1].detail["store"] == "milvus" and runs[0].detail["store"] == "faiss"
    verdict = agreement(runs)
    assert (verdict.exit_code, verdict.largest, verdict.disagree) == (AGREE, 0.0, [])
    # The passages were embedded for FAISS's build and reused for Milvus Lite's.
    assert cached.embedded == runs[0].chunks == runs[1].chunks and cached.reused == runs[0].chunks
    assert (out / "faiss" / "results.jsonl").is_file() and (out / "milvus-lite" / "results.jsonl").is_file()
    assert not settings.index_dir.exists()  # the configured index folder is never written
    assert "AGREE" in render(runs, verdict)
    with pytest.raises(BadInputError, match="holds an earlier run"):
        compare_stores(settings, cached, tiny_items, out, stores=("faiss",))


@needs_milvus_lite
def test_a_store_that_lost_a_document_disagrees(settings, embedder, tiny_items, tmp_path):
    """Milvus Lite over a copy of the corpus without the skills plan: q4 (of four answerable items)
    loses its document, so its hit@5 is 0.75 against FAISS's 1.0."""
    faiss = run_store(
        "faiss", store_settings(settings, "faiss", tmp_path / "f"), embedder, tiny_items, tmp_path / "out" / "f"
    )
    partial = shutil.copytree(settings.corpus_dir, tmp_path / "partial")
    (partial / "skills-plan.md").unlink()
    lossy = store_settings(settings.model_copy(update={"corpus_dir": partial}), "milvus-lite", tmp_path / "l")
    lite = run_store("milvus-lite", lossy, embedder, tiny_items, tmp_path / "out" / "l")

    verdict = agreement([faiss, lite])
    assert lite.summary["hit_at_5"] == 0.75 and verdict.largest == pytest.approx(0.25)
    assert (verdict.exit_code, verdict.disagree) == (DISAGREE, ["milvus-lite"])
    text = render([faiss, lite], verdict)
    assert "milvus-lite: hit@5 differs from FAISS on 1 items (q4 1→0)" in text and "DISAGREE" in text


def test_a_server_that_does_not_answer_is_skipped_with_the_reason(
    settings, embedder, tiny_items, tmp_path, monkeypatch
):
    monkeypatch.setattr(factory, "CONNECT_TIMEOUT", 1.0)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    runs = compare_stores(
        settings, embedder, tiny_items, tmp_path / "run", stores=("faiss", "milvus-server"), server_uri=uri
    )
    assert runs[1].summary is None and f"cannot reach the Milvus server at {uri}" in runs[1].skipped
    verdict = agreement(runs)
    assert verdict.exit_code == INCOMPLETE and verdict.skipped == ["milvus-server"]
    assert "milvus-server did not run: cannot reach" in render(runs, verdict)


@pytest.mark.milvus_server
@pytest.mark.skipif(lite_server_binary() is None, reason=INSTALL_HINT)
def test_a_named_server_agrees_and_keeps_no_collection(settings, embedder, tiny_items, tmp_path):
    from pymilvus import MilvusClient

    with lite_server(tmp_path / "engine") as uri:
        runs = compare_stores(
            settings, embedder, tiny_items, tmp_path / "run", stores=("milvus-server",), server_uri=uri
        )
        assert [r.store for r in runs] == ["faiss", "milvus-server"] and runs[1].detail["uri"] == uri
        assert agreement(runs).exit_code == AGREE and runs[1].summary["hit_at_5"] == 1.0
        client = MilvusClient(uri=uri)
        assert not [c for c in client.list_collections() if c.startswith("rag_stores_agree_")]
        client.close()
