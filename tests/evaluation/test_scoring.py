"""Per-item scoring of hand-built answers, and the summary over hand-built records."""

from __future__ import annotations

import pytest

from rag.evaluation.qaset import QAItem
from rag.evaluation.scoring import SUMMARY_KEYS, claims, quote_spans, score_answer, score_retrieval, summarise
from rag.types import Answer, Chunk, Hit, SentenceCheck, Timings

BODY = "Alpha beta. Gamma delta. Alpha beta."


def _item(**kw) -> QAItem:
    base = dict(
        id="x",
        question="q?",
        answer="Gamma delta.",
        answerable=True,
        doc_ids=["d"],
        quotes=["Gamma delta."],
        key_facts=["gamma"],
        type="factoid",
        split="dev",
    )
    return QAItem(**{**base, **kw})


def _hit(doc_id: str, start: int, end: int) -> Hit:
    return Hit(Chunk(f"{doc_id}#{start}", doc_id, "text", start, end), 1.0)


def test_quote_spans_finds_every_occurrence_in_every_document():
    item = _item(doc_ids=["d", "e"], quotes=["Alpha beta.", "delta"])
    spans = quote_spans(item, {"d": BODY, "e": "no match here"})
    assert spans == [[("d", 0, 11), ("d", 25, 36)], [("d", 18, 23)]]


def test_score_retrieval_by_hand():
    item = _item(doc_ids=["d", "e"], quotes=["Gamma delta."])
    quotes = quote_spans(item, {"d": BODY})  # [("d", 12, 24)]
    hits = [_hit("f", 0, 10), _hit("d", 0, 11), _hit("d", 20, 30)]
    s = score_retrieval(item, hits, quotes)
    assert s == {"hit_at_1": 0.0, "hit_at_5": 1.0, "recall_at_5": 0.5, "mrr": 0.5, "quote_recall_at_5": 1.0}


def test_score_retrieval_is_undefined_for_unanswerable_items():
    item = _item(answerable=False, doc_ids=[], quotes=[], key_facts=[], type="unanswerable")
    assert set(score_retrieval(item, [_hit("d", 0, 5)], []).values()) == {None}


def _answer(raw: str, final: str, sentences: list[SentenceCheck], hits: list[Hit], refused: bool = False) -> Answer:
    return Answer(
        "q?",
        final,
        refused,
        [],
        hits,
        Timings(retrieve_s=0.5, ttft_s=1.5, total_s=4.5),
        "m",
        raw_answer=raw,
        sentences=sentences,
        tokens=20,
    )


def test_claims_count_gold_overlap_or_the_check_as_support():
    hits = [_hit("d", 0, 11), _hit("d", 10, 30), _hit("e", 0, 50)]
    quotes = [[("d", 12, 24)]]  # only passage 2 overlaps the gold quote
    raw = "Gamma delta [1]. Beta is alpha [3][1]. The documents do not say more."
    checks = [
        SentenceCheck("Gamma delta.", [2], True, 0.9),  # the check moved it to passage 2
        SentenceCheck("Beta is alpha.", [3], True, 0.6),
        SentenceCheck("The documents do not say more.", [], True, 0.0),
    ]
    got = claims(_answer(raw, "", checks, hits), quotes)
    # sentence 1 cites 1: not gold, not accepted -> no support; sentence 2 cites 3 (accepted) and 1;
    # sentence 3 says the documents do not say: not a claim
    assert got == [([1], set()), ([3, 1], {3})]


def test_score_answer_by_hand():
    item = _item(answer="Gamma delta is here.", key_facts=["gamma", "delta"])
    hits = [_hit("d", 0, 11), _hit("d", 10, 30)]
    quotes = quote_spans(item, {"d": BODY})
    raw = "Gamma delta is here [2] [7]."
    checks = [SentenceCheck("Gamma delta is here.", [2], True, 0.9)]
    s = score_answer(item, _answer(raw, "Gamma delta is here [1].", checks, hits), quotes)
    assert s["key_fact_accuracy"] == 1.0
    assert s["answer_f1"] == 1.0 and s["rouge_l"] == 1.0  # markers are stripped before comparing
    assert s["citation_validity"] == 0.5  # [7] names no passage
    assert s["citation_precision"] == 0.5 and s["citation_recall"] == 1.0
    assert s["refused"] is False and s["answerable"] is True
    assert s["ttft_s"] == 1.5 and s["total_s"] == 4.5 and s["decode_s"] == 3.0 and s["tokens"] == 20


