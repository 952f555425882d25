"""Choose the one answer/refuse gate on items it was not fitted on.

The decision after generation reads one calibrated probability that the documents answer the
question (`rag.answerability`): at or above its threshold the reader sees the checked draft, or,
when the draft cannot be shown, the passages' closest sentences quoted (`partial`); below it, the
refusal. Which signals that probability reads is what this tool judges. A full run's recorded
drafts are replayed once with a gate that always passes (every item's "shown" outcome) and each
item is also scored as refused; then, over repeated five-fold splits, a logistic model and its
threshold are fitted on four fifths of the items and decide the fifth. So a feature set is judged
by items it was not fitted on, and every outcome is the real pipeline's (a passing gate with no
checked draft and no sentence of the kind asked still refuses). No model runs.

`python -m rag.evaluation.gate_cv RUN --features support,type_match,p_refusal_open_ended draft_score,p_refusal`
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rag.answerability import AnswerabilityModel
from rag.evaluation.calibrate import fit_rows, held_out
from rag.evaluation.decision_cv import figures, replayed
from rag.evaluation.scoring import score_answer
from rag.pipeline import RagPipeline
from rag.prompts import REFUSAL

ALWAYS = AnswerabilityModel(weights={}, bias=40.0, mean={}, scale={}, threshold=0.0)  # every item passes


@dataclass
class Item:
    """One replayed item: its signals, and its scores when the gate passes and when it refuses."""

    id: str
    split: str
    answerable: bool
    signals: dict[str, float]
    shown: dict
    refused: dict
    shipped: dict


def replay_items(pipeline: RagPipeline, run_dir: Path, questions: Path, corpus: Path) -> list[Item]:
    """Every generated item of `run_dir`, replayed with a gate that always passes, and as refused
    (`shipped`: its scores as recorded by the run)."""
    shipped = pipeline.options
    pipeline.options = shipped.but(answerability=ALWAYS)
    out = []
    try:
        for item, rec, shown, spans in replayed(pipeline, run_dir, questions, corpus):
            refusal = replace(shown, answer=REFUSAL, refused=True, partial=False, citations=[])
            signals = {k: float(v) for k, v in shown.signals.items() if v is not None and k != "p_answerable"}
            scores = [score_answer(item, a, spans) for a in (shown, refusal)]
            out.append(Item(item.id, item.split, item.answerable, signals, *scores, rec["scores"]))
    finally:
        pipeline.options = shipped
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument("--features", nargs="+", required=True, help="comma-separated signal names, one set per value")
    ap.add_argument("--max-false-refusals", type=float, nargs="+", default=[0.10])
    ap.add_argument("--questions", type=Path, default=Path("evals/qa.jsonl"))
    ap.add_argument("--items", type=Path, help="keep the replayed items in this file, and reuse them when it exists")
    ap.add_argument("--write", type=Path, help="fit the first feature set on every item and write the model here")
    args = ap.parse_args()
    from rag.generation import NoGenerator
    from rag.settings import Settings

    if args.items and args.items.exists():
        items = [Item(**d) for d in json.loads(args.items.read_text())]
    else:
        settings = Settings()
        pipeline = RagPipeline.from_settings(settings, generator=NoGenerator())
        items = replay_items(pipeline, args.run, args.questions, settings.corpus_dir)
        if args.items:
            args.items.write_text(json.dumps([asdict(it) for it in items]))
    print(json.dumps({"as_run": {k: round(x, 3) for k, x in figures([it.shipped for it in items]).items()}}))
    print(json.dumps({"always_shown": {k: round(x, 3) for k, x in figures([it.shown for it in items]).items()}}))
    for cap in args.max_false_refusals:
        for names in args.features:
            features = tuple(names.split(","))
            outcomes = [(it.shown, it.refused) for it in items]
            rows, labels = [it.signals for it in items], [it.answerable for it in items]
            row = held_out(rows, labels, features, outcomes, max_false_refusals=cap)
            print(json.dumps({"features": names, "cap": cap, **{k: round(x, 3) for k, x in row.items()}}))
    if args.write:
        rows, labels = [it.signals for it in items], [it.answerable for it in items]
        features = tuple(args.features[0].split(","))
        meta = {"fitted_on": str(args.run), "splits": sorted({it.split for it in items}), "replayed": True}
        model = fit_rows(rows, labels, meta, args.max_false_refusals[0], features)
        args.write.write_text(model.to_json(), encoding="utf-8")
        print(model.to_json().strip())


if __name__ == "__main__":
    main()
