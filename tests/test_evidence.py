from rag.evidence import ranked_sentences
from rag.types import Chunk, Hit
from tests.fakes import HashEmbedder

TEXT = "Ferries run daily. The breakwater costs £40 million. It opens in 2026. Tickets are sold on board."


def _hits() -> list[Hit]:
    other = "Fish quotas were set. Nothing else happened."
    return [Hit(Chunk("a#0", "a", TEXT, 100, 100 + len(TEXT)), 1.0), Hit(Chunk("b#0", "b", other, 0, len(other)), 0.5)]


def test_sentences_are_ranked_against_the_question_with_their_spans():
    hits = _hits()
    ranked = ranked_sentences("How much does the breakwater cost?", hits, HashEmbedder())
    best = ranked[0]
    assert best.hit == 0 and best.text(hits) == "The breakwater costs £40 million."
    assert [q.score for q in ranked] == sorted((q.score for q in ranked), reverse=True)
    assert ranked_sentences("anything", [], HashEmbedder()) == []
