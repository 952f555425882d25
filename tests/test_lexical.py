import numpy as np

from rag.keywords import KeywordIndex
from rag.lexical import BM25Index, tokenize


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["data", "centre", "cohere", "openai", "skills", "plan", "london", "canada", "growth", "zone", "ai"]
    return [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(n)]


QUERIES = ["data centres in Canada", "AI growth zone", "OpenAI London skills", "ai ai data", "nothing matches"]


def test_tokenize_by_hand():
    assert tokenize("The UK's data centres") == ["uk", "data", "centre"]


def test_keyword_index_scores_exactly_as_rank_bm25():
    texts = corpus(300)
    ref = BM25Index(texts)
    idx = KeywordIndex()
    idx.add(list(range(300)), texts)
    for q in QUERIES:
        assert idx.search(q, 20) == ref.search(q, 20)  # same rows, same order, same float scores


def test_adding_and_removing_equals_a_rebuild_of_what_is_left():
    texts = corpus(200)
    idx = KeywordIndex()
    idx.add(list(range(150)), texts[:150])
    idx.add(list(range(150, 200)), texts[150:])  # an upload
    gone = set(range(40, 60))
    idx.remove(sorted(gone))
    kept = [i for i in range(200) if i not in gone]
    ref = BM25Index([texts[i] for i in kept])
    for q in QUERIES:
        got = idx.search(q, 15)
        want = [(kept[row], score) for row, score in ref.search(q, 15)]
        assert [k for k, _ in got] == [k for k, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want])
    assert len(idx) == 180


def test_empty_and_stop_word_queries_find_nothing():
    idx = KeywordIndex()
    assert idx.search("data", 5) == []
    idx.add([7, 8, 9], ["data centres", "skills plan", "growth zone"])
    assert idx.search("the of and", 5) == [] and [k for k, _ in idx.search("data", 5)] == [7]


def test_doc_freq_counts_passages_per_word_as_the_rank_bm25_index_does():
    texts = corpus(120)
    idx = KeywordIndex()
    idx.add(list(range(120)), texts)
    assert {w: n for w, n in idx.doc_freq.items() if n} == dict(BM25Index(texts).doc_freq)
    idx.remove(list(range(60)))
    assert {w: n for w, n in idx.doc_freq.items() if n} == dict(BM25Index(texts[60:]).doc_freq)
