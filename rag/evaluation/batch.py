"""Answer a list of questions without scoring: `python -m rag batch --questions FILE --out FILE`.

Input is JSON lines (`.jsonl`/`.ndjson`: objects with "question" and optional "id" and "history")
or plain text (any other suffix: one question per line). Output is one Answer JSON per line with
its id and question, appended as each finishes, so a rerun resumes. No metrics here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import BadInputError
from rag.evaluation.qaset import ROLES, read_jsonl
from rag.evaluation.records import append_record, done_keys, read_records
from rag.pipeline import RagPipeline

JSONL_SUFFIXES = {".jsonl", ".ndjson"}


@dataclass
class BatchQuestion:
    id: str | int
    question: str
    history: list[dict[str, str]] = field(default_factory=list)


def _from_json(path: Path, n: int, d: Any) -> BatchQuestion:
    where = f"{path}:{n}"
    if not isinstance(d, dict):
        raise BadInputError(f'{where}: expected a JSON object with a "question", got a {type(d).__name__}')
    q = d.get("question")
    if not isinstance(q, str) or not q.strip():
        raise BadInputError(f'{where}: "question" is missing, blank or not a string')
    qid = d.get("id", n)
    if not isinstance(qid, str | int) or isinstance(qid, bool) or str(qid) == "":
        raise BadInputError(f'{where}: "id" should be a non-empty string or an integer')
    history = d.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ROLES and isinstance(t.get("content"), str) for t in history
    ):
        raise BadInputError(f'{where}: "history" should be a list of {{"role": "user"|"assistant", "content": "..."}}')
    return BatchQuestion(qid, q.strip(), history)


def read_questions(path: Path) -> list[BatchQuestion]:
    """Parse a question file; plain-text questions get their line number as id.

    Raises:
        BadInputError: unreadable file, bad JSON, a missing question, a bad history or a repeated id
            (naming file and line), or a file with no questions.
    """
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        out = [_from_json(path, n, d) for n, d in read_jsonl(path)]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise BadInputError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None
        out = [BatchQuestion(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    seen: dict[str, int] = {}
    for i, q in enumerate(out):
        if str(q.id) in seen:
            raise BadInputError(f"{path}: id {q.id!r} appears twice (questions {seen[str(q.id)]} and {i + 1})")
        seen[str(q.id)] = i + 1
    if not out:
        raise BadInputError(f"{path}: holds no questions")
    return out


def run_batch(pipeline: RagPipeline, questions: list[BatchQuestion], out_path: Path, progress: bool = True) -> int:
    """Answer every question not yet in `out_path`, appending one Answer JSON line each.

    A question the pipeline rejects (too long) gets a line with its "error" instead of stopping the run.

    Returns:
        How many questions were answered in this call.

    Raises:
        BadInputError: `out_path` holds a damaged line.
        RagError: the index or model failed (rerun to resume).
    """
    from tqdm import tqdm

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(read_records(out_path))
    todo = [q for q in questions if str(q.id) not in done]
    if done and progress:
        print(f"resuming: {len(questions) - len(todo)} of {len(questions)} already in {out_path}", file=sys.stderr)
    with open(out_path, "a", encoding="utf-8") as f:
        for q in tqdm(todo, desc="answering", unit="q", disable=not progress, file=sys.stderr):
            try:
                answer = pipeline.ask(q.question, q.history)
                record = {"id": q.id, "question": q.question, **answer.to_dict()}
            except BadInputError as e:
                record = {"id": q.id, "question": q.question, "error": str(e)}
            append_record(f, record)
    return len(todo)
