"""Each metric on small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from rag.evaluation import metrics as m
from rag.text import marker_numbers, strip_markers

RETRIEVED = ["a", "b", "a", "c", "d", "e"]  # doc ids of six passages, best first


def test_hit_at_k():
    assert m.hit_at_k(RETRIEVED, {"b"}, 1) == 0.0
    assert m.hit_at_k(RETRIEVED, {"b"}, 2) == 1.0
    assert m.hit_at_k(RETRIEVED, {"e"}, 5) == 0.0  # sixth passage is past the cut-off
    assert m.hit_at_k([], {"a"}, 5) == 0.0


def test_recall_at_k_counts_each_gold_doc_once():
    assert m.recall_at_k(RETRIEVED, {"a", "z"}, 5) == 0.5  # a found (twice), z not
    assert m.recall_at_k(RETRIEVED, {"a", "c", "e"}, 5) == pytest.approx(2 / 3)
    assert m.recall_at_k(RETRIEVED, set(), 5) == 0.0


def test_reciprocal_rank_uses_the_first_gold_passage():
    assert m.reciprocal_rank(RETRIEVED, {"c", "d"}) == 0.25  # c at rank 4
    assert m.reciprocal_rank(RETRIEVED, {"a"}) == 1.0
    assert m.reciprocal_rank(RETRIEVED, {"z"}) == 0.0


def test_spans_overlap_is_half_open_and_per_document():
    assert m.spans_overlap(("d", 0, 5), ("d", 4, 9))
    assert not m.spans_overlap(("d", 0, 5), ("d", 5, 9))  # touching is not overlapping
    assert not m.spans_overlap(("d", 0, 5), ("e", 0, 5))
    assert m.spans_overlap(("d", 2, 3), ("d", 0, 10))  # containment


def test_quote_recall_at_k():
    quotes = [
        [("d", 10, 20)],  # overlaps chunk 1
        [("d", 100, 110), ("e", 0, 5)],  # second occurrence overlaps chunk 2
        [("d", 500, 510)],  # only overlaps chunk 3, which is past k=2
    ]
    chunks = [("d", 0, 15), ("e", 3, 50), ("d", 490, 600)]
    assert m.quote_recall_at_k(quotes, chunks, 2) == pytest.approx(2 / 3)
    assert m.quote_recall_at_k(quotes, chunks, 3) == 1.0
    assert m.quote_recall_at_k([], chunks, 5) == 0.0


def test_strip_markers():
    assert strip_markers("It is 5 [1][2].") == "It is 5."
    assert strip_markers("A [1, 3], B [2].") == "A, B."


def test_key_facts_present_needs_every_fact_ignoring_case_and_spacing():
    assert m.key_facts_present("OpenAI, maker of  ChatGPT", ["openai", "maker of chatgpt"]) == 1.0
    assert m.key_facts_present("OpenAI", ["openai", "chatgpt"]) == 0.0
    assert m.key_facts_present("the UK’s plan", ["UK's plan"]) == 1.0  # curly apostrophe


def test_normalize_answer():
    assert m.normalize_answer("The UK’s  plan, an idea!") == "uks plan idea"


def test_answer_f1():
    # pred {cat, sat}, ref {cat, ran}: 1 common, P = R = 1/2, F1 = 1/2
    assert m.answer_f1("the cat sat", "a cat ran") == 0.5
    # pred 4 tokens, ref 2, 2 common: P = 1/2, R = 1, F1 = 2/3
    assert m.answer_f1("cat cat sat mat", "cat cat") == pytest.approx(2 / 3)
    assert m.answer_f1("dog", "cat") == 0.0
    assert m.answer_f1("", "") == 1.0
    assert m.answer_f1("the", "cat") == 0.0  # nothing left of the prediction after normalising


def test_lcs_and_rouge_l():
    assert m.lcs_length("abcd", "acbd") == 3
    assert m.lcs_length([], ["a"]) == 0
    # LCS(cat sat mat, cat on mat) = cat mat = 2; P = R = 2/3
    assert m.rouge_l("cat sat mat", "cat on mat") == pytest.approx(2 / 3)
    # LCS = 2 of pred 2, ref 4: P = 1, R = 1/2, F = 2/3
    assert m.rouge_l("cat mat", "cat sat on mat") == pytest.approx(2 / 3)
    assert m.rouge_l("dog", "cat") == 0.0


def test_marker_numbers_and_citation_validity():
    assert marker_numbers("A [1]. B [2, 9][1]; C [3;4].") == [1, 2, 9, 1, 3, 4]
    assert m.citation_validity("A [1]. B [4].", 3) == 0.5
    assert m.citation_validity("A [0] [1] [2].", 2) == pytest.approx(2 / 3)  # [0] is not a passage
    assert m.citation_validity("no markers", 3) is None


def test_citation_precision_and_recall():
    # sentence 1 cites 1 and 2, only 1 supports; sentence 2 cites 3, which supports;
    # sentence 3 cites nothing.
    claims = [([1, 2], {1}), ([3], {3}), ([], {1})]
    assert m.citation_precision(claims) == pytest.approx(2 / 3)  # 2 of 3 citations support
    assert m.citation_recall(claims) == pytest.approx(2 / 3)  # 2 of 3 sentences have one
    assert m.citation_precision([([], set())]) is None
    assert m.citation_recall([]) is None


def test_refusal_metrics():
    refused = [True, True, False, False, True]
    answerable = [False, True, True, False, False]
    # refusals: items 1, 2, 5; right ones (unanswerable): 1, 5 -> 2/3
    assert m.refusal_precision(refused, answerable) == pytest.approx(2 / 3)
    # unanswerable: items 1, 4, 5; refused: 1, 5 -> 2/3
    assert m.refusal_recall(refused, answerable) == pytest.approx(2 / 3)
    # answerable: items 2, 3; refused: 2 -> 1/2
    assert m.false_refusal_rate(refused, answerable) == 0.5
    assert m.refusal_precision([False], [True]) is None
    assert m.refusal_recall([False], [True]) is None
    assert m.false_refusal_rate([True], [False]) is None


def test_mean_percentile_and_throughput():
    assert m.mean([1.0, None, 0.0]) == 0.5
    assert m.mean([None]) is None
    assert m.percentile([4, 1, 3, 2], 50) == 2.5
    assert m.percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)  # pos 3.8: 4 + 0.8 * (5 - 4)
    assert m.percentile([7], 95) == 7
    assert m.percentile([], 50) is None
    assert m.tokens_per_s([10, 30], [1.0, 3.0]) == 10.0
    assert m.tokens_per_s([], []) is None
