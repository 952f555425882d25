"""`RagPipeline`: the facade that answers a question, in the order a reader follows it:
rewrite a follow-up -> retrieve -> prompt -> generate (streaming) -> check citations -> `Answer`.

While the model writes, each sentence it finishes is checked; once the checked sentences so far
already make an answer `rag.decision` will show (note 0007), they are sent as `Sentence` events,
which are never taken back: the final answer begins with them and can only add to them.

It receives every collaborator in its constructor; `from_settings` builds the real ones.
The CLI, the HTTP API, the browser chat and the evaluation all call this and nothing below it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from rag.answer_type import answers_the_question
from rag.answerability import AnswerabilityModel
from rag.citations import CitationChecker, opens_with_yes_or_no
from rag.decision import KEY_PASSAGE_LABEL, DecisionOptions, Draft, checked_answer, decide, subject_coverage
from rag.embedding import Embedder
from rag.errors import BadInputError, EmptyQuestionError
from rag.evidence import Quote, ranked_sentences
from rag.generation import Generator, OpeningFloor, stream_text
from rag.prompts import REFUSAL, answer_messages, rewrite_messages
from rag.query import question_parts, with_focus
from rag.retrieval import HybridRetriever, RetrievalResult
from rag.settings import Settings, shipped
from rag.stopping import StopSignal, acquire_unless
from rag.text import names, split_sentences
from rag.types import Answer, CheckedAnswer, Citation, Hit, Timings

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MARKER_OR_PART = re.compile(r"\[[\d,\s]*\]?")  # "[1]", "[1, 2]", or one still being written: "[1,"


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
class Sentence:
    """One checked sentence of the answer, final once sent: the answer shown begins with every
    `Sentence` of its stream, joined by spaces. `citations` are the ones it is the first to cite
    (a citation's quote may be widened in the final answer when a later sentence cites it too)."""

    data: str
    citations: tuple[Citation, ...] = ()
    kind: Literal["sentence"] = "sentence"


@dataclass(frozen=True)
class Finished:
    """The checked `Answer`: always the last event of a stream."""

    data: Answer
    kind: Literal["answer"] = "answer"


# One step of a streamed answer: `Rewritten`, then `Token`s with `Sentence`s among them, then
# `Finished`. `kind` tells them apart. Only `Sentence` and `Finished` are checked text.
StreamEvent = Rewritten | Token | Sentence | Finished


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


@dataclass(frozen=True)
class PipelineOptions:
    """The pipeline's knobs, one object built from `Settings` (see there for each one's meaning)."""

    top_k: int = shipped("top_k")
    max_new_tokens: int = shipped("max_new_tokens")
    temperature: float = shipped("temperature")
    min_relevance: float = shipped("min_relevance")
    rewrite_followups: bool = shipped("rewrite_followups")
    refusal_min_p: float = shipped("refusal_min_p")
    focus_query: str = shipped("focus_query")
    rare_term_max_df: int = shipped("rare_term_max_df")
    demonstrations: bool = shipped("demonstrations")
    follow_up_fusion: bool = shipped("follow_up_fusion")
    decision: DecisionOptions = field(default_factory=DecisionOptions)

    @classmethod
    def from_settings(cls, s: Settings) -> PipelineOptions:
        names = [f.name for f in fields(cls) if f.name != "decision"]
        decision = DecisionOptions(
            answerability=AnswerabilityModel.load() if s.answerability else None,
            answer_type_check=s.answer_type_check,
            key_passage=s.key_passage,
        )
        return cls(**{n: getattr(s, n) for n in names}, decision=decision)

    def but(self, **changes: Any) -> PipelineOptions:
        """These options with some changed; a `DecisionOptions` field name changes the decision's.

        `PipelineOptions().but(top_k=3, key_passage=False)` -> top_k 3, no key passage.
        """
        decision_names = {f.name for f in fields(DecisionOptions)}
        own = {k: v for k, v in changes.items() if k not in decision_names}
        theirs = {k: v for k, v in changes.items() if k in decision_names}
        return replace(self, **own, decision=replace(self.decision, **theirs))


class RagPipeline:
    """Answers questions from the indexed documents with checked citations.

    Args:
        retriever, generator, checker: the collaborators (`from_settings` builds the real ones).
        options: the knobs (default: the shipped settings' values, without the fitted decision).
        **changes: options to change, by name (`top_k=3`, `key_passage=False`, ...).
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        generator: Generator,
        checker: CitationChecker,
        options: PipelineOptions | None = None,
        **changes: Any,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.checker = checker
        self.options = (options or PipelineOptions()).but(**changes)
        # One model serves every request: each call takes its turn here, where a request whose
        # client has gone can leave the queue (a backend's own lock cannot be given up on).
        self.model_lock = threading.Lock()

    @property
    def top_k(self) -> int:
        return self.options.top_k

    @property
    def decision(self) -> DecisionOptions:
        return self.options.decision

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
        checker = CitationChecker(embedder, s.support_threshold, s.unsupported)
        return cls(retriever, generator or make_generator(s), checker, PipelineOptions.from_settings(s))

    def warm(self) -> None:
        """Load the model's weights and read the fixed prompt prefix (system prompt and worked
        examples) once, so the first question pays only for its own passages."""
        from rag.types import Chunk

        probe = Chunk("warm#0", "warm", "Warming up.", 0, 11)
        messages = answer_messages("Ready?", [Hit(probe, 0.0)], self.options.demonstrations)
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
        if not history or not self.options.rewrite_followups:
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
        return self.retriever.retrieve(query.strip(), k or self.options.top_k).hits

    def retrieve(self, query: str, k: int | None = None, also: tuple[str, ...] = ()) -> RetrievalResult:
        """The passages given to the model for a standalone `query` (with the documents' focus
        added when it asks about "the deal" without naming anyone), fused with those for `also`
        and for each party of a question that compares two; the best passage of each party is
        among them."""
        k = k or self.options.top_k
        parts = question_parts(query)
        focused = tuple(with_focus(q, self.options.focus_query) for q in (query, *also, *parts))
        result = self.retriever.retrieve(focused[0], k, also=focused[1:])
        bests = [h for part in focused[len(focused) - len(parts) :] for h in self.retriever.retrieve(part, 1).hits]
        keep = {h.chunk.chunk_id for h in bests}
        for best in bests:
            ids = [h.chunk.chunk_id for h in result.hits]
            if best.chunk.chunk_id in ids:
                continue
            # In place of the lowest-ranked passage that is no part's best.
            spare = [i for i, c in enumerate(ids) if c not in keep]
            if spare:
                result.hits[spare[-1]] = best
        return result

    def follow_up_query(self, question: str, history: list[dict[str, str]]) -> tuple[str, ...]:
        """What a follow-up also searches with: its own words after the previous question. The rewrite
        alone can lose the subject ("What was the Anthropic one focused on?" came back unchanged;
        "Who signed it for the UK?" became a query whose passages hold no signer)."""
        last_user = last_user_turn(history)
        return (f"{question} {last_user}",) if last_user and self.options.follow_up_fusion else ()

    def gate_refuses(self, query: str, result: RetrievalResult) -> bool:
        """Refuse before generating only when nothing is close: no passage, or a low best dense score
        and no word of the question that is rare in the corpus (a name such as "Humphrey")."""
        if not result.hits:
            return True
        if result.best_dense >= self.options.min_relevance:
            return False
        return not (self.options.rare_term_max_df and self.retriever.rare_terms(query, self.options.rare_term_max_df))

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
        k = top_k or self.options.top_k
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
            reason = f"no passage is close to the question (best dense score {result.best_dense:.2f}) and none of its words is rare in the documents"
            decision = {"outcome": "refused", "step": "retrieval_gate", "reason": reason}
            answer = Answer(question, REFUSAL, True, [], hits, timings, self.model_name, standalone_question=standalone)
            answer.decision = decision
            yield Finished(answer)
            return

        pieces: list[str] = []
        floor = OpeningFloor(REFUSAL, self.options.refusal_min_p) if self.options.refusal_min_p > 0 else None
        messages = answer_messages(standalone, hits, self.options.demonstrations)
        reply = stream_text(self.generator, messages, self.options.max_new_tokens, self.options.temperature, floor)
        release = SentenceRelease(self, standalone, hits, result.best_dense)
        # Closed when this stream is (its client went): the backend stops and the model is freed at once.
        with self.holding_model(stop), contextlib.closing(until_stopped(reply, stop)) as replied:
            for piece in replied:
                if not pieces:
                    timings.ttft_s = time.perf_counter() - t0
                pieces.append(piece)
                yield Token(piece)
                for sentence in release.feed(piece, floor.seen_p if floor is not None else None):
                    timings.first_sentence_s = timings.first_sentence_s or time.perf_counter() - t0
                    yield sentence
        p_refusal = floor.seen_p if floor is not None else None  # this call's own measurement
        signals = {"best_dense": result.best_dense, "p_refusal": p_refusal}
        answer = self.finish(question, standalone, hits, "".join(pieces), signals, release.ranked)
        for sentence in release.rest(answer):
            timings.first_sentence_s = timings.first_sentence_s or time.perf_counter() - t0
            yield sentence
        answer.timings = timings
        answer.tokens = len(pieces)
        timings.total_s = time.perf_counter() - t0
        yield Finished(answer)

    def finish(
        self,
        question: str,
        standalone: str,
        hits: list[Hit],
        raw: str,
        signals: dict[str, float | None],
        ranked: list[Quote] | None = None,
    ) -> Answer:
        """Check the model's `raw` text against `hits`, then let `rag.decision` choose what is shown:
        the checked answer, the passages' closest sentences quoted (`partial`), or the refusal.
        `signals` gains the decision's features; `Answer.decision` says which step decided and why.
        `ranked`: the passages' sentences ranked against `standalone`, when already done.
        """
        draft = self.draft(standalone, hits, raw, signals, ranked)
        verdict = decide(draft, self.decision)
        return Answer(
            question=question,
            answer=verdict.checked.text,
            refused=verdict.outcome == "refused",
            partial=verdict.outcome == "partial",
            citations=verdict.checked.citations,
            retrieved=hits,
            timings=Timings(),
            model=self.model_name,
            standalone_question=standalone,
            raw_answer=raw,
            sentences=draft.checked.sentences,
            signals=draft.signals,
            decision=verdict.to_dict(),
        )

    def draft(
        self,
        standalone: str,
        hits: list[Hit],
        raw: str,
        signals: dict[str, float | None],
        ranked: list[Quote] | None = None,
    ) -> Draft:
        """What the decision reads of the model's `raw` reply: its citation check, the passages'
        sentences ranked against `standalone` (`ranked`, when already done), and the signals:
        `signals` plus those of the check and of the passages (`passage_signals`)."""
        checked = self.checker.check(raw, hits, standalone)
        signals, fits = self.checked_signals(standalone, raw, checked, signals)
        ranked = ranked_sentences(standalone, hits, self.checker.embedder) if ranked is None else ranked
        signals.update(self.passage_signals(standalone, hits, ranked))
        return Draft(standalone, hits, raw, checked, ranked, signals, fits, self.retriever.documents)

    def passage_signals(self, question: str, hits: list[Hit], ranked: list[Quote]) -> dict[str, float]:
        """What the passages alone say of the question, fixed before the model writes: `top_sentence`,
        the best sentence's score in `ranked`, and `coverage`, the most of its subject a passage names."""
        return {
            "top_sentence": ranked[0].score if ranked else 0.0,
            "coverage": max(self.coverage(question, hits), default=0.0),
        }

    def checked_signals(
        self, question: str, raw: str, checked: CheckedAnswer, signals: dict[str, float | None]
    ) -> tuple[dict[str, float | None], bool | None]:
        """`signals` with what the decision reads of the checked draft, and whether it states the kind
        of thing asked (None: nothing to check). Each feature can only rise as sentences are added
        (the opening's p(refusal) is fixed by the first words), which `SentenceRelease` relies on."""
        signals = dict(signals)
        signals["support"] = max((c.score for c in checked.sentences if c.supported and c.cited), default=0.0)
        # The best score of any sentence, kept or not: a draft the check failed may still be close.
        signals["draft_score"] = max((c.score for c in checked.sentences), default=0.0)
        # The first token's p(refusal) is no doubt about the documents when the model answers "No":
        # "No" and "I can't find…" compete for that token on every yes/no question the passages deny.
        p_refusal = signals.get("p_refusal")
        signals["p_refusal_open_ended"] = (
            None if p_refusal is None else (0.0 if opens_with_yes_or_no(raw) else p_refusal)
        )
        # 0 only when the answer lacks the kind asked for; a question with no checkable kind, or a draft
        # the check refused, passes (as the check itself does): note 0004.
        fits = answers_the_question(question, checked.text) if not checked.refused else None
        signals["type_match"] = 0.0 if fits is False else 1.0
        return signals, fits

    def coverage(self, question: str, hits: list[Hit]) -> list[float]:
        """For each passage, the share of the question's subject it names (title and headings
        included), each word weighted by how rare it is among the documents."""
        n_docs = max(len(self.retriever.documents), 1)

        def weight(word: str) -> float:
            return math.log((n_docs + 1) / (self.retriever.document_frequency(word) + 0.5))

        texts = [" ".join([h.chunk.title, *h.chunk.heading_path, h.chunk.text]) for h in hits]
        return subject_coverage(question, texts, weight)

    def ask(self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None) -> Answer:
        """Answer `question` and return the checked `Answer` (see `stream` for errors)."""
        for event in self.stream(question, history, top_k):
            if event.kind == "answer":
                return event.data
        raise AssertionError("stream ended without an answer")  # pragma: no cover


