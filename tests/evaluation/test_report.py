"""Report helpers and run comparison."""

from __future__ import annotations

from rag.evaluation.report import compare_summaries, comparison_table, fmt, item_score, table


def test_fmt_and_table():
    assert fmt(0.12345) == "0.123" and fmt(None) == "–" and fmt(7) == "7" and fmt("x") == "x"
    assert table(["a", "b"], [[1, 0.5]]) == "| a | b |\n|---|---|\n| 1 | 0.500 |"


def test_item_score():
    assert item_score({"answerable": True, "scores": {"recall_at_5": 1.0, "answer_f1": 0.5, "mrr": None}}) == 0.75
    assert item_score({"answerable": False, "scores": {"refused": True}}) == 1.0
    assert item_score({"answerable": False, "scores": {"refused": False}}) == 0.0
    assert item_score({"answerable": False, "scores": {"refused": None}}) is None  # retrieval-only


def test_compare_summaries_rows():
    a = {"n": 10, "mrr": 0.5, "answer_f1": None, "model": "x"}
    b = {"n": 12, "mrr": 0.75, "answer_f1": 0.4, "model": "y"}
    rows = {r[0]: r for r in compare_summaries(a, b)}
    assert rows["mrr"] == ("mrr", 0.5, 0.75, 0.25)
    assert rows["n"] == ("n", 10, 12, 2)
    assert rows["answer_f1"] == ("answer_f1", None, 0.4, None)
    assert rows["model"] == ("model", "x", "y", None)
    text = comparison_table(a, b, ("runA", "runB"))
    assert text.splitlines()[0] == "| metric | runA | runB | delta |"
    assert "| mrr | 0.500 | 0.750 | +0.250 |" in text
    assert "| n | 10 | 12 | +2 |" in text
    assert "| answer_f1 | – | 0.400 | – |" in text
