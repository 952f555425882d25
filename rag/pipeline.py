"""`RagPipeline`: the facade that answers a question, in the order a reader follows it:
rewrite a follow-up -> retrieve -> prompt -> generate (streaming) -> check citations -> `Answer`.

It receives every collaborator in its constructor; `from_settings` builds the real ones.
The CLI, the HTTP API, the browser chat and the evaluation all call this and nothing below it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from rag.citations import CitationChecker
from rag.embedding import Embedder
from rag.errors import BadInputError, EmptyQuestionError
from rag.generation import Generator, OpeningFloor, stream_text
from rag.prompts import REFUSAL, answer_messages, rewrite_messages
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from rag.types import Answer, Hit, Timings

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class Rewritten:
    """The standalone question retrieval will use (the question itself when there is no history)."""

    data: str
    kind: Literal["rewritten"] = "rewritten"


@dataclass(frozen=True)
class Token:
    """One piece of the model's raw reply, before its citations are checked."""

    data: str
    kind: Literal["token"] = "token"


@dataclass(frozen=True)
class Finished:
    """The checked `Answer`: always the last event of a stream."""

    data: Answer
    kind: Literal["answer"] = "answer"


# One step of a streamed answer: `Rewritten`, then `Token`s, then `Finished`. `kind` tells them apart.
StreamEvent = Rewritten | Token | Finished


def clean_history(history: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """Keep well-formed user/assistant turns: `[{"role": "user", "content": "..."}]`."""
    out = []
    for m in history or []:
        if isinstance(m, dict) and m.get("role") in ("user", "assistant") and str(m.get("content", "")).strip():
            out.append({"role": m["role"], "content": str(m["content"])})
    return out


class RagPipeline:
    """Answers questions from the indexed documents with checked citations."""

    def __init__(
        self,
        retriever: HybridRetriever,
        generator: Generator,
        checker: CitationChecker,
        *,
        top_k: int = 5,
        max_new_tokens: int = 300,
        temperature: float = 0.0,
        min_relevance: float = 0.2,
        rewrite_followups: bool = True,
        refusal_min_p: float = 0.0,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.checker = checker
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.min_relevance = min_relevance
        self.rewrite_followups = rewrite_followups
        self.refusal_min_p = refusal_min_p

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        rebuild_index: bool = False,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
    ) -> RagPipeline:
        """Build the real pipeline: packaged embedder, saved index, configured generator.

        Args:
            settings: defaults to `Settings()` (the `RAG_*` environment).
            rebuild_index: build the index first when it is missing or stale.
            generator: use this instead of building the configured one (e.g. `NoGenerator()`
                for retrieval-only work, which then loads no model).
            embedder: use this embedder instead of loading the packaged one.

        Raises:
            IndexMissingError, IndexStaleError: the index needs (re)building and `rebuild_index` is off.
            ModelMissingError: a packaged model is missing or corrupt.
        """
        from rag.embedding import SentenceTransformerEmbedder
        from rag.generation import make_generator
        from rag.indexing import open_index

        s = settings or Settings()
        embedder = embedder or SentenceTransformerEmbedder()
        data = open_index(s, embedder, rebuild=rebuild_index)
        retriever = HybridRetriever(data, embedder, s.candidates, s.rrf_k, s.dedup_threshold, s.retrieval_mode)
        return cls(
            retriever,
            generator or make_generator(s),
            CitationChecker(embedder, s.support_threshold, s.unsupported),
            top_k=s.top_k,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            min_relevance=s.min_relevance,
            rewrite_followups=s.rewrite_followups,
            refusal_min_p=s.refusal_min_p,
        )

    @property
    def model_name(self) -> str:
        return self.generator.name

    def rewrite(self, question: str, history: list[dict[str, str]]) -> str:
        """A standalone form of a follow-up question (the question itself when there is no history)."""
        if not history or not self.rewrite_followups:
            return question
        text = self.generator.generate(rewrite_messages(question, history), max_tokens=64, temperature=0.0)
        lines = [ln.strip().strip('"').strip() for ln in text.strip().splitlines() if ln.strip()]
        rewritten = lines[0] if lines else ""
        for prefix in ("Standalone question:", "Question:"):
            if rewritten.lower().startswith(prefix.lower()):
                rewritten = rewritten[len(prefix) :].strip()
        # A small model sometimes answers instead of rewriting; fall back to plain concatenation.
        if not rewritten or len(rewritten) > 3 * len(question) + 200:
            last_user = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
            rewritten = f"{last_user} {question}".strip()
        return rewritten

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        if not query or not query.strip():
            raise EmptyQuestionError("The search query is empty.")
        return self.retriever.retrieve(query.strip(), k or self.top_k).hits

    def stream(
        self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None
    ) -> Iterator[StreamEvent]:
        """Answer `question`, yielding the rewritten question, each generated piece, then the `Answer`.

        Tokens are the model's raw text (with its own markers); the final `Answer` is the checked one.

        Raises:
            EmptyQuestionError: the question is blank.
            BadInputError: the question is too long.
            GenerationError: the model backend failed.
        """
        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        if len(question) > MAX_QUESTION_CHARS:
            raise BadInputError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
        k = top_k or self.top_k
        t0 = time.perf_counter()
        turns = clean_history(history)
        standalone = self.rewrite(question, turns)
        yield Rewritten(standalone)

        result = self.retriever.retrieve(standalone, k)
        hits = result.hits
        t_retrieved = time.perf_counter()
        timings = Timings(retrieve_s=t_retrieved - t0)

        if not hits or result.best_dense < self.min_relevance:
            log.info("refusing without generation: best dense score %.3f", result.best_dense)
            timings.total_s = time.perf_counter() - t0
            yield Finished(
                Answer(question, REFUSAL, True, [], hits, timings, self.model_name, standalone_question=standalone)
            )
            return

        pieces: list[str] = []
        floor = OpeningFloor(REFUSAL, self.refusal_min_p) if self.refusal_min_p > 0 else None
        for piece in stream_text(
            self.generator, answer_messages(standalone, hits), self.max_new_tokens, self.temperature, floor
        ):
            if not pieces:
                timings.ttft_s = time.perf_counter() - t0
            pieces.append(piece)
            yield Token(piece)
        raw = "".join(pieces)
        checked = self.checker.check(raw, hits, standalone)
        timings.total_s = time.perf_counter() - t0
        yield Finished(
            Answer(
                question=question,
                answer=checked.text,
                refused=checked.refused,
                citations=checked.citations,
                retrieved=hits,
                timings=timings,
                model=self.model_name,
                standalone_question=standalone,
                raw_answer=raw,
                sentences=checked.sentences,
                tokens=len(pieces),
            ),
        )

    def ask(self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None) -> Answer:
        """Answer `question` and return the checked `Answer` (see `stream` for errors)."""
        for event in self.stream(question, history, top_k):
            if event.kind == "answer":
                return event.data
        raise AssertionError("stream ended without an answer")  # pragma: no cover
