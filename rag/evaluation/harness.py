"""Run the pipeline over a reference set, score every item, and write the run folder.

A run folder holds `run.json` (what was run), `results.jsonl` (one scored record per item,
appended as each finishes, so a rerun resumes), `summary.json` and `report.md` with plots.
This module does not build the pipeline (the CLI does) and does not define metrics.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag.errors import BadInputError
from rag.evaluation.qaset import QAItem
from rag.evaluation.records import RESULTS, append_record, done_keys, read_records, recorded_results
from rag.evaluation.scoring import quote_spans, score_answer, score_retrieval, summarise
from rag.pipeline import RagPipeline, last_user_turn
from rag.types import Answer

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
RUN = "run.json"


def retrieval_query(item: QAItem) -> str:
    """What retrieval-only mode searches for: the question, after the last user turn for a follow-up.

    It mirrors the pipeline's own fallback when a follow-up cannot be rewritten, without a model:
    history `[{"role": "user", "content": "The Cohere MoU?"}]` + "Is it binding?" -> "The Cohere MoU? Is it binding?".
    """
    return f"{last_user_turn(item.history)} {item.question}".strip()


def _base(item: QAItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "type": item.type,
        "split": item.split,
        "answerable": item.answerable,
        "doc_ids": item.doc_ids,
        "question": item.question,
        "reference": item.answer,
    }


def evaluate_item(pipeline: RagPipeline, item: QAItem, bodies: dict[str, str], retrieval_only: bool) -> dict[str, Any]:
    """Run one item through the pipeline (or only its retriever) and return its scored record.

    Args:
        pipeline: the pipeline under test.
        item: the reference item; its history goes to the pipeline with the question.
        bodies: document bodies by doc id, to locate the gold quotes.
        retrieval_only: retrieve for `retrieval_query(item)` instead of answering.

    Returns:
        The record written to results.jsonl (see evals/README.md).

    Raises:
        RagError: the pipeline failed (the run stops; rerunning resumes).
    """
    quotes = quote_spans(item, bodies)
    record = _base(item)
    if retrieval_only:
        query = retrieval_query(item)
        t0 = time.perf_counter()
        hits = pipeline.retrieve(query).hits
        scores = score_retrieval(item, hits, quotes)
        scores.update(answerable=item.answerable, retrieve_s=time.perf_counter() - t0)
        record.update(
            query=query,
            retrieved=[
                {
                    "doc_id": h.chunk.doc_id,
                    "chunk_id": h.chunk.chunk_id,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "score": round(h.score, 6),
                }
                for h in hits
            ],
            scores=scores,
        )
        return record
    return _answer_record(item, pipeline.ask(item.question, item.history), quotes)


def _answer_record(item: QAItem, answer: Answer, quotes: list) -> dict[str, Any]:
    """The results.jsonl record of a full run's item (see evals/README.md)."""
    record = _base(item)
    record.update(
        answer=answer.to_dict(),
        raw_answer=answer.raw_answer,
        standalone_question=answer.standalone_question,
        sentences=[asdict(s) for s in answer.sentences],
        signals=answer.signals,
        scores=score_answer(item, answer, quotes),
    )
    return record


