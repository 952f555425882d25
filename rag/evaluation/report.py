"""Write report.md for a run (tables by question type and by document, the worst items, plots)
and compare the summaries of two runs. Reads scored records; computes no new metric.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.errors import BadInputError
from rag.evaluation.plots import BY_TYPE_PNG, LATENCY_PNG, plot_latency, plot_metrics_by_type
from rag.evaluation.scoring import SUMMARY_KEYS, summarise

# Columns of the per-type and per-document tables, with their short headings.
TABLE_COLUMNS = {
    "hit_at_5": "hit@5",
    "recall_at_5": "recall@5",
    "mrr": "MRR",
    "quote_recall_at_5": "quote@5",
    "key_fact_accuracy": "key facts",
    "answer_f1": "F1",
    "rouge_l": "ROUGE-L",
    "citation_precision": "cit. P",
    "citation_recall": "cit. R",
    "refusal_recall": "refusal R",
    "false_refusal_rate": "false refusals",
    "total_p50_s": "total p50 s",
}
# 0-1 metrics worth a bar chart by type.
PLOT_METRICS = [k for k in TABLE_COLUMNS if not k.endswith("_s")]
WORST = 10


def fmt(value: Any) -> str:
    """`fmt(0.12345)` -> `"0.123"`; `fmt(None)` -> `"–"`; `fmt(7)` -> `"7"`."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: `table(["a"], [[1]])` -> `"| a |\\n|---|\\n| 1 |"`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def item_score(record: Mapping[str, Any]) -> float | None:
    """How well one item went, to rank the worst: the mean of its retrieval and answer scores;
    for an unanswerable item, 1 if it was refused. None when nothing was scored.

    `item_score({"answerable": True, "scores": {"recall_at_5": 1.0, "answer_f1": 0.5}})` -> `0.75`.
    """
    s = record["scores"]
    if not record.get("answerable", True):
        return None if s.get("refused") is None else float(bool(s["refused"]))
    values = [s[k] for k in ("recall_at_5", "mrr", "key_fact_accuracy", "answer_f1") if s.get(k) is not None]
    return sum(values) / len(values) if values else None


def grouped(
    records: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], list[str]]
) -> dict[str, dict[str, Any]]:
    """`summarise` over the records of each group; `key(record)` returns the group names of a record."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        for name in key(r):
            groups[name].append(r)
    return {name: summarise(rs) for name, rs in sorted(groups.items())}


def _group_table(groups: Mapping[str, Mapping[str, Any]], columns: Sequence[str], label: str) -> str:
    header = [label, "n", *(TABLE_COLUMNS[c] for c in columns)]
    return table(header, [[name, s["n"], *(s[c] for c in columns)] for name, s in groups.items()])


def _short(text: str, n: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _worst_section(records: Sequence[Mapping[str, Any]]) -> str:
    scored = [(score, r) for r in records if (score := item_score(r)) is not None]
    scored.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    parts = []
    for rank, (score, r) in enumerate(scored[:WORST], start=1):
        s = r["scores"]
        answer = r.get("answer")
        retrieved = answer["retrieved"] if answer else r.get("retrieved", [])
        shown = {
            k: s.get(k)
            for k in ("hit_at_5", "recall_at_5", "key_fact_accuracy", "answer_f1", "refused")
            if s.get(k) is not None
        }
        lines = [
            f"### {rank}. `{r['id']}` ({r['type']}, {r['split']}): score {fmt(score)}",
            "",
            f"- **Question:** {_short(r['question'])}",
            f"- **Reference:** {_short(r['reference'])} (documents: {', '.join(r['doc_ids']) or 'none'})",
        ]
        if r.get("standalone_question") and r["standalone_question"] != r["question"]:
            lines.append(f"- **Searched for:** {_short(r['standalone_question'])}")
        elif r.get("query") and r["query"] != r["question"]:
            lines.append(f"- **Searched for:** {_short(r['query'])}")
        if answer:
            how = " (refused)" if answer["refused"] else " (passages quoted)" if answer.get("partial") else ""
            lines.append(f"- **Answer{how}:** {_short(answer['answer'])}")
            if answer.get("decision"):
                lines.append(f"- **Decided by:** {answer['decision']['step']}: {answer['decision']['reason']}")
            if r.get("raw_answer") and r["raw_answer"] != answer["answer"]:
                lines.append(f"- **Model wrote:** {_short(r['raw_answer'])}")
        lines.append(f"- **Retrieved:** {', '.join(h['doc_id'] for h in retrieved) or 'nothing'}")
        lines.append(f"- **Scores:** {', '.join(f'{k} {fmt(v)}' for k, v in shown.items())}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else "No scored items."


def render_report(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """The Markdown text of report.md (plots are referenced by file name)."""
    by_type = grouped(records, lambda r: [r["type"]])
    by_doc = grouped(records, lambda r: r["doc_ids"] or ["(unanswerable)"])
    columns = [c for c in TABLE_COLUMNS if summary.get(c) is not None]
    n_ans = sum(bool(r["answerable"]) for r in records)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "\n\n".join(
            [
                "# Evaluation report",
                f"Mode **{summary.get('mode')}**, model **{summary.get('model') or '–'}**, top_k {summary.get('top_k')}; "
                f"{len(records)} items ({n_ans} answerable, {len(records) - n_ans} unanswerable); written {when}. "
                "Metric definitions: evals/README.md.",
                "## Summary",
                table(["metric", "value"], [[k, summary.get(k)] for k in SUMMARY_KEYS]),
                "## By question type",
                _group_table(by_type, columns, "type"),
                "## By document",
                "An item citing two documents counts under both.",
                _group_table(by_doc, columns, "document"),
                f"## The {WORST} worst items",
                "Ranked by the mean of recall@5, MRR, key facts and F1 (unanswerable items: 1 if refused, else 0).",
                _worst_section(records),
                "## Plots",
                f"![Latency per item]({LATENCY_PNG})",
                f"![Metrics by question type]({BY_TYPE_PNG})",
            ]
        )
        + "\n"
    )


def write_report(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], out_dir: Path) -> Path:
    """Write report.md and its two PNG plots into `out_dir`.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    by_type = grouped(records, lambda r: [r["type"]])
    metrics = [k for k in PLOT_METRICS if summary.get(k) is not None]
    plot_latency(records, out_dir / LATENCY_PNG)
    plot_metrics_by_type(by_type, metrics, out_dir / BY_TYPE_PNG)
    path = out_dir / "report.md"
    path.write_text(render_report(records, summary), encoding="utf-8")
    return path


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The summary.json of a run folder.

    Raises:
        BadInputError: the folder has no readable summary.json.
    """
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist: run `python -m rag eval --out {run_dir}` first") from None
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: cannot be read ({e})") from None


def compare_summaries(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any, float | None]]:
    """`(metric, A, B, B - A)` for every summary metric; the delta is None unless both are numbers.

    `compare_summaries({"mrr": 0.5}, {"mrr": 0.75})` includes the row `("mrr", 0.5, 0.75, 0.25)`.
    """
    keys = [*SUMMARY_KEYS, *sorted(k for k in {*a, *b} if k not in SUMMARY_KEYS)]
    rows = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (va, vb))
        rows.append((k, va, vb, vb - va if numeric else None))
    return rows


def comparison_table(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """The comparison as a Markdown table with columns metric, A, B, delta (signed)."""
    rows = [
        [k, va, vb, None if d is None else f"{d:+d}" if isinstance(d, int) else f"{d:+.3f}"]
        for k, va, vb, d in compare_summaries(a, b)
    ]
    return table(["metric", names[0], names[1], "delta"], rows)
