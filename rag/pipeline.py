"""`RagPipeline`: the facade that answers a question, in the order a reader follows it:
rewrite a follow-up -> retrieve -> prompt -> generate (streaming) -> check citations -> `Answer`.

It receives every collaborator in its constructor; `from_settings` builds the real ones.
The CLI, the HTTP API, the browser chat and the evaluation all call this and nothing below it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from rag.answer_type import answers_the_question, defined_term
from rag.answerability import RARE_TERM_FEATURE_MAX_DF, AnswerabilityModel, Quote, key_excerpt, ranked_sentences
from rag.citations import CheckedAnswer, CitationChecker, is_refusal, opens_with_yes_or_no
from rag.embedding import Embedder
from rag.errors import BadInputError, EmptyQuestionError
from rag.evidence import tighten
from rag.generation import Generator, OpeningFloor, stream_text
from rag.lexical import tokenize
from rag.prompts import REFUSAL, answer_messages, rewrite_messages
from rag.query import with_focus
from rag.retrieval import HybridRetriever, RetrievalResult
from rag.settings import Settings, shipped
from rag.stopping import StopSignal, acquire_unless
from rag.text import names, strip_markers
from rag.types import Answer, Citation, Hit, SentenceCheck, Timings

log = logging.getLogger(__name__)

# How an answer made of a passage quote opens (when the model could not phrase one).
QUOTED_ANSWER_OPENING = "The documents say: "

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


def last_user_turn(history: list[dict[str, Any]]) -> str:
    """The user's previous question: `[{"role": "user", "content": "Q"}, {"role": "assistant", …}]` -> "Q"."""
    return next((str(m.get("content", "")) for m in reversed(history) if m.get("role") == "user"), "")


