"""Fitting and cross-validating the answer/refuse decision on a run's recorded signals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.errors import BadInputError
from rag.evaluation.calibrate import cross_validate, fit_from_run, held_out, signal_rows


def _rows(n_pos: int = 40, n_neg: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [
        {"support": float(rng.uniform(0.5, 1.0)), "p_refusal_open_ended": float(rng.uniform(0, 1))}
        for _ in range(n_pos)
    ]
    rows += [
        {"support": float(rng.uniform(0.0, 0.45)), "p_refusal_open_ended": float(rng.uniform(0, 1))}
        for _ in range(n_neg)
    ]
    return rows, [True] * n_pos + [False] * n_neg


def test_cross_validation_prefers_the_signal_that_separates():
    rows, labels = _rows()
    fr, rr = cross_validate(rows, labels, ("support",), l2=1.0, repeats=3)
    fr_noise, rr_noise = cross_validate(rows, labels, ("p_refusal_open_ended",), l2=1.0, repeats=3)
    assert rr - fr > 0.8 and fr <= 0.1
    assert rr_noise - fr_noise < rr - fr - 0.5


def test_fit_from_run_uses_the_recorded_signals(tmp_path):
    rows, labels = _rows()
    with open(tmp_path / "results.jsonl", "w") as f:
        for i, (r, y) in enumerate(zip(rows, labels, strict=True)):
            f.write(json.dumps({"id": str(i), "answerable": y, "signals": {**r, "type_match": None}}) + "\n")
    model = fit_from_run(tmp_path, features=("support", "type_match", "p_refusal_open_ended"))
    assert set(model.weights) == {"support", "p_refusal_open_ended"} and model.weights["support"] > 0
    assert model.meta["n"] == len(rows) and model.meta["answerable"] == sum(labels)
    refused = [model.probability(r) < model.threshold for r in rows]
    assert sum(refused[:40]) <= 4 and sum(refused[40:]) >= 10


def test_a_run_with_one_kind_of_item_cannot_be_fitted(tmp_path):
    (tmp_path / "results.jsonl").write_text(
        json.dumps({"id": "1", "answerable": True, "signals": {"support": 1}}) + "\n"
    )
    with pytest.raises(BadInputError, match="both kinds"):
        signal_rows(tmp_path)


def test_held_out_scores_each_item_by_the_outcome_its_fold_decided():
    rows, labels = _rows(n_pos=30, n_neg=10)
    # Letting an item through shows what the pipeline would: here three answerable items have
    # nothing to show (no checked draft, no sentence of the kind asked), so they stay refused.
    outcomes = [
        ({"answerable": y, "refused": i < 3, "key_fact_accuracy": float(i >= 3)}, {"answerable": y, "refused": True})
        for i, y in enumerate(labels)
    ]
    held = held_out(rows, labels, ("support",), outcomes, repeats=3)
    assert held["fr"] >= 3 / 30 and held["rr"] > 0.8
    assert abs(held["kf"] - (1 - held["fr"])) < 1e-9  # an answerable item shown has its key facts
    fr, rr = cross_validate(rows, labels, ("support",), l2=1.0, repeats=3)
    assert fr < held["fr"]  # the gate alone refuses fewer than the pipeline shows nothing for
