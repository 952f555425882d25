from rag.chunking import chunk_document
from rag.retrieval import HybridRetriever, jaccard, rrf
from rag.types import Document


def test_rrf_by_hand():
    fused = dict(rrf([[7, 3], [3]], k=60))
    assert fused[3] == 1 / 62 + 1 / 61
    assert fused[7] == 1 / 61
    assert list(dict(rrf([[7, 3], [3]], k=60))) == [3, 7]


def test_jaccard():
    assert jaccard({"a", "b"}, {"b", "c"}) == 1 / 3


def test_hybrid_finds_the_right_document(index_data, embedder):
    r = HybridRetriever(index_data, embedder, candidates=10)
    res = r.retrieve("Will Cohere build data centres in Canada?", k=2)
    assert res.hits[0].chunk.doc_id == "cohere-mou"
    assert res.hits[0].dense_rank == 1 and res.hits[0].lexical_rank == 1
    assert res.best_dense > 0.3


def test_near_duplicates_are_removed_and_documents_can_be_added_and_removed(index_data, embedder):
    r = HybridRetriever(index_data, embedder, candidates=10)
    copy = Document(
        doc_id="copy",
        title="Memorandum with Cohere",
        body="Cohere will explore data centres in Canada and the United Kingdom.",
    )
    r.add_documents([copy], chunk_document(copy))
    hits = r.retrieve("Cohere data centres Canada United Kingdom", k=5).hits
    texts = [h.chunk.text for h in hits]
    assert texts.count("Cohere will explore data centres in Canada and the United Kingdom.") == 1
    r.remove_document("copy")
    assert "copy" not in r.documents and all(c.doc_id != "copy" for c in r.chunks)
    assert len(r.data.vectors) == len(r.chunks)


def test_rare_terms_count_documents_and_follow_uploads(index_data, embedder):
    r = HybridRetriever(index_data, embedder, candidates=10)
    assert r.rare_terms("What is Cohere doing?", 1) == ["cohere"]  # in one of the three documents
    assert r.rare_terms("What is Cohere doing?", 0) == []
    doc = Document("extra", "Extra", "Cohere also trains staff. Cohere again.", publisher="T")
    r.add_documents([doc], chunk_document(doc, 300, 40))
    assert "cohere" not in r.rare_terms("Cohere", 1) and r.rare_terms("Cohere", 2) == ["cohere"]
    r.remove_document("extra")
    assert r.rare_terms("Cohere", 1) == ["cohere"]


def test_a_second_query_joins_the_fusion_and_the_ranks_stay_the_first_querys(index_data, embedder):
    r = HybridRetriever(index_data, embedder, candidates=10)
    alone = r.retrieve("Cohere data centres Canada", k=2)
    both = r.retrieve("Cohere data centres Canada", k=2, also=("London office staff",))
    assert "openai-deal#0002" not in [h.chunk.chunk_id for h in alone.hits]
    assert {h.chunk.chunk_id for h in both.hits} == {"openai-deal#0002", "cohere-mou#0000"}
    cohere = next(h for h in both.hits if h.chunk.doc_id == "cohere-mou")
    assert (cohere.dense_rank, cohere.lexical_rank) == (1, 1)
    assert both.best_dense == max(alone.best_dense, r.retrieve("London office staff", k=2).best_dense)
    assert [h.chunk.chunk_id for h in r.retrieve("Cohere data centres Canada", k=2, also=()).hits] == [
        h.chunk.chunk_id for h in alone.hits
    ]