def _check_run(out_dir: Path, run: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose results came from a different kind of run."""
    path = out_dir / RUN
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in run if before.get(k) != run[k]]
        if changed and (out_dir / RESULTS).is_file():
            raise BadInputError(
                f"{out_dir} holds results of a different run ({', '.join(f'{k}={before.get(k)!r}' for k in changed)}); "
                "use a new --out folder, or delete that one"
            )
    path.write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")


def run_eval(
    pipeline: RagPipeline,
    items: list[QAItem],
    out_dir: Path,
    *,
    retrieval_only: bool = False,
    progress: bool = True,
    report: bool = True,
) -> dict[str, Any]:
    """Evaluate `items`, skipping those already in `out_dir/results.jsonl`, then summarise and report.

    Args:
        pipeline: the pipeline to evaluate (only its retriever in retrieval-only mode).
        items: the reference items, already filtered by split and limit.
        out_dir: the run folder; created if needed.
        retrieval_only: score retrieval alone, without generating answers.
        progress: show a progress bar with an ETA on stderr.
        report: also write report.md and the plots.

    Returns:
        The summary (also written to summary.json), over `items` only.

    Raises:
        BadInputError: `out_dir` holds results of a different kind of run or a damaged results file.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = {
        "mode": "retrieval-only" if retrieval_only else "full",
        "model": None if retrieval_only else pipeline.model_name,
        "top_k": pipeline.top_k,
    }
    _check_run(out_dir, run)
    results_path = out_dir / RESULTS
    earlier = read_records(results_path)
    done = done_keys(earlier)
    todo = [it for it in items if it.id not in done]
    if done and progress:
        print(f"resuming: {len(items) - len(todo)} of {len(items)} items already in {results_path}", file=sys.stderr)
    bodies = {doc_id: doc.body for doc_id, doc in pipeline.retriever.documents.items()}
    new: list[dict[str, Any]] = []
    with open(results_path, "a", encoding="utf-8") as f:
        for item in tqdm(todo, desc="evaluating", unit="q", disable=not progress, file=sys.stderr):
            record = evaluate_item(pipeline, item, bodies, retrieval_only)
            append_record(f, record)
            new.append(record)

    by_id = {r["id"]: r for r in earlier + new}
    records = [by_id[it.id] for it in items if it.id in by_id]
    summary = {**run, **summarise(records)}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if report:
        from rag.evaluation.report import write_report

        write_report(records, summary, out_dir)
    return summary


def replay_eval(
    pipeline: RagPipeline, items: list[QAItem], from_dir: Path, out_dir: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Re-decide a full run's answers with the current citation check and answerability decision,
    without the model: each record's raw answer, passages and signals go through `pipeline.finish`.

    Items refused before generation stay refused. The timings are the original run's.

    Raises:
        BadInputError: `from_dir` is not a full run, or names passages the index no longer has.
    """
    from tqdm import tqdm

    from rag.types import Hit, Timings

    before = {r["id"]: r for r in recorded_results(Path(from_dir))}
    run = json.loads((Path(from_dir) / RUN).read_text(encoding="utf-8"))
    if run.get("mode") != "full":
        raise BadInputError(f"{from_dir} is not a full run; only generated answers can be replayed")
    chunks = {c.chunk_id: c for c in pipeline.retriever.chunks}
    bodies = {doc_id: doc.body for doc_id, doc in pipeline.retriever.documents.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RUN).write_text(json.dumps({**run, "replayed_from": str(from_dir)}, indent=2) + "\n", encoding="utf-8")
    records = []
    for item in tqdm(items, desc="replaying", unit="q", disable=not progress, file=sys.stderr):
        rec = before.get(item.id)
        if rec is None:
            continue
        old = rec["answer"]
        missing = [h["chunk_id"] for h in old["retrieved"] if h["chunk_id"] not in chunks]
        if missing:
            raise BadInputError(f"{from_dir}: item {item.id} cites passages the index lacks ({missing[0]}); rebuild it")
        hits = [Hit(chunks[h["chunk_id"]], h["score"]) for h in old["retrieved"]]
        if rec.get("raw_answer"):
            signals = rec.get("signals", {})
            answer = pipeline.finish(item.question, rec["standalone_question"], hits, rec["raw_answer"], signals)
        else:  # refused before generation
            answer = pipeline.finish(item.question, rec["standalone_question"], hits, "", {})
            answer.answer, answer.refused, answer.citations, answer.raw_answer = old["answer"], True, [], ""
        answer.timings = Timings(**old["timings"])
        answer.tokens = rec["scores"].get("tokens", 0)
        records.append(_answer_record(item, answer, quote_spans(item, bodies)))
    with open(out_dir / RESULTS, "w", encoding="utf-8") as f:
        for r in records:
            append_record(f, r)
    summary = {**summarise(records), "mode": "full", "model": run.get("model"), "top_k": run.get("top_k")}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
