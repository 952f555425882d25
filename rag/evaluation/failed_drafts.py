"""What the decision shows when the model's draft fails, for every item of a split, without the model.

A refused answerable question is, in every run read so far, a draft whose every sentence the
citation check dropped, followed by the decision's choice between quoting the passages and refusing
(`rag.decision`). That choice reads only the question and the passages, so it can be judged on all
items of a split without generating: retrieve as the pipeline does (a follow-up's standalone
question is approximated by the question and the previous user turn, as the model's rewrite is not
run), hand `RagPipeline.finish` an empty draft, and score what it shows. Per candidate value of a
knob it prints the in-sample figures, and the held-out figures of choosing the value on four fifths
of the items and scoring it on the fifth (repeated), as `decision_cv` does for recorded runs.

With `--openings FILE`, the real model writes the first few tokens of each item's reply once (the
openings are kept in FILE and reused): an item whose model opens with the refusal keeps that
opening as its draft, so the decision sees that the model itself refused; the others fail with an
empty draft, as a draft the check removed entirely does.

`python -m rag.evaluation.failed_drafts --split dev --knob evidence_sentences --values 0 2`

Here `fr` is the share of answerable items refused, `rr` of unanswerable items refused, `kf` the key
facts of the quoted passages: an upper bound on what the decision can do when the model fails.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.embedding import CachingEmbedder
from rag.evaluation.decision_cv import cross_validate, figures
from rag.evaluation.qaset import QAItem, load_qaset
from rag.evaluation.scoring import quote_spans, score_answer
from rag.pipeline import RagPipeline, clean_history, last_user_turn
from rag.prompts import REFUSAL


def standalone_question(item: QAItem) -> str:
    """The question the passages are found for: a follow-up's own words after the previous question."""
    last_user = last_user_turn(clean_history(item.history))
    return f"{item.question} {last_user}" if last_user else item.question


def openings(pipeline: RagPipeline, items: list[QAItem], path: Path, tokens: int = 8) -> dict[str, dict]:
    """Each item's standalone question, the opening of the model's reply and its p(refusal opening),
    read from `path` when kept there, else generated (`tokens` tokens) and added to it."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    short = pipeline.options
    pipeline.options = short.but(max_new_tokens=tokens)
    try:
        # The unanswerable first: whether the model refuses them itself is what a looser quote risks.
        for item in tqdm(sorted(items, key=lambda it: it.answerable), desc="openings", unit="item"):
            if item.id in kept:
                continue
            answer = pipeline.ask(item.question, item.history)
            kept[item.id] = {
                "standalone": answer.standalone_question or item.question,
                "opening": answer.raw_answer or "",
                "p_refusal": (answer.signals or {}).get("p_refusal"),
            }
            path.write_text(json.dumps(kept, indent=1))
    finally:
        pipeline.options = short
    return kept


def failed_draft_scores(
    pipeline: RagPipeline, items: list[QAItem], knob: str, value: Any, opened: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Each item's scores when its draft fails (an empty reply, or the model's refusal when
    `opened` says it opened with one), with `knob` set to `value`."""
    bodies = {d: doc.body for d, doc in pipeline.retriever.documents.items()}
    saved = pipeline.options
    pipeline.options = saved.but(**(value if knob == "many" else {knob: value}))
    out = {}
    try:
        for item in items:
            seen = (opened or {}).get(item.id, {})
            standalone = seen.get("standalone") or standalone_question(item)
            result = pipeline.retrieve(standalone)
            signals: dict[str, float | None] = {"best_dense": result.best_dense, "p_refusal": seen.get("p_refusal")}
            refused = seen.get("opening", "").strip().lower().startswith(REFUSAL[:12].lower())
            answer = pipeline.finish(item.question, standalone, result.hits, REFUSAL if refused else "", signals)
            out[item.id] = score_answer(item, answer, quote_spans(item, bodies))
    finally:
        pipeline.options = saved
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--knob", required=True, help="a decision option, or `many` with JSON objects as values")
    ap.add_argument("--values", nargs="+", required=True, help="JSON values, or `shipped`")
    ap.add_argument("--questions", type=Path, default=Path("evals/qa.jsonl"))
    ap.add_argument("--openings", type=Path, help="generate (or reuse) the model's openings, kept in this file")
    ap.add_argument("--opened-only", action="store_true", help="score only the items whose opening is kept")
    args = ap.parse_args()
    from rag.generation import NoGenerator
    from rag.settings import Settings

    settings = Settings()
    generate = args.openings is not None and not args.opened_only
    pipeline = RagPipeline.from_settings(settings, generator=None if generate else NoGenerator())
    pipeline.checker.embedder = pipeline.retriever.embedder = CachingEmbedder(pipeline.retriever.embedder)
    items = [it for it in load_qaset(args.questions, settings.corpus_dir) if it.split == args.split]
    if args.opened_only and args.openings:
        kept = json.loads(args.openings.read_text())
        items = [it for it in items if it.id in kept]
        opened = kept
    else:
        opened = openings(pipeline, items, args.openings) if args.openings else None
    own = pipeline.decision if hasattr(pipeline.decision, args.knob) else pipeline.options
    shipped = getattr(own, args.knob, None)
    values = {v: shipped if v == "shipped" else json.loads(v) for v in args.values}
    by_value = {label: failed_draft_scores(pipeline, items, args.knob, v, opened) for label, v in values.items()}
    for v, scores in by_value.items():
        print(json.dumps({"value": v, **{k: round(x, 3) for k, x in figures(list(scores.values())).items()}}))
    print(json.dumps({"held_out": {k: round(x, 3) for k, x in cross_validate(by_value).items()}}))


if __name__ == "__main__":
    main()
