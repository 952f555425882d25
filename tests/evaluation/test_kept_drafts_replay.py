"""What is shown after generation, measured on the kept drafts of every split (slow: the real
embedder and index, no model; about three minutes a split on 2 cores).

The drafts in `evals/drafts/` are replayed through the current citation check and decision, so a
change after generation that costs key facts, false refusals, refusal recall or gold citation
precision on any split fails here, before anyone reads a new run. The floors are the figures
measured on them (2026-12-03; see FLOORS), less about
one item's worth; they move with the measured figures, never towards a target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.evaluation.harness import replay_eval
from rag.evaluation.qaset import load_qaset, select_items
from rag.generation import NoGenerator

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

# Measured at 84c57a9 (key facts, FR, RR, gold cP): dev 0.661 / 0.076 / 0.776 / 0.730 (118 answerable,
# 49 not); test 0.516 / 0.095 / 0.632 / 0.641 (95, 19); holdout 0.565 / 0.129 / 0.647 / 0.684 (62, 17);
# holdout2 0.554 / 0.071 / 0.357 / 0.745 (56, 14); holdout3, read once at 40ba189: 0.500 / 0.060 / 0.600 / 0.643 (50, 20);
# holdout4, read once at 2b08b44: 0.500 / 0.160 / 0.450 / 0.673 (50, 20).
FLOORS = {
    "dev": {"key_fact_accuracy": 0.65, "false_refusal_rate_max": 0.085, "refusal_recall": 0.75, "gold": 0.71},
    "test": {"key_fact_accuracy": 0.50, "false_refusal_rate_max": 0.106, "refusal_recall": 0.57, "gold": 0.63},
    "holdout": {"key_fact_accuracy": 0.55, "false_refusal_rate_max": 0.145, "refusal_recall": 0.58, "gold": 0.67},
    "holdout2": {"key_fact_accuracy": 0.535, "false_refusal_rate_max": 0.09, "refusal_recall": 0.28, "gold": 0.725},
    "holdout3": {"key_fact_accuracy": 0.485, "false_refusal_rate_max": 0.08, "refusal_recall": 0.55, "gold": 0.625},
    "holdout4": {"key_fact_accuracy": 0.485, "false_refusal_rate_max": 0.18, "refusal_recall": 0.40, "gold": 0.655},
}


@pytest.mark.parametrize("split", list(FLOORS))
def test_replaying_a_splits_kept_drafts_keeps_its_figures(split, real_pipeline, tmp_path):
    items = select_items(load_qaset(REPO / "evals/qa.jsonl", REPO / "corpus"), split)
    summary = replay_eval(real_pipeline(NoGenerator()), items, REPO / "evals/drafts" / split, tmp_path, progress=False)
    floor = FLOORS[split]
    got = (
        summary["key_fact_accuracy"],
        summary["false_refusal_rate"],
        summary["refusal_recall"],
        summary["citation_precision_gold"],
    )
    assert summary["n"] == len(items)
    assert got[0] >= floor["key_fact_accuracy"], got
    assert got[1] <= floor["false_refusal_rate_max"], got
    assert got[2] >= floor["refusal_recall"], got
    assert got[3] >= floor["gold"], got
