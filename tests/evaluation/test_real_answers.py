"""The full answer evaluation on a small fixed subset, with the default 1.5B model (slow).

Twelve items: the first ten answerable and the first two unanswerable items of the dev split,
in file order (not picked for passing). Floors are set from the values measured when the test
was written, with room for one item to move; they catch a broken prompt, checker or harness.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evaluation.harness import run_eval
from rag.evaluation.qaset import load_qaset, select_items

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def subset():
    items = select_items(load_qaset(REPO / "evals/qa.jsonl", REPO / "corpus"), "dev")
    return [i for i in items if i.answerable][:10] + [i for i in items if not i.answerable][:2]


def test_answer_evaluation_on_a_fixed_subset(qwen15, real_pipeline, tmp_path):
    summary = run_eval(real_pipeline(qwen15), subset(), tmp_path / "run", progress=False)
    print(json.dumps(summary, indent=1))
    assert summary["n"] == 12
    assert summary["hit_at_5"] >= FLOORS["hit_at_5"]
    assert summary["key_fact_accuracy"] >= FLOORS["key_fact_accuracy"]
    assert summary["citation_validity"] >= FLOORS["citation_validity"]
    assert summary["citation_precision"] >= FLOORS["citation_precision"]
    assert summary["citation_precision_gold"] >= FLOORS["citation_precision_gold"]
    assert summary["false_refusal_rate"] <= FLOORS["false_refusal_rate_max"]
    assert summary["refusal_recall"] >= FLOORS["refusal_recall"]
    assert (tmp_path / "run" / "report.md").is_file()


# Measured 2026-11-30 on these 12 items with the shipped answer path (worked examples, focus,
# rare-word gate, citation and answer-type checks, the three-signal decision, key passage), as
# this test runs it (two llama.cpp threads): hit@5 1.0, key facts 0.8, false refusals 0.1 (1 of
# 10), refusal recall 1.0 (2 of 2); the one-thread dev run replayed (dev-final-f) gives key facts
# 0.9 and no false refusal on the same items (thread count changes a few greedy tokens). Citation
# validity 1.0, citation precision 0.833, gold citation precision 0.7. Each floor leaves room for
# one item to move (before the key passage: key facts 0.7, floor 0.6). Re-measured the same evening
# with the decision refitted on 167 dev items (support, answer type, p(refusal) unless yes/no):
# key facts 0.8, false refusals 0.1, refusal recall 1.0, citation precision 0.75, gold 0.667.
# 2026-12-03, the one gate and the statement-by-statement citation check, dev-s4 (two threads)
# replayed on these 12 items: hit@5 1.0, key facts 0.9, citation validity 1.0, precision 0.818,
# gold 0.667, false refusals 0.1, refusal recall 1.0; the key-facts floor follows (0.9 less one item).
FLOORS = {
    "hit_at_5": 0.9,
    "key_fact_accuracy": 0.8,
    "citation_validity": 0.9,
    "citation_precision": 0.7,
    "citation_precision_gold": 0.6,
    "false_refusal_rate_max": 0.2,
    "refusal_recall": 0.5,
}
