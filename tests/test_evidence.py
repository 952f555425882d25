from rag.evidence import tighten
from rag.types import Chunk, Hit
from tests.fakes import HashEmbedder

TEXT = "Ferries run daily. The breakwater costs £40 million. It opens in 2026. Tickets are sold on board."


def _hits() -> list[Hit]:
    other = "Fish quotas were set. Nothing else happened."
    return [Hit(Chunk("a#0", "a", TEXT, 100, 100 + len(TEXT)), 1.0), Hit(Chunk("b#0", "b", other, 0, len(other)), 0.5)]


def test_passages_are_cut_to_their_best_sentences_with_offsets_kept():
    out = tighten("How much does the breakwater cost?", _hits(), HashEmbedder(), max_sentences=1, neighbours=0)
    assert [h.chunk.doc_id for h in out] == ["a"]  # the passage with no kept sentence is dropped
    c = out[0].chunk
    assert c.text == "The breakwater costs £40 million."
    assert TEXT[c.start - 100 : c.end - 100] == c.text


def test_neighbours_widen_the_window_and_zero_keeps_everything():
    out = tighten("How much does the breakwater cost?", _hits(), HashEmbedder(), max_sentences=1, neighbours=1)
    assert out[0].chunk.text == "Ferries run daily. The breakwater costs £40 million. It opens in 2026."
    assert tighten("anything", _hits(), HashEmbedder(), max_sentences=0) == _hits()
