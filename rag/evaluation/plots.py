"""PNG plots for the evaluation report: latency distribution and each metric by question type.

matplotlib is imported lazily with the Agg backend (no display needed). Nothing here computes a
metric: per-type values come from `rag.evaluation.scoring.summarise`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LATENCY_PNG = "latency.png"
BY_TYPE_PNG = "metrics_by_type.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Histogram of time to first token, total time and retrieval time (whichever the run has)."""
    plt = _pyplot()
    series = {
        label: [r["scores"][key] for r in records if r["scores"].get(key) is not None]
        for label, key in (
            ("time to first token", "ttft_s"),
            ("first checked sentence", "first_sentence_s"),
            ("total", "total_s"),
            ("retrieval", "retrieve_s"),
        )
    }
    series = {k: v for k, v in series.items() if v}
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        ax.hist(values, bins=20, alpha=0.6, label=f"{label} (n={len(values)})")
    ax.set_xlabel("seconds")
    ax.set_ylabel("items")
    ax.set_title("Latency per item")
    if series:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_metrics_by_type(by_type: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], path: Path) -> Path:
    """One bar chart per metric, one bar per question type, labelled with its value (or n/a)."""
    plt = _pyplot()
    types = list(by_type)
    cols = 3
    rows = max(1, -(-len(metrics) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = [by_type[t].get(metric) for t in types]
        bars = ax.bar(types, [v if v is not None else 0.0 for v in values], color="tab:blue")
        # Label every bar, so a zero and a metric that does not apply to a type look different.
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=7)
        ax.set_title(metric)
        ax.set_ylim(0, 1.15)  # room for the labels above full bars
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
