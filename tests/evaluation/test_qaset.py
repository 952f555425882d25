"""The reference set loader and validator, on the real evals/qa.jsonl and on broken copies."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from rag.errors import BadInputError
from rag.evaluation.qaset import (
    MIN_UNANSWERABLE_SHARE,
    SPLITS,
    QAItem,
    check_coverage,
    coverage,
    load_qaset,
    read_jsonl,
    select_items,
    validate_items,
)
from tests.evaluation.conftest import TINY_SET

REPO = Path(__file__).resolve().parents[2]
REAL_SET = REPO / "evals" / "qa.jsonl"
REAL_CORPUS = REPO / "corpus"


@pytest.fixture(scope="module")
def real_items() -> list[QAItem]:
    return load_qaset(REAL_SET, REAL_CORPUS)


def test_real_set_is_valid():
    assert validate_items([d for _, d in read_jsonl(REAL_SET)], REAL_CORPUS) == []


def test_real_set_meets_the_size_minimums(real_items):
    c = coverage(real_items)
    assert c["items"] >= 120
    assert c["focus_doc_items"] >= 40
    assert c["other_docs"] >= 20
    assert c["follow_ups"] >= 10
    assert c["multi_doc_items"] >= 10
    assert {it.split for it in real_items} == set(SPLITS)


def test_real_set_has_enough_unanswerable_items(real_items):
    assert coverage(real_items)["unanswerable_share"] >= MIN_UNANSWERABLE_SHARE
    assert check_coverage(real_items) == []


def test_tiny_set_is_valid(settings):
    assert validate_items(TINY_SET, settings.corpus_dir) == []


def _broken(index: int, **changes) -> list[dict]:
    items = copy.deepcopy(TINY_SET)
    for key, value in changes.items():
        if value is _DELETE:
            del items[index][key]
        else:
            items[index][key] = value
    return items


_DELETE = object()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (_broken(0, question=_DELETE), "q1: missing field 'question'"),
        (_broken(0, colour="red"), "q1: unknown field 'colour'"),
        (_broken(0, answerable="yes"), "q1: 'answerable' should be a bool, not str"),
        (_broken(0, question="  "), "q1: 'question' is blank"),
        (_broken(0, type="trivia"), "q1: type 'trivia' is not one of"),
        (_broken(0, split="train"), "q1: split 'train' is not one of"),
        (_broken(1, id="q1"), "q1: duplicate id"),
        (_broken(0, doc_ids=["no-such-doc"]), "q1: document 'no-such-doc' is not in the corpus"),
        (_broken(0, quotes=["OpenAI may provide bananas"]), "q1: quote 1 ('OpenAI may provide bananas'...) is not in"),
        (_broken(0, quotes=[TINY_SET[0]["quotes"][0].replace(",", " ,")]), "q1: quote 1"),  # exact substrings only
        (_broken(2, doc_ids=["openai-deal"], answerable=False), "q3: is unanswerable but has doc_ids"),
        (_broken(2, key_facts=["x"]), "q3: is unanswerable but has key_facts"),
        (_broken(0, answerable=False), "q1: type 'list' does not agree with answerable=False"),
        (_broken(0, key_facts=[]), "q1: is answerable but has no key_facts"),
        (_broken(3, history=[]), "q4: is a follow-up with an empty history"),
        (_broken(3, history=[{"role": "system", "content": "x"}]), "q4: history turns should be"),
        (_broken(0, type="multi-doc"), "q1: is multi-doc but names fewer than two documents"),
        (_broken(0, doc_ids=["openai-deal", "cohere-mou"]), "q1: no quote comes from document 'cohere-mou'"),
        (_broken(0, key_facts=["justice system"]), "q1: key fact 'justice system' is not in the reference answer"),
        (_broken(0, quotes=[3]), "q1: 'quotes' should hold only non-blank strings"),
        ([*TINY_SET, ["not", "an", "object"]], "item 6: is a list, not a JSON object"),
    ],
)
def test_broken_items_are_reported(settings, items, expected):
    errors = validate_items(items, settings.corpus_dir)
    assert any(e.startswith(expected) for e in errors), errors


def test_load_qaset_raises_one_clear_line(tmp_path, settings):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(TINY_SET[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"bad\.jsonl:2: not valid JSON"):
        load_qaset(bad, settings.corpus_dir)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({**TINY_SET[0], "type": "trivia"}) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"broken\.jsonl: q1: type 'trivia'") as e:
        load_qaset(broken, settings.corpus_dir)
    assert "\n" not in str(e.value)
    with pytest.raises(BadInputError, match="cannot be read"):
        load_qaset(tmp_path / "missing.jsonl", settings.corpus_dir)


def test_coverage_checks_name_what_is_missing(tiny_items):
    problems = check_coverage(tiny_items)
    assert "120 items needed, 5 found" in problems
    assert "40 items citing uk-openai-partnership-article needed, 0 found" in problems
    assert "10 follow-up items needed, 1 found" in problems
    # 1 of 5 unanswerable is 20%: enough
    assert not any("unanswerable" in p for p in problems)
    answerable = [it for it in tiny_items if it.answerable]
    assert "15% unanswerable items needed, 0/4 = 0.0% found" in check_coverage(answerable)


def test_select_items(tiny_items):
    assert [it.id for it in select_items(tiny_items, "test")] == ["q2", "q4"]
    assert [it.id for it in select_items(tiny_items, None, 2)] == ["q1", "q2"]
    assert [it.id for it in select_items(tiny_items, "dev", 2)] == ["q1", "q3"]


def test_held_out_splits_are_selected_only_by_name(tiny_items):
    held = [
        dataclasses.replace(tiny_items[0], id="h1", split="holdout"),
        dataclasses.replace(tiny_items[1], id="h2", split="holdout2"),
        dataclasses.replace(tiny_items[2], id="h3", split="holdout3"),
    ]
    items = [*tiny_items, *held]
    assert not {"h1", "h2", "h3"} & {it.id for it in select_items(items)}
    assert [it.id for it in select_items(items, "holdout3")] == ["h3"]
    assert [it.id for it in select_items(items, "holdout2")] == ["h2"]
    assert [it.id for it in select_items(items, "holdout")] == ["h1"]
