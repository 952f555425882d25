"""The evaluation harness end to end over the tiny corpus with the fake pipeline (all in tmp_path)."""

from __future__ import annotations

import json

import pytest

from rag.errors import BadInputError
from rag.evaluation.harness import retrieval_query, run_eval
from rag.evaluation.scoring import SUMMARY_KEYS
from tests.evaluation.conftest import HISTORY

REQUIRED_KEYS = {
    "n",
    "hit_at_1",
    "hit_at_5",
    "recall_at_5",
    "mrr",
    "quote_recall_at_5",
    "key_fact_accuracy",
    "answer_f1",
    "rouge_l",
    "citation_validity",
    "citation_precision",
    "citation_recall",
    "refusal_precision",
    "refusal_recall",
    "false_refusal_rate",
    "ttft_p50_s",
    "ttft_p95_s",
    "total_p50_s",
    "total_p95_s",
    "tokens_per_s",
}


def _results(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_full_run_writes_results_summary_and_report(tmp_path, eval_pipeline, tiny_items):
    pipe, _ = eval_pipeline()
    run_dir = tmp_path / "run"
    summary = run_eval(pipe, tiny_items, run_dir, progress=False)

    assert set(summary) >= REQUIRED_KEYS and set(SUMMARY_KEYS) <= set(summary)
    # Worked out by hand from conftest.REPLIES (see the comment there).
    assert summary["n"] == 5
    assert summary["hit_at_5"] == 1.0 and summary["mrr"] == 1.0 and summary["quote_recall_at_5"] == 1.0
    # q5: the model refused, but its passage names the subject, so it is quoted (partial): its key fact is there.
    assert summary["key_fact_accuracy"] == 1.0
    assert summary["citation_validity"] == pytest.approx((1 + 1 + 0.5) / 3)  # q4 cites [4] of 3 passages
    assert summary["citation_precision"] == pytest.approx((1 + 0 + 0.5) / 3)  # q2 cites the wrong passage
    assert summary["citation_recall"] == pytest.approx((1 + 0 + 1) / 3)
    assert summary["refusal_precision"] == 1.0 and summary["refusal_recall"] == 1.0
    assert summary["false_refusal_rate"] == 0.0 and summary["partial_rate"] == 0.2
    assert summary["ttft_p50_s"] > 0 and summary["tokens_per_s"] > 0
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    records = {r["id"]: r for r in _results(run_dir)}
    assert list(records) == ["q1", "q2", "q3", "q4", "q5"]
    q4 = records["q4"]
    assert q4["type"] == "follow-up"
    assert q4["standalone_question"] == "How many workers will the skills plan train?"
    assert q4["raw_answer"] == "It aims to train 7.5 million workers by 2030 [1] [4]."
    assert q4["answer"]["answer"] == "It aims to train 7.5 million workers by 2030 [1]."
    assert {"answer", "refused", "citations", "retrieved", "timings", "model"} <= set(q4["answer"])
    assert q4["sentences"][0]["supported"] is True
    assert q4["scores"]["citation_validity"] == 0.5
    assert records["q3"]["answer"]["refused"] and records["q3"]["scores"]["hit_at_5"] is None
    assert records["q5"]["answer"]["partial"] and records["q5"]["answer"]["decision"]["step"] == "evidence_excerpt"
    assert q4["answer"]["decision"]["step"] == "checked_answer"

    report = (run_dir / "report.md").read_text(encoding="utf-8")
    for heading in ("## By question type", "## By document", "## The 10 worst items", "## Plots"):
        assert heading in report
    assert "| follow-up | 1 |" in report and "| cohere-mou | 1 |" in report
    worst = report[report.index("## The 10 worst items") :]
    assert "**Decided by:** evidence_excerpt" in worst and "(passages quoted)" in worst
    for png in ("latency.png", "metrics_by_type.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report


def test_resume_skips_items_already_done(tmp_path, eval_pipeline, tiny_items):
    run_dir = tmp_path / "run"
    first, gen1 = eval_pipeline()
    run_eval(first, tiny_items[:2], run_dir, progress=False, report=False)
    assert gen1.questions() == [tiny_items[0].question, tiny_items[1].question]

    second, gen2 = eval_pipeline()
    summary = run_eval(second, tiny_items, run_dir, progress=False, report=False)
    asked = gen2.questions()
    assert tiny_items[0].question not in asked and tiny_items[1].question not in asked
    assert tiny_items[4].question in asked
    assert [r["id"] for r in _results(run_dir)] == ["q1", "q2", "q3", "q4", "q5"]
    assert summary["n"] == 5

    third, gen3 = eval_pipeline()
    run_eval(third, tiny_items, run_dir, progress=False, report=False)
    assert gen3.prompts == []  # everything was done


def test_resume_after_a_crash_mid_line(tmp_path, eval_pipeline, tiny_items):
    run_dir = tmp_path / "run"
    pipe, _ = eval_pipeline()
    run_eval(pipe, tiny_items[:1], run_dir, progress=False, report=False)
    with open(run_dir / "results.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "q2", "answ')  # the process died while writing
    summary = run_eval(pipe, tiny_items[:2], run_dir, progress=False, report=False)
    assert [r["id"] for r in _results(run_dir)] == ["q1", "q2"]
    assert summary["n"] == 2


def test_summary_covers_only_the_selected_items(tmp_path, eval_pipeline, tiny_items):
    run_dir = tmp_path / "run"
    pipe, _ = eval_pipeline()
    run_eval(pipe, tiny_items, run_dir, progress=False, report=False)
    summary = run_eval(pipe, tiny_items[:2], run_dir, progress=False, report=False)
    assert summary["n"] == 2 and summary["refusal_recall"] is None


def test_retrieval_only_run(tmp_path, eval_pipeline, tiny_items):
    pipe, gen = eval_pipeline()
    run_dir = tmp_path / "ret"
    summary = run_eval(pipe, tiny_items, run_dir, retrieval_only=True, progress=False)
    assert gen.prompts == []  # no generation, no rewriting
    assert summary["mode"] == "retrieval-only" and summary["model"] is None
    assert summary["hit_at_5"] == 1.0 and summary["retrieve_p50_s"] > 0
    for key in ("key_fact_accuracy", "answer_f1", "citation_precision", "refusal_recall", "ttft_p50_s"):
        assert summary[key] is None
    q4 = {r["id"]: r for r in _results(run_dir)}["q4"]
    assert q4["query"] == "Tell me about the skills plan. How many workers will it train?"
    assert q4["retrieved"][0]["doc_id"] == "skills-plan" and "start" in q4["retrieved"][0]
    assert (run_dir / "report.md").is_file() and (run_dir / "latency.png").is_file()


def test_a_folder_of_another_kind_of_run_is_refused(tmp_path, eval_pipeline, tiny_items):
    pipe, _ = eval_pipeline()
    run_dir = tmp_path / "run"
    run_eval(pipe, tiny_items[:1], run_dir, retrieval_only=True, progress=False, report=False)
    with pytest.raises(BadInputError, match="holds results of a different run.*mode='retrieval-only'"):
        run_eval(pipe, tiny_items, run_dir, progress=False)


def test_retrieval_query_prefixes_the_last_user_turn(tiny_items):
    assert retrieval_query(tiny_items[0]) == tiny_items[0].question
    assert retrieval_query(tiny_items[3]) == f"{HISTORY[0]['content']} How many workers will it train?"


def test_a_run_kept_gzipped_replays_as_the_plain_one(tmp_path, eval_pipeline, tiny_items):
    import gzip
    import shutil

    from rag.evaluation.harness import replay_eval

    pipe, _ = eval_pipeline()
    run_eval(pipe, tiny_items, tmp_path / "run", progress=False, report=False)
    kept = tmp_path / "kept"
    kept.mkdir()
    shutil.copy(tmp_path / "run" / "run.json", kept / "run.json")
    with open(tmp_path / "run" / "results.jsonl", "rb") as src, gzip.open(kept / "results.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = replay_eval(pipe, tiny_items, tmp_path / "run", tmp_path / "a", progress=False)
    packed = replay_eval(pipe, tiny_items, kept, tmp_path / "b", progress=False)
    assert packed == plain and packed["n"] == len(tiny_items)
    with pytest.raises(BadInputError, match="not a run folder"):
        replay_eval(pipe, tiny_items, tmp_path / "nowhere", tmp_path / "c", progress=False)


def test_replay_re_decides_recorded_answers_without_the_model(tmp_path, eval_pipeline, tiny_items):
    from rag.evaluation.harness import replay_eval

    pipe, gen = eval_pipeline()
    first = run_eval(pipe, tiny_items, tmp_path / "run", progress=False, report=False)
    calls = len(gen.prompts)
    again = replay_eval(pipe, tiny_items, tmp_path / "run", tmp_path / "replayed", progress=False)
    assert len(gen.prompts) == calls  # no model call
    for key in ("key_fact_accuracy", "refusal_recall", "false_refusal_rate", "citation_precision_gold"):
        assert again[key] == first[key], key
    with pytest.raises(BadInputError):
        run_eval(pipe, tiny_items, tmp_path / "ret", retrieval_only=True, progress=False, report=False)
        replay_eval(pipe, tiny_items, tmp_path / "ret", tmp_path / "x", progress=False)