def test_a_refused_answer_scores_no_key_facts_and_no_citations():
    item = _item(key_facts=["gamma"])
    refused = Answer(
        "q?",
        "I can't find that in the documents.",
        True,
        [],
        [_hit("d", 0, 11)],
        Timings(retrieve_s=0.2, total_s=0.2),
        "m",
    )
    s = score_answer(item, refused, quote_spans(item, {"d": BODY}))
    assert s["key_fact_accuracy"] == 0.0
    assert s["citation_validity"] is None and s["citation_precision"] is None and s["citation_recall"] is None
    assert s["ttft_s"] is None and s["decode_s"] is None  # never reached the model
    assert s["refused"] is True


def _record(**scores) -> dict:
    return {"scores": scores}


def test_summarise_by_hand():
    records = [
        _record(
            hit_at_5=1.0,
            answer_f1=0.5,
            refused=False,
            answerable=True,
            ttft_s=1.0,
            total_s=3.0,
            tokens=21,
            decode_s=2.0,
        ),
        _record(
            hit_at_5=0.0,
            answer_f1=None,
            refused=True,
            answerable=True,
            ttft_s=None,
            total_s=1.0,
            tokens=0,
            decode_s=None,
        ),
        _record(hit_at_5=None, refused=True, answerable=False, ttft_s=2.0, total_s=5.0, tokens=41, decode_s=3.0),
    ]
    s = summarise(records)
    assert set(SUMMARY_KEYS) <= set(s)
    assert s["n"] == 3
    assert s["hit_at_5"] == 0.5 and s["answer_f1"] == 0.5
    assert s["refusal_precision"] == 0.5 and s["refusal_recall"] == 1.0 and s["false_refusal_rate"] == 0.5
    assert s["ttft_p50_s"] == 1.5 and s["total_p50_s"] == 3.0
    assert s["total_p95_s"] == pytest.approx(4.8)  # pos 1.9 of [1, 3, 5]: 3 + 0.9 * 2
    assert s["tokens_per_s"] == 12.0  # 20 + 40 tokens after the first, over 2 + 3 s
    assert s["mrr"] is None  # no record defines it


def test_summarise_retrieval_only_records_has_no_refusal_metrics():
    s = summarise([_record(hit_at_5=1.0, answerable=True, retrieve_s=0.1)])
    assert s["hit_at_5"] == 1.0 and s["refusal_recall"] is None and s["tokens_per_s"] is None
    assert s["retrieve_p50_s"] == 0.1


def test_gold_citation_scores_judge_the_final_answer_against_gold_quotes():
    from rag.evaluation.scoring import gold_claims
    from rag.types import Citation

    item = _item()
    quotes = quote_spans(item, {"d": BODY})  # gold quote at ("d", 12, 24)
    hits = [_hit("d", 10, 26), _hit("d", 0, 11)]
    cites = [
        Citation(1, "d", "", "", "", 10, 20, chunk_id=hits[0].chunk.chunk_id),
        Citation(2, "d", "", "", "", 0, 5, chunk_id=hits[1].chunk.chunk_id),
    ]
    ans = _answer("", "Gamma delta [1][2]. Alpha beta [2].", [], hits)
    ans.citations = cites
    # sentence 1 cites 1 (on the gold quote) and 2 (not); sentence 2 cites only 2
    assert gold_claims(ans, quotes) == [([1, 2], {1}), ([2], set())]
    s = score_answer(item, ans, quotes)
    assert s["citation_precision_gold"] == pytest.approx(1 / 3)
    assert s["citation_recall_gold"] == 0.5
    ans.refused = True
    assert gold_claims(ans, quotes) is None
