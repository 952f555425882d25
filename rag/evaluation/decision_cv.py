"""Judge a knob of the decision after generation on items it was not chosen on: replay a full run's
recorded drafts through `RagPipeline.finish` once per candidate value, then choose the value on
four fifths of the items and score it on the fifth, over repeated random splits.

`python -m rag.evaluation.decision_cv RUN --knob evidence_sentences --values 0 1 2` prints the
in-sample figures of each value and the held-out figures of choosing among them. Values are JSON
(`true`, `false`, `null`, numbers) or `shipped` for the knob's shipped value, so a step can be
judged against its absence: `--knob answer_type_check --values shipped false`; `--knob many` takes
JSON objects of several knobs (`'{"evidence_sentences": 1, "answer_type_check": false}'`). With
`--failed` every draft is decided as if the citation check had removed it. No model runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag.decision import opens_with_refusal
from rag.embedding import CachingEmbedder
from rag.evaluation.qaset import QAItem, load_qaset
from rag.evaluation.records import recorded_results
from rag.evaluation.scoring import quote_spans, score_answer
from rag.pipeline import RagPipeline
from rag.types import Answer, Hit


def replayed(
    pipeline: RagPipeline, run_dir: Path, questions: Path, corpus: Path, *, failed: bool = False
) -> Iterator[tuple[QAItem, dict, Answer, list]]:
    """Each generated item of `run_dir` (items refused before generation left out): the item, its
    record, its recorded draft decided again by `pipeline.finish` as the pipeline is set now, and
    its gold quote spans.

    `failed`: decide each item as if the citation check had removed its whole draft (the reply is
    empty unless the model opened with the refusal; the model's recorded signals are kept). Drafts
    the check empties are rare on dev and common on unseen paraphrase, so this is how the decision
    for them is judged on dev's every item."""
    items = {it.id: it for it in load_qaset(questions, corpus)}
    chunks = {c.chunk_id: c for c in pipeline.retriever.chunks}
    bodies = {d: doc.body for d, doc in pipeline.retriever.documents.items()}
    for rec in recorded_results(run_dir):
        if not rec.get("raw_answer") or rec["id"] not in items:
            continue
        item = items[rec["id"]]
        hits = [Hit(chunks[h["chunk_id"]], h["score"]) for h in rec["answer"]["retrieved"]]
        raw = rec["raw_answer"]
        if failed and not opens_with_refusal(raw):
            raw = ""
        answer = pipeline.finish(item.question, rec["standalone_question"], hits, raw, dict(rec["signals"]))
        yield item, rec, answer, quote_spans(item, bodies)


def replayed_scores(
    pipeline: RagPipeline, run_dir: Path, questions: Path, corpus: Path, knob: str, value: Any, *, failed: bool = False
) -> dict[str, dict]:
    """Each generated item's scores with `knob` set to `value` (items refused before generation left
    out; `failed`: as if its draft had failed the check, see `replayed`)."""
    saved = pipeline.options
    pipeline.options = saved.but(**(value if knob == "many" else {knob: value}))
    try:
        return {
            item.id: score_answer(item, answer, spans)
            for item, _, answer, spans in replayed(pipeline, run_dir, questions, corpus, failed=failed)
        }
    finally:
        pipeline.options = saved


def figures(scores: list[dict]) -> dict[str, float]:
    """False refusals, refusal recall, key facts, the share of items shown as quoted passages, and
    the gold citation precision (mean over the items that have one)."""
    ans = [s for s in scores if s["answerable"]]
    una = [s for s in scores if not s["answerable"]]
    fr = sum(bool(s["refused"]) for s in ans) / max(len(ans), 1)
    rr = sum(bool(s["refused"]) for s in una) / max(len(una), 1)
    kf = statistics.mean(float(s.get("key_fact_accuracy") or 0) for s in ans) if ans else 0.0
    partial = sum(bool(s.get("partial")) for s in scores) / max(len(scores), 1)
    gold = [s["citation_precision_gold"] for s in scores if s.get("citation_precision_gold") is not None]
    cp_gold = statistics.mean(gold) if gold else 0.0
    return {"fr": fr, "rr": rr, "kf": kf, "sep": rr - fr, "partial": partial, "cp_gold": cp_gold}


def cross_validate(by_value: dict[Any, dict[str, dict]], folds: int = 5, repeats: int = 20) -> dict[str, float]:
    """Held-out figures of choosing the value with the best separation (refusal recall minus false
    refusals; ties to the smaller false refusals) on the other folds."""
    ids = sorted(next(iter(by_value.values())))
    held: dict[str, list[float]] = {}
    for seed in range(repeats):
        order = np.random.default_rng(seed).permutation(len(ids))
        pooled: list[dict] = []  # each item scored with the value chosen on the folds without it
        for fold in np.array_split(order, folds):
            test = {ids[i] for i in fold}
            train = [i for i in ids if i not in test]

            def fit_score(v: Any, train: list[str] = train) -> tuple[float, float]:
                f = figures([by_value[v][i] for i in train])
                return (f["sep"], -f["fr"])

            best = max(by_value, key=fit_score)
            pooled += [by_value[best][i] for i in sorted(test)]
        # Pooled, not averaged per fold: a fold may hold no unanswerable item.
        for k, x in figures(pooled).items():
            held.setdefault(k, []).append(x)
    return {k: float(np.mean(v)) for k, v in held.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument(
        "--knob", required=True, help="a decision or pipeline option, or `many` with JSON objects as values"
    )
    ap.add_argument("--values", nargs="+", required=True, help="JSON values, or `shipped`")
    ap.add_argument("--questions", type=Path, default=Path("evals/qa.jsonl"))
    ap.add_argument("--failed", action="store_true", help="decide every draft as if the check had removed it")
    args = ap.parse_args()
    from rag.generation import NoGenerator
    from rag.settings import Settings

    settings = Settings()
    pipeline = RagPipeline.from_settings(settings, generator=NoGenerator())
    # Each value replays the same drafts: embed each sentence once, not once per value.
    pipeline.checker.embedder = pipeline.retriever.embedder = CachingEmbedder(pipeline.retriever.embedder)
    own = pipeline.decision if hasattr(pipeline.decision, args.knob) else pipeline.options
    shipped = {} if args.knob == "many" else getattr(own, args.knob)
    values = {v: shipped if v == "shipped" else json.loads(v) for v in args.values}
    by_value = {
        label: replayed_scores(
            pipeline, args.run, args.questions, settings.corpus_dir, args.knob, v, failed=args.failed
        )
        for label, v in values.items()
    }
    for v, scores in by_value.items():
        print(json.dumps({"value": v, **{k: round(x, 3) for k, x in figures(list(scores.values())).items()}}))
    print(json.dumps({"held_out": {k: round(x, 3) for k, x in cross_validate(by_value).items()}}))


if __name__ == "__main__":
    main()