class SentenceRelease:
    """Decides, while the model writes, which checked sentences can be sent for good.

    After each finished sentence the draft so far is checked; once its checked sentences already
    pass the `checked_answer` step (supported, of the kind asked, found answerable), every later
    step would keep them too: each signal the decision reads only rises as sentences are added.
    From then on each sentence the check keeps is released as soon as it is finished. A draft that
    never passes releases nothing, and its answer (quoted passages or a refusal) comes whole at the end.
    """

    def __init__(self, pipeline: RagPipeline, question: str, hits: list[Hit], best_dense: float) -> None:
        self.pipeline = pipeline
        self.question = question
        self.hits = hits
        self.best_dense = best_dense
        self.raw = ""
        self.done = 0  # sentences of `raw` judged so far
        self.sent = ""  # the checked text released so far
        self.cited = 0  # citations released so far
        self.settled = False
        self.can_settle = settles_early(pipeline.decision.answerability)
        self.ranked: list[Quote] | None = None  # the passages' sentences, ranked once a sentence is checked

    def feed(self, piece: str, p_refusal: float | None) -> list[Sentence]:
        """Sentences released by `piece` (only a sentence followed by the next one's start is finished)."""
        self.raw += piece
        if not self.can_settle:
            return []  # everything comes at the end: nothing to check before it
        pieces = split_sentences(self.raw)
        # A sentence is finished once the next has begun: a word, not only a marker that may be its own.
        finished = pieces[:-1] if pieces and re.search(r"\w", MARKER_OR_PART.sub("", pieces[-1])) else pieces[:-2]
        if len(finished) == self.done:
            return []
        self.done = len(finished)
        checked = self.pipeline.checker.check(" ".join(finished), self.hits, self.question)
        if not self.settled:
            if self.ranked is None:
                self.ranked = ranked_sentences(self.question, self.hits, self.pipeline.checker.embedder)
            signals = {"best_dense": self.best_dense, "p_refusal": p_refusal}
            signals, fits = self.pipeline.checked_signals(self.question, self.raw, checked, signals)
            signals.update(self.pipeline.passage_signals(self.question, self.hits, self.ranked))
            draft = Draft(self.question, self.hits, self.raw, checked, self.ranked, signals, fits)
            opts = replace(self.pipeline.decision, key_passage=False)
            self.settled = checked_answer(draft, opts) is not None
        return self.release(checked) if self.settled else []

    def rest(self, answer: Answer) -> list[Sentence]:
        """The answer's checked sentences not yet released, when its decision was the checked answer."""
        if answer.decision.get("step") != "checked_answer":
            if self.sent:  # cannot happen while every signal only rises; logged should it ever
                log.error("sent sentences of an answer later decided by %s", answer.decision.get("step"))
            return []
        body = answer.answer.split(KEY_PASSAGE_LABEL, 1)[0]
        return self.release(CheckedAnswer(body, False, answer.citations, answer.sentences))

    def release(self, checked: CheckedAnswer) -> list[Sentence]:
        """What `checked` says after the text already sent, as one `Sentence`; nothing when it does
        not extend that text (the checker joins its sentences with one space)."""
        text = checked.text
        if self.sent and not text.startswith(self.sent + " "):
            if text != self.sent:
                log.error("a checked draft does not extend the sentences already sent; holding the rest")
            return []
        new = text[len(self.sent) :].strip()
        if not new:
            return []
        cites = tuple(c for c in checked.citations if c.n > self.cited and f"[{c.n}]" in new)
        self.cited = max([self.cited, *(c.n for c in cites)])
        self.sent = f"{self.sent} {new}" if self.sent else new
        return [Sentence(new, cites)]


# The signals a draft's checked prefix can only raise as sentences are added, and those fixed before
# the first sentence ends; a fitted decision must read only these, the first with weights >= 0.
RISING_SIGNALS = frozenset({"support", "draft_score", "type_match"})
FIXED_SIGNALS = frozenset({"best_dense", "p_refusal", "p_refusal_open_ended", "top_sentence", "coverage"})


def settles_early(model: AnswerabilityModel | None) -> bool:
    """Whether a prefix the fitted `model` accepts stays accepted whatever sentences follow; when
    not (a refit that gives a rising signal a negative weight), nothing is sent before the end."""
    if model is None:
        return True
    return all(
        (name in RISING_SIGNALS and w >= 0) or name in FIXED_SIGNALS or w == 0 for name, w in model.weights.items()
    )


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
