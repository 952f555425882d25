"""Batch answering: question files, one Answer JSON per line, resume, clear errors."""

from __future__ import annotations

import json

import pytest

from rag.errors import BadInputError
from rag.evaluation.batch import read_questions, run_batch
from rag.pipeline import MAX_QUESTION_CHARS
from tests.evaluation.conftest import HISTORY, REPLIES


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_text_file_questions_use_line_numbers(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("First question?\n\n  Second one?  \n", encoding="utf-8")
    qs = read_questions(path)
    assert [(q.id, q.question) for q in qs] == [(1, "First question?"), (3, "Second one?")]


def test_jsonl_questions_with_ids_and_history(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"id": "a", "question": "Q1?"})
        + "\n\n"
        + json.dumps({"question": "Q2?", "history": HISTORY})
        + "\n",
        encoding="utf-8",
    )
    qs = read_questions(path)
    assert [(q.id, q.question) for q in qs] == [("a", "Q1?"), (3, "Q2?")]
    assert qs[1].history == HISTORY


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("q.jsonl", '{"question": "ok?"}\n{broken\n', r"q\.jsonl:2: not valid JSON"),
        ("q.jsonl", '["a list"]\n', r"q\.jsonl:1: expected a JSON object"),
        ("q.jsonl", '{"id": "a"}\n', r'q\.jsonl:1: "question" is missing'),
        ("q.jsonl", '{"question": "  "}\n', r'q\.jsonl:1: "question" is missing, blank'),
        ("q.jsonl", '{"question": "x", "id": [1]}\n', r'q\.jsonl:1: "id" should be'),
        ("q.jsonl", '{"question": "x", "history": "hi"}\n', r'q\.jsonl:1: "history" should be'),
        ("q.jsonl", '{"id": 1, "question": "x"}\n{"id": 1, "question": "y"}\n', r"id 1 appears twice"),
        ("q.txt", "\n\n", r"q\.txt: holds no questions"),
    ],
)
def test_bad_question_files_get_one_clear_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match=message) as e:
        read_questions(path)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="cannot be read"):
        read_questions(tmp_path / "nope.txt")


def test_batch_answers_and_resumes_by_line_number(tmp_path, eval_pipeline):
    qfile = tmp_path / "q.txt"
    qfile.write_text(
        "Which sectors could OpenAI provide technology to?\nIs the Cohere memorandum legally binding?\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "answers.jsonl"
    pipe, _ = eval_pipeline()
    assert run_batch(pipe, read_questions(qfile)[:1], out, progress=False) == 1

    pipe2, gen2 = eval_pipeline()
    assert run_batch(pipe2, read_questions(qfile), out, progress=False) == 1
    assert gen2.questions() == ["Is the Cohere memorandum legally binding?"]
    rows = _lines(out)
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["question"] == "Which sectors could OpenAI provide technology to?"
    assert rows[0]["answer"] == REPLIES[rows[0]["question"]]
    assert {"refused", "citations", "retrieved", "timings", "model"} <= set(rows[1])


def test_batch_follow_up_uses_its_history_and_records_rejected_questions(tmp_path, eval_pipeline):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        json.dumps({"id": "f", "question": "How many workers will it train?", "history": HISTORY})
        + "\n"
        + json.dumps({"id": "long", "question": "x" * (MAX_QUESTION_CHARS + 1)})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "answers.jsonl"
    pipe, gen = eval_pipeline()
    run_batch(pipe, read_questions(qfile), out, progress=False)
    rows = {r["id"]: r for r in _lines(out)}
    assert rows["f"]["answer"] == "It aims to train 7.5 million workers by 2030 [1]."
    assert gen.questions()[0] == "How many workers will it train?"  # the rewrite saw the follow-up
    assert "limit is" in rows["long"]["error"]