class RagPipeline:
    """Answers questions from the indexed documents with checked citations."""

    def __init__(
        self,
        retriever: HybridRetriever,
        generator: Generator,
        checker: CitationChecker,
        *,
        top_k: int = shipped("top_k"),
        max_new_tokens: int = shipped("max_new_tokens"),
        temperature: float = shipped("temperature"),
        min_relevance: float = shipped("min_relevance"),
        rewrite_followups: bool = shipped("rewrite_followups"),
        refusal_min_p: float = shipped("refusal_min_p"),
        focus_query: str = shipped("focus_query"),
        rare_term_max_df: int = shipped("rare_term_max_df"),
        demonstrations: bool = shipped("demonstrations"),
        answerability: AnswerabilityModel | None = None,
        evidence_sentences: int = shipped("evidence_sentences"),
        evidence_neighbours: int = shipped("evidence_neighbours"),
        passage_order: Literal["retrieval", "best_first", "best_last", "by_document"] = shipped("passage_order"),
        answer_type_check: bool = shipped("answer_type_check"),
        question_first: bool = shipped("question_first"),
        key_passage: bool = shipped("key_passage"),
        follow_up_fusion: bool = shipped("follow_up_fusion"),
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
        self.focus_query = focus_query
        self.rare_term_max_df = rare_term_max_df
        self.demonstrations = demonstrations
        self.answerability = answerability
        self.evidence_sentences = evidence_sentences
        self.evidence_neighbours = evidence_neighbours
        self.passage_order = passage_order
        self.answer_type_check = answer_type_check
        self.question_first = question_first
        self.key_passage = key_passage
        self.follow_up_fusion = follow_up_fusion
        # One model serves every request: each call takes its turn here, where a request whose
        # client has gone can leave the queue (a backend's own lock cannot be given up on).
        self.model_lock = threading.Lock()

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
        retriever = HybridRetriever(
            data, embedder, s.candidates, s.rrf_k, s.dedup_threshold, s.retrieval_mode, s.body_keywords
        )
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
            focus_query=s.focus_query,
            rare_term_max_df=s.rare_term_max_df,
            demonstrations=s.demonstrations,
            answerability=AnswerabilityModel.load() if s.answerability else None,
            evidence_sentences=s.evidence_sentences,
            evidence_neighbours=s.evidence_neighbours,
            passage_order=s.passage_order,
            answer_type_check=s.answer_type_check,
            question_first=s.question_first,
            key_passage=s.key_passage,
            follow_up_fusion=s.follow_up_fusion,
        )

    def warm(self) -> None:
        """Load the model's weights and read the fixed prompt prefix (system prompt and worked
        examples) once, so the first question pays only for its own passages."""
        from rag.types import Chunk

        probe = Chunk("warm#0", "warm", "Warming up.", 0, 11)
        messages = answer_messages("Ready?", [Hit(probe, 0.0)], self.demonstrations, self.question_first)
        with self.model_lock:
            self.generator.generate(messages, max_tokens=1)

    @property
    def model_name(self) -> str:
        return self.generator.name

    @contextlib.contextmanager
    def holding_model(self, stop: StopSignal | None = None) -> Iterator[None]:
        """Hold the model for one call: wait for the calls before it, unless `stop` is set first.

        Raises:
            RequestTimeoutError, AnswerStoppedError: `stop` was set (see `StopSignal.error`);
                nothing was generated.
        """
        if not acquire_unless(self.model_lock, stop):
            assert stop is not None  # only a signal ends the wait without the lock
            raise stop.error()
        try:
            yield
        finally:
            self.model_lock.release()

    def rewrite(self, question: str, history: list[dict[str, str]], stop: StopSignal | None = None) -> str:
        """A standalone form of a follow-up question (the question itself when there is no history).

        Raises:
            RequestTimeoutError, AnswerStoppedError: `stop` was set before the rewrite's end.
        """
        if not history or not self.rewrite_followups:
            return question
        with self.holding_model(stop):
            pieces = stream_text(self.generator, rewrite_messages(question, history), 64, 0.0)
            text = "".join(until_stopped(pieces, stop))
        lines = [ln.strip().strip('"').strip() for ln in text.strip().splitlines() if ln.strip()]
        rewritten = lines[0] if lines else ""
        for prefix in ("Standalone question:", "Question:"):
            if rewritten.lower().startswith(prefix.lower()):
                rewritten = rewritten[len(prefix) :].strip()
        # A small model sometimes answers instead of rewriting; fall back to plain concatenation.
        if not rewritten or len(rewritten) > 3 * len(question) + 200:
            rewritten = f"{last_user_turn(history)} {question}".strip()
        # ...or swaps the party the follow-up names for the one discussed before: keep the user's words.
        if any(n.lower() not in rewritten.lower() for n in names(question)):
            rewritten = question
        return rewritten

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        if not query or not query.strip():
            raise EmptyQuestionError("The search query is empty.")
        return self.retriever.retrieve(query.strip(), k or self.top_k).hits

    def retrieve(self, query: str, k: int | None = None, also: tuple[str, ...] = ()) -> RetrievalResult:
        """The passages given to the model for a standalone `query` (with the documents' focus
        added when it asks about "the deal" without naming anyone), fused with those for `also`."""
        focused = tuple(with_focus(q, self.focus_query) for q in (query, *also))
        return self.retriever.retrieve(focused[0], k or self.top_k, also=focused[1:])

    def follow_up_query(self, question: str, history: list[dict[str, str]]) -> tuple[str, ...]:
        """What a follow-up also searches with: its own words after the previous question. The rewrite
        alone can lose the subject ("What was the Anthropic one focused on?" came back unchanged;
        "Who signed it for the UK?" became a query whose passages hold no signer)."""
        last_user = last_user_turn(history)
        return (f"{question} {last_user}",) if last_user and self.follow_up_fusion else ()

    def evidence(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The passages as the model sees them: whole, or cut to their best sentences (`evidence_sentences`),
        in retrieval order, ordered by their best sentence's closeness to the question, or grouped by
        document (`passage_order`; measured in note 0004, retrieval order is shipped)."""
        hits = tighten(query, hits, self.checker.embedder, self.evidence_sentences, self.evidence_neighbours)
        if self.passage_order == "retrieval" or len(hits) < 2:
            return hits
        if self.passage_order == "by_document":
            # Passages of one document together, in the document's own order; documents by their best passage.
            first: dict[str, int] = {}
            for i, h in enumerate(hits):
                first.setdefault(h.chunk.doc_id, i)
            return sorted(hits, key=lambda h: (first[h.chunk.doc_id], h.chunk.start))
        best: dict[int, float] = {}
        for q in ranked_sentences(query, hits, self.checker.embedder):
            best.setdefault(q.hit, q.score)
        order = sorted(range(len(hits)), key=lambda i: -best.get(i, 0.0))
        if self.passage_order == "best_last":
            order.reverse()
        return [hits[i] for i in order]

    def gate_refuses(self, query: str, result: RetrievalResult) -> bool:
        """Refuse before generating only when nothing is close: no passage, or a low best dense score
        and no word of the question that is rare in the corpus (a name such as "Humphrey")."""
        if not result.hits:
            return True
        if result.best_dense >= self.min_relevance:
            return False
        return not (self.rare_term_max_df and self.retriever.rare_terms(query, self.rare_term_max_df))

    def stream(
        self,
        question: str,
        history: list[dict[str, Any]] | None = None,
        top_k: int | None = None,
        stop: StopSignal | None = None,
    ) -> Iterator[StreamEvent]:
        """Answer `question`, yielding the rewritten question, each generated piece, then the `Answer`.

        Tokens are the model's raw text (with its own markers); the final `Answer` is the checked one.
        Each model call waits its turn for the model (calls of this pipeline run one at a time).

        Args:
            stop: once set (its client went, or its deadline passed), an answer still waiting for
                the model never starts, and one generating stops after the piece under way.

        Raises:
            EmptyQuestionError: the question is blank.
            BadInputError: the question is too long.
            GenerationError: the model backend failed.
            RequestTimeoutError, AnswerStoppedError: `stop` was set (see `StopSignal.error`).
        """
        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError()
        if len(question) > MAX_QUESTION_CHARS:
            raise BadInputError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
        k = top_k or self.top_k
        t0 = time.perf_counter()
        turns = clean_history(history)
        standalone = self.rewrite(question, turns, stop)
        yield Rewritten(standalone)

        result = self.retrieve(standalone, k, also=self.follow_up_query(question, turns))
        hits = result.hits
        t_retrieved = time.perf_counter()
        timings = Timings(retrieve_s=t_retrieved - t0)

        if self.gate_refuses(standalone, result):
            log.info("refusing without generation: best dense score %.3f", result.best_dense)
            timings.total_s = time.perf_counter() - t0
            yield Finished(
                Answer(question, REFUSAL, True, [], hits, timings, self.model_name, standalone_question=standalone)
            )
            return

        hits = self.evidence(standalone, hits)
        pieces: list[str] = []
        floor = OpeningFloor(REFUSAL, self.refusal_min_p) if self.refusal_min_p > 0 else None
        messages = answer_messages(standalone, hits, self.demonstrations, self.question_first)
        reply = stream_text(self.generator, messages, self.max_new_tokens, self.temperature, floor)
        # Closed when this stream is (its client went): the backend stops and the model is freed at once.
        with self.holding_model(stop), contextlib.closing(until_stopped(reply, stop)) as replied:
            for piece in replied:
                if not pieces:
                    timings.ttft_s = time.perf_counter() - t0
                pieces.append(piece)
                yield Token(piece)
            # Read while the model is still ours: the next call would overwrite it.
            p_refusal = self.generator.last_opening_p if floor and self.generator.supports_opening_floor else None
        signals = {"best_dense": result.best_dense, "p_refusal": p_refusal}
        answer = self.finish(question, standalone, hits, "".join(pieces), signals)
        answer.timings = timings
        answer.tokens = len(pieces)
        timings.total_s = time.perf_counter() - t0
        yield Finished(answer)

    def finish(
        self, question: str, standalone: str, hits: list[Hit], raw: str, signals: dict[str, float | None]
    ) -> Answer:
        """Check the model's `raw` text against `hits` and decide between it, a quote and the refusal.

        The citation check keeps the supported sentences. Then the answerability decision (when
        one is loaded) has the last word: "not answerable" turns an answer into the refusal, and
        "answerable" turns a refusal into the passage sentence that best answers the question,
        quoted with its citation. A "what is X?" question that would be refused is answered with the
        best passage sentence naming X, quoted. `signals` gains the check's and the quote's scores.
        """
        checked = self.checker.check(raw, hits, standalone)
        ranked = ranked_sentences(standalone, hits, self.checker.embedder)
        quote = ranked[0] if ranked else None
        # The quote may stand in for an answer only when it says what kind of thing was asked.
        quote_fits = quote is not None and answers_the_question(standalone, quote.text(hits)) is not False
        signals = dict(signals)
        signals["rare_terms"] = float(len(self.retriever.rare_terms(standalone, RARE_TERM_FEATURE_MAX_DF)))
        signals["best_sentence"] = quote.score if quote else 0.0
        signals["support"] = max((c.score for c in checked.sentences if c.supported and c.cited), default=0.0)
        signals["model_refused"] = float(is_refusal(raw.strip()[:200]) if raw.strip() else 1.0)
        # The first token's p(refusal) is no doubt about the documents when the model answers "No":
        # "No" and "I can't find…" compete for that token on every yes/no question the passages deny.
        p_refusal = signals.get("p_refusal")
        signals["p_refusal_open_ended"] = (
            None if p_refusal is None else (0.0 if opens_with_yes_or_no(raw) else p_refusal)
        )
        fits = answers_the_question(standalone, checked.text) if not checked.refused else None
        # 0 only when the answer lacks the kind asked for; a question with no checkable kind, or a draft
        # the check refused, passes (as the check itself does). Left unset, the decision would take the
        # mean for those, and refuse a plain "why" answer on a first-token p(refusal) of 2% (note 0004).
        signals["type_match"] = 0.0 if fits is False else 1.0
        if self.answer_type_check and fits is False:
            # A true sentence beside the point ("OpenAI will expand its London office" for "how much").
            refusal = CheckedAnswer(REFUSAL, True, [], checked.sentences)
            checked = (
                quoted_answer(hits, quote.hit, quote.start, quote.end, checked.sentences) if quote_fits else refusal
            )
        if self.answerability is not None:
            p = self.answerability.probability({k: v for k, v in signals.items() if v is not None})
            signals["p_answerable"] = p
            if p < self.answerability.threshold and not checked.refused:
                checked = CheckedAnswer(REFUSAL, True, [], checked.sentences)
            elif p >= self.answerability.threshold and checked.refused and quote_fits:
                checked = quoted_answer(hits, quote.hit, quote.start, quote.end, checked.sentences)
        if checked.refused and (defining := definition_quote(standalone, ranked, hits)) is not None:
            # "What is Humphrey?": a passage sentence that names the term says what the documents hold on it.
            checked = quoted_answer(hits, defining.hit, defining.start, defining.end, checked.sentences)
        if self.key_passage and not checked.refused and not checked.text.startswith(QUOTED_ANSWER_OPENING):
            cited_ids = {c.chunk_id for c in checked.citations}
            cited = {i for i, h in enumerate(hits) if h.chunk.chunk_id in cited_ids}
            fit = partial(answers_the_question, standalone)
            key = key_excerpt(ranked, hits, cited, strip_markers(checked.text), fit)
            if key:
                checked = with_key_passage(checked, hits, key)
        return Answer(
            question=question,
            answer=checked.text,
            refused=checked.refused,
            citations=checked.citations,
            retrieved=hits,
            timings=Timings(),
            model=self.model_name,
            standalone_question=standalone,
            raw_answer=raw,
            sentences=checked.sentences,
            signals=signals,
        )

    def ask(self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None) -> Answer:
        """Answer `question` and return the checked `Answer` (see `stream` for errors)."""
        for event in self.stream(question, history, top_k):
            if event.kind == "answer":
                return event.data
        raise AssertionError("stream ended without an answer")  # pragma: no cover


def until_stopped(pieces: Iterator[str], stop: StopSignal | None) -> Iterator[str]:
    """`pieces` until `stop` is set, which is read after each piece, before the next is asked for;
    a generator `pieces` is closed however this ends (a backend stops generating when its stream is).

    Raises:
        RequestTimeoutError, AnswerStoppedError: `stop` was set before the last piece.
    """
    try:
        for piece in pieces:
            yield piece
            if stop is not None:
                stop.check()
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def definition_quote(question: str, ranked: list[Quote], hits: list[Hit]) -> Quote | None:
    """For a "what is X?" question, the best-ranked passage sentence holding every word of X; else None."""
    term = defined_term(question)
    want = set(tokenize(term)) if term else set()
    return next((q for q in ranked if want and want <= set(tokenize(q.text(hits)))), None)


def quoted_answer(hits: list[Hit], j: int, start: int, end: int, checks: list[SentenceCheck]) -> CheckedAnswer:
    """An answer that quotes passage `j`'s text[start:end] with citation [1], for when the model
    could not phrase one: `The documents say: “…” [1]`."""
    citation = _quote_citation(hits, j, start, end, 1)
    return CheckedAnswer(f"{QUOTED_ANSWER_OPENING}“{citation.quote}” [1]", False, [citation], checks)


def with_key_passage(checked: CheckedAnswer, hits: list[Hit], key: list[Quote]) -> CheckedAnswer:
    """`checked` followed by the key passage: sentences of one passage that the answer cites, each
    quoted with that passage's number, `… [1]\n\nKey passage: “…” [1] “…” [1]`."""
    j = key[0].hit
    n = next(c.n for c in checked.citations if c.chunk_id == hits[j].chunk.chunk_id)
    quotes = " ".join(f"“{' '.join(q.text(hits).split())}” [{n}]" for q in key)
    return CheckedAnswer(
        f"{checked.text}\n\nKey passage: {quotes}", checked.refused, checked.citations, checked.sentences
    )


def _quote_citation(hits: list[Hit], j: int, start: int, end: int, n: int) -> Citation:
    chunk = hits[j].chunk
    text = chunk.text[start:end].strip()
    return Citation(
        n=n,
        doc_id=chunk.doc_id,
        title=chunk.title,
        url=chunk.source_url,
        quote=text,
        start=chunk.start + start,
        end=chunk.start + end,
        chunk_id=chunk.chunk_id,
        publisher=chunk.publisher,
        date=chunk.date,
        heading_path=list(chunk.heading_path),
    )
