"""Replaying a run's drafts for the one answer/refuse gate: each item as shown and as refused."""

from __future__ import annotations

from rag.evaluation.gate_cv import replay_items
from rag.evaluation.harness import run_eval


def test_each_generated_item_is_scored_as_shown_and_as_refused_with_its_signals(
    tmp_path, eval_pipeline, tiny_items, qa_file, settings
):
    pipe, gen = eval_pipeline()
    run_eval(pipe, tiny_items, tmp_path / "run", progress=False, report=False)
    calls = len(gen.prompts)
    items = {it.id: it for it in replay_items(pipe, tmp_path / "run", qa_file, settings.corpus_dir)}
    assert len(gen.prompts) == calls  # no model call
    assert set(items) == {"q1", "q2", "q4", "q5"}  # q3 was refused before the model was asked
    for it in items.values():
        assert it.refused["refused"] and not it.refused["partial"]
        assert {"support", "draft_score", "top_sentence", "coverage", "best_dense"} <= set(it.signals)
        assert it.signals["draft_score"] >= it.signals["support"]
    q1 = items["q1"]
    assert not q1.shown["refused"] and q1.shown["key_fact_accuracy"] == q1.shipped["key_fact_accuracy"] == 1.0
    assert q1.refused["key_fact_accuracy"] == 0.0
    # The model refused q5 although a passage says it: a passing gate shows that passage quoted.
    assert items["q5"].shown["partial"] and not items["q5"].shown["refused"]
