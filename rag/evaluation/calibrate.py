"""Fit the answerability decision (`rag.answerability`) on the signals a full run recorded.

Only items the model answered carry signals (an item refused before generation has none) and
only they are fitted. Fit on the dev split; the test split is for reporting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from rag.answerability import FEATURES, L2, AnswerabilityModel, choose_threshold, fit
from rag.errors import BadInputError
from rag.evaluation.decision_cv import figures
from rag.evaluation.records import recorded_results


def signal_rows(run_dir: Path) -> tuple[list[dict[str, float]], list[bool], list[str]]:
    """The recorded signals of `run_dir`'s answered items, whether each was answerable, and its split.

    Raises:
        BadInputError: the run has no records with signals, or only one class.
    """
    records = [r for r in recorded_results(Path(run_dir)) if r.get("signals")]
    labels = [bool(r["answerable"]) for r in records]
    if not records or all(labels) or not any(labels):
        raise BadInputError(f"{run_dir}: needs answered items of both kinds (answerable and not) with signals")
    rows = [{k: v for k, v in r["signals"].items() if v is not None} for r in records]
    return rows, labels, [r.get("split", "?") for r in records]


def cross_validate(
    rows: list[dict[str, float]],
    labels: list[bool],
    features: tuple[str, ...],
    l2: float,
    max_false_refusals: float = 0.10,
    folds: int = 5,
    repeats: int = 10,
) -> tuple[float, float]:
    """(false-refusal rate, refusal recall) of the decision on held-out items, averaged over
    `repeats` random `folds`-fold splits: each fold is decided by a model and threshold fitted on
    the others. How `FEATURES` and `L2` were chosen, on dev."""
    outcomes = [({"answerable": y, "refused": False}, {"answerable": y, "refused": True}) for y in labels]
    held = held_out(rows, labels, features, outcomes, l2, max_false_refusals, folds, repeats)
    return held["fr"], held["rr"]


def held_out(
    rows: list[dict[str, float]],
    labels: list[bool],
    features: tuple[str, ...],
    outcomes: list[tuple[dict, dict]],
    l2: float = L2,
    max_false_refusals: float = 0.10,
    folds: int = 5,
    repeats: int = 20,
) -> dict[str, float]:
    """The figures (`decision_cv.figures`) of items each decided by a logistic model over
    `features` and its threshold (`choose_threshold`), both fitted on the other folds; pooled per
    repeat of a random `folds`-fold split, then averaged over `repeats`. `outcomes[i]` holds item
    i's scores when the decision lets it through and when it refuses it."""
    y = np.array(labels)
    held: dict[str, list[float]] = {}
    for seed in range(repeats):
        order = np.random.default_rng(seed).permutation(len(rows))
        pooled: list[dict] = []  # pooled, not averaged per fold: a fold may hold no unanswerable item
        for fold in np.array_split(order, folds):
            train = np.setdiff1d(order, fold)
            model = fit([rows[i] for i in train], list(y[train]), l2=l2, features=features)
            t = choose_threshold([model.probability(rows[i]) for i in train], list(y[train]), max_false_refusals)
            pooled += [outcomes[i][0] if model.probability(rows[i]) >= t else outcomes[i][1] for i in fold]
        for k, x in figures(pooled).items():
            held.setdefault(k, []).append(x)
    return {k: float(np.mean(v)) for k, v in held.items()}


def fit_from_run(
    run_dir: Path, max_false_refusals: float = 0.10, features: tuple[str, ...] = FEATURES
) -> AnswerabilityModel:
    """A logistic answerability model fitted on `run_dir`'s recorded signals (see `fit_rows`).

    Raises:
        BadInputError: the run has no records with signals, or only one class.
    """
    rows, labels, splits = signal_rows(run_dir)
    meta = {"fitted_on": str(run_dir), "splits": sorted(set(splits))}
    return fit_rows(rows, labels, meta, max_false_refusals, features)


def fit_rows(
    rows: list[dict[str, float]],
    labels: list[bool],
    meta: dict,
    max_false_refusals: float = 0.10,
    features: tuple[str, ...] = FEATURES,
) -> AnswerabilityModel:
    """A logistic answerability model over `features` fitted on `rows`, with the threshold that best
    separates them while refusing at most `max_false_refusals` of the answerable items; `meta` is
    kept in the model with the fit's own facts."""
    model = fit(rows, labels, features=features)
    probs = [model.probability(r) for r in rows]
    model.threshold = choose_threshold(probs, labels, max_false_refusals)
    model.meta = {
        **meta,
        "n": len(rows),
        "answerable": sum(labels),
        "max_false_refusals": max_false_refusals,
        "l2": L2,
        "date": dt.date.today().isoformat(),
    }
    return model
