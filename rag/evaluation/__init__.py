"""Reference Q&A set, metrics, the batch evaluation harness and its report.

`python -m rag eval` and `python -m rag batch` are wired in `rag.evaluation.cli`; the pieces
below are importable for notebooks and tests. Metric definitions: evals/README.md.
"""

from rag.evaluation.batch import read_questions, run_batch
from rag.evaluation.harness import run_eval
from rag.evaluation.qaset import QAItem, check_coverage, coverage, load_qaset, select_items, validate_items
from rag.evaluation.report import compare_summaries, write_report
from rag.evaluation.scoring import score_answer, score_retrieval, summarise

__all__ = [
    "QAItem",
    "check_coverage",
    "compare_summaries",
    "coverage",
    "load_qaset",
    "read_questions",
    "run_batch",
    "run_eval",
    "score_answer",
    "score_retrieval",
    "select_items",
    "summarise",
    "validate_items",
    "write_report",
]
