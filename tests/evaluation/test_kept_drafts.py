"""The drafts kept in `evals/drafts/` are whole runs of today's reference set, and their summaries
are what their records add up to, so a replay of them measures a change on the same questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evaluation.qaset import SPLITS, read_jsonl
from rag.evaluation.records import recorded_results
from rag.evaluation.scoring import summarise

REPO = Path(__file__).resolve().parents[2]
KEPT = sorted(p for p in (REPO / "evals" / "drafts").iterdir() if p.is_dir())
QUESTIONS = {d["id"]: d for _, d in read_jsonl(REPO / "evals" / "qa.jsonl")}


def test_every_split_has_kept_drafts():
    assert [p.name for p in KEPT] == sorted(SPLITS)


@pytest.mark.parametrize("run", KEPT, ids=[p.name for p in KEPT])
def test_kept_drafts_cover_their_split_as_it_is_now_and_add_up_to_their_summary(run: Path):
    records = recorded_results(run)
    split = {i for i, d in QUESTIONS.items() if d["split"] == run.name}
    assert {r["id"] for r in records} == split, "the split changed since these drafts were made: generate them again"
    for r in records:  # a changed question makes its draft an answer to another question
        assert r["question"] == QUESTIONS[r["id"]]["question"], r["id"]
    assert json.loads((run / "run.json").read_text())["mode"] == "full"
    summary = json.loads((run / "summary.json").read_text())
    again = summarise(records)
    for key in ("n", "key_fact_accuracy", "false_refusal_rate", "refusal_recall", "citation_precision_gold"):
        assert again[key] == pytest.approx(summary[key]), key
