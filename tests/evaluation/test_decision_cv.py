"""Choosing a decision knob on some items and judging it on the others (no model)."""

from rag.evaluation.decision_cv import cross_validate
from rag.prompts import REFUSAL


def score(answerable: bool, refused: bool, kf: float = 1.0) -> dict:
    return {"answerable": answerable, "refused": refused, "key_fact_accuracy": kf}


def test_the_value_that_separates_better_is_chosen_and_its_held_out_figures_pooled():
    # 18 answerable items and 2 unanswerable ones: most folds hold no unanswerable item.
    ids = [f"a{i}" for i in range(18)] + ["u0", "u1"]
    good = {i: score(not i.startswith("u"), i.startswith("u")) for i in ids}  # refuses exactly the unanswerable
    bad = {i: score(not i.startswith("u"), i in ("a0", "a1", "a2")) for i in ids}  # refuses answerable ones
    held = cross_validate({"good": good, "bad": bad}, folds=5, repeats=3)
    assert held["rr"] == 1.0 and held["fr"] == 0.0  # pooled: no fold's missing unanswerable counts as 0


def test_a_failed_replay_decides_every_draft_as_if_the_check_had_removed_it(
    tmp_path, settings, eval_pipeline, tiny_items, qa_file
):
    from rag.evaluation.decision_cv import replayed
    from rag.evaluation.harness import run_eval

    pipe, _ = eval_pipeline()
    run_eval(pipe, tiny_items, tmp_path / "run", progress=False, report=False)
    as_run = {it.id: a for it, _, a, _ in replayed(pipe, tmp_path / "run", qa_file, settings.corpus_dir)}
    failed = {it.id: a for it, _, a, _ in replayed(pipe, tmp_path / "run", qa_file, settings.corpus_dir, failed=True)}
    assert failed.keys() == as_run.keys() and failed
    assert any(a.decision["step"] == "checked_answer" for a in as_run.values())  # so the next line can fail
    assert all(a.decision["step"] != "checked_answer" for a in failed.values())
    assert all(a.raw_answer in ("", REFUSAL) for a in failed.values())
