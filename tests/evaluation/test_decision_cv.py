"""Choosing a decision knob on some items and judging it on the others (no model)."""

from rag.evaluation.decision_cv import cross_validate


def score(answerable: bool, refused: bool, kf: float = 1.0) -> dict:
    return {"answerable": answerable, "refused": refused, "key_fact_accuracy": kf}


def test_the_value_that_separates_better_is_chosen_and_its_held_out_figures_pooled():
    # 18 answerable items and 2 unanswerable ones: most folds hold no unanswerable item.
    ids = [f"a{i}" for i in range(18)] + ["u0", "u1"]
    good = {i: score(not i.startswith("u"), i.startswith("u")) for i in ids}  # refuses exactly the unanswerable
    bad = {i: score(not i.startswith("u"), i in ("a0", "a1", "a2")) for i in ids}  # refuses answerable ones
    held = cross_validate({"good": good, "bad": bad}, folds=5, repeats=3)
    assert held["rr"] == 1.0 and held["fr"] == 0.0  # pooled: no fold's missing unanswerable counts as 0
