"""Fit the answerability decision (`rag.answerability`) on the signals a full run recorded.

Only items the model answered carry signals (an item refused before generation has none) and
only they are fitted. Fit on the dev split; the test split is for reporting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rag.answerability import L2, AnswerabilityModel, choose_threshold, fit
from rag.errors import BadInputError
from rag.evaluation.records import read_records


def fit_from_run(run_dir: Path, max_false_refusals: float = 0.10) -> AnswerabilityModel:
    """A logistic answerability model fitted on `run_dir`'s records, with the highest threshold
    that refuses at most `max_false_refusals` of the answerable items among them.

    Raises:
        BadInputError: the run has no records with signals, or only one class.
    """
    records = [r for r in read_records(Path(run_dir) / "results.jsonl") if r.get("signals")]
    labels = [bool(r["answerable"]) for r in records]
    if not records or all(labels) or not any(labels):
        raise BadInputError(f"{run_dir}: needs answered items of both kinds (answerable and not) with signals")
    rows = [{k: v for k, v in r["signals"].items() if v is not None} for r in records]
    model = fit(rows, labels)
    probs = [model.probability(r) for r in rows]
    model.threshold = choose_threshold(probs, labels, max_false_refusals)
    splits = sorted({r.get("split", "?") for r in records})
    model.meta = {
        "fitted_on": str(run_dir),
        "splits": splits,
        "n": len(records),
        "answerable": sum(labels),
        "max_false_refusals": max_false_refusals,
        "l2": L2,
        "date": dt.date.today().isoformat(),
    }
    return model
