"""Replay a run's recorded drafts through the sentence stream, with no model: feed each raw reply
word by word to `SentenceRelease` as the model would, and report whether the streamed sentences
are always the beginning of the final answer, how often an answer streams before its end, and
how far into the reply its first sentence goes out.

`python -m rag.evaluation.stream_replay RUN` prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from rag.evaluation.records import recorded_results
from rag.pipeline import RagPipeline, SentenceRelease
from rag.types import Hit


def word_pieces(text: str) -> list[str]:
    """`"A b. C"` -> `["A ", "b. ", "C"]`, the pieces a model streams, near enough."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + words[-1:]


def replay(pipeline: RagPipeline, run_dir: Path) -> dict[str, Any]:
    """The figures of streaming every generated item of `run_dir`."""
    chunks = {c.chunk_id: c for c in pipeline.retriever.chunks}
    n = same = early = broken = 0
    at: list[float] = []  # share of the reply's pieces written when its first sentence went out
    for rec in recorded_results(run_dir):
        raw = rec.get("raw_answer")
        if not raw:
            continue
        n += 1
        question = rec["standalone_question"]
        hits = [Hit(chunks[h["chunk_id"]], h["score"]) for h in rec["answer"]["retrieved"]]
        signals = rec.get("signals", {})
        release = SentenceRelease(pipeline, question, hits, signals.get("best_dense") or 0.0)
        pieces = word_pieces(raw)
        sent: list[str] = []
        first_at = None
        for i, piece in enumerate(pieces, 1):
            out = release.feed(piece, signals.get("p_refusal"))
            if out and first_at is None:
                first_at = i / len(pieces)
            sent += [s.data for s in out]
        base = {"best_dense": signals.get("best_dense"), "p_refusal": signals.get("p_refusal")}
        answer = pipeline.finish(rec["question"], question, hits, raw, base)
        sent += [s.data for s in release.rest(answer)]
        same += answer.answer == rec["answer"]["answer"]
        streamed = " ".join(sent)
        broken += bool(streamed) and not answer.answer.startswith(streamed)
        if first_at is not None:
            early += 1
            at.append(first_at)
    return {
        "generated": n,
        "final_answer_as_recorded": same,
        "stream_not_a_prefix_of_the_answer": broken,
        "first_sentence_before_the_end": early,
        "first_sentence_at_share_of_reply_p50": round(statistics.median(at), 3) if at else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    from rag.generation import NoGenerator
    from rag.settings import Settings

    pipeline = RagPipeline.from_settings(Settings(), generator=NoGenerator())
    print(json.dumps(replay(pipeline, args.run)))


if __name__ == "__main__":
    main()
