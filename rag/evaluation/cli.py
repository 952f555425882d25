"""The `eval` and `batch` subcommands, registered on `rag.cli`'s parser by `add_eval_commands`.

`eval` scores the pipeline on the reference set (or only its retrieval), compares two runs, or
checks the set itself; `batch` answers a question file without scoring. Argument handling only:
the work is in `harness`, `batch`, `report` and `qaset`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rag.errors import BadInputError
from rag.evaluation.qaset import HELD_OUT, SPLITS
from rag.settings import Settings

DEFAULT_QUESTIONS = Path("evals/qa.jsonl")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be 1 or more, not {value}")
    return value


def _check(path: Path, corpus_dir: Path) -> int:
    from rag.evaluation.qaset import QAItem, check_coverage, coverage, read_jsonl, validate_items

    parsed = [d for _, d in read_jsonl(path)]
    errors = validate_items(parsed, corpus_dir)
    for e in errors:
        print(f"{path}: {e}")
    if errors:
        print(f"{len(errors)} problems in {len(parsed)} items")
        return 1
    items = [QAItem.from_dict(d) for d in parsed]
    for key, value in coverage(items).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    problems = check_coverage(items)
    for p in problems:
        print(f"coverage: {p}")
    print(f"{len(items)} items valid; {'coverage minimums not met' if problems else 'coverage minimums met'}")
    return 1 if problems else 0


def _compare(dir_a: str, dir_b: str) -> int:
    from rag.evaluation.report import comparison_table, load_summary

    print(comparison_table(load_summary(Path(dir_a)), load_summary(Path(dir_b)), (dir_a, dir_b)))
    return 0


def add_eval_commands(
    sub: argparse._SubParsersAction,
    add_model_args: Callable[[argparse.ArgumentParser], None],
    make_settings: Callable[[argparse.Namespace], Settings],
) -> None:
    """Register `eval` and `batch` on the CLI's subparsers.

    Args:
        sub: the subparsers of `python -m rag`.
        add_model_args: adds the shared --backend/--model/--top-k/... options to a parser.
        make_settings: turns parsed arguments into `Settings`.
    """
    pe = sub.add_parser(
        "eval",
        help="score the pipeline on the reference Q&A set",
        description="Score the pipeline on a reference set into a run folder (resumable), "
        "compare two run folders, or check the set.",
    )
    pe.add_argument(
        "--questions", type=Path, default=DEFAULT_QUESTIONS, help=f"reference set (default {DEFAULT_QUESTIONS})"
    )
    pe.add_argument("--out", type=Path, help="run folder: results.jsonl, summary.json, report.md, plots")
    pe.add_argument("--limit", type=_positive_int, help="only the first N items (after --split)")
    pe.add_argument(
        "--split",
        choices=list(SPLITS),
        help=f"only this split (default: dev and test; the held-out splits {', '.join(HELD_OUT)} are run only when named)",
    )
    pe.add_argument(
        "--retrieval-only",
        dest="retrieval_only",
        action="store_true",
        help="score retrieval only, without generating (fast; no model needed)",
    )
    pe.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"), help="print B - A for every metric of two runs")
    pe.add_argument("--check", action="store_true", help="validate the reference set and its coverage, then exit")
    pe.add_argument(
        "--replay",
        type=Path,
        metavar="RUN",
        help="re-check RUN's recorded answers with the current citation check and decision (no model) into --out",
    )
    pe.add_argument(
        "--fit-answerability",
        dest="fit_answerability",
        type=Path,
        metavar="RUN",
        help="fit the answer/refuse decision on RUN's signals (use a dev run) and write it to --out (a .json file)",
    )
    pe.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(pe)

    def cmd_eval(args: argparse.Namespace) -> int:
        if args.compare:
            return _compare(*args.compare)
        settings = make_settings(args)
        if args.check:
            return _check(args.questions, settings.corpus_dir)
        if args.out is None:
            pe.error("--out DIR is needed (or --compare DIR_A DIR_B, or --check)")
        if args.fit_answerability:
            return _fit(args.fit_answerability, args.out)
        return _run_eval(args, settings)

    pe.set_defaults(func=cmd_eval)

    pb = sub.add_parser(
        "batch",
        help="answer a file of questions, one Answer JSON per line",
        description='Answer questions from a .jsonl file (objects with "question", optional "id" and '
        '"history") or a text file (one question per line); rerunning resumes.',
    )
    pb.add_argument("--questions", type=Path, required=True, help="a .jsonl/.ndjson or plain-text question file")
    pb.add_argument("--out", type=Path, required=True, help="output .jsonl (appended to; done ids are skipped)")
    pb.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(pb)

    def cmd_batch(args: argparse.Namespace) -> int:
        from rag.evaluation.batch import read_questions, run_batch
        from rag.pipeline import RagPipeline

        questions = read_questions(args.questions)
        pipe = RagPipeline.from_settings(make_settings(args))
        n = run_batch(pipe, questions, args.out, progress=not args.quiet)
        print(f"answered {n} questions ({len(questions) - n} were already done) -> {args.out}", file=sys.stderr)
        return 0

    pb.set_defaults(func=cmd_batch)


def _fit(run_dir: Path, out: Path) -> int:
    from rag.evaluation.calibrate import fit_from_run

    model = fit_from_run(run_dir)
    out.write_text(model.to_json(), encoding="utf-8")
    print(model.to_json().strip())
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag.evaluation.harness import run_eval
    from rag.evaluation.qaset import load_qaset, select_items
    from rag.evaluation.report import fmt
    from rag.pipeline import RagPipeline

    items = select_items(load_qaset(args.questions, settings.corpus_dir), args.split, args.limit)
    if not items:
        raise BadInputError(f"{args.questions}: no items in split {args.split!r}")
    from rag.generation import NoGenerator

    model_free = args.retrieval_only or args.replay is not None
    pipe = RagPipeline.from_settings(settings, generator=NoGenerator() if model_free else None)
    if args.replay is not None:
        from rag.evaluation.harness import replay_eval

        summary = replay_eval(pipe, items, args.replay, args.out, progress=not args.quiet)
    else:
        summary = run_eval(pipe, items, args.out, retrieval_only=args.retrieval_only, progress=not args.quiet)
    for key, value in summary.items():
        if value is not None:
            print(f"{key:>20}  {fmt(value)}")
    print(f"report: {args.out / 'report.md'}", file=sys.stderr)
    return 0
