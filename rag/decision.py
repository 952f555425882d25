"""After the model has spoken: one ordered list of steps that turns the checked draft into what
the reader is shown, the answer, the closest passages quoted, or the refusal, and says why.

Every step has one signature: it takes the `Draft` (the question, the passages the model saw,
its checked reply, the passage sentences ranked against the question, and the signals) and
returns a `Verdict` or None ("not mine to decide"). The first verdict wins and is kept in
`Answer.decision` as the step's name and its reason. A refusal says "the documents don't hold
this", so it is kept for evidence that is off the question's subject: when the passages hold
sentences on it but the draft cannot be shown, those sentences are quoted instead (`partial`).
This module neither retrieves nor generates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from rag.answer_type import answers_the_question, expected_types
from rag.answerability import AnswerabilityModel, Quote, key_excerpt
from rag.lexical import tokenize
from rag.prompts import REFUSAL
from rag.text import strip_markers
from rag.types import CheckedAnswer, Citation, Document, Hit

Outcome = Literal["answer", "partial", "refused"]
EVIDENCE_OPENING = "I couldn't write a checked answer; the closest passages say:"
KEY_PASSAGE_LABEL = "\n\nKey passage: "  # what follows the checked sentences of an answer


@dataclass
class Draft:
    """What a step decides on.

    Attributes:
        question: the standalone question the passages were found for.
        hits: the passages the model was shown, in prompt order.
        raw: the model's reply as generated.
        checked: the citation check's verdict on `raw` (supported sentences kept).
        ranked: the passages' sentences, closest to the question first.
        signals: the answer's signals (`p_answerable` is added by the answer step).
        fits: whether the checked text states the kind of thing asked (`answers_the_question`;
            None when there is nothing to check or the check refused the draft).
        coverage: for each of `ranked`, the share of the question's subject its passage names.
        documents: the indexed documents by id, to place a quoted sentence in its document.
    """

    question: str
    hits: list[Hit]
    raw: str
    checked: CheckedAnswer
    ranked: list[Quote]
    signals: dict[str, float | None]
    fits: bool | None = None
    coverage: list[float] = field(default_factory=list)
    documents: Mapping[str, Document] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """What was decided, by which step, and why (in words a reader of `--json` can follow)."""

    outcome: Outcome
    step: str
    reason: str
    checked: CheckedAnswer

    def to_dict(self) -> dict[str, str]:
        return {"outcome": self.outcome, "step": self.step, "reason": self.reason}


@dataclass(frozen=True)
class DecisionOptions:
    """The knobs of what happens after generation, built from `Settings` by `from_settings`.

    Attributes:
        answerability: the fitted p(answerable); None answers every checked draft.
        answer_type_check: a draft must state the kind of thing asked (a sum for "how much").
        key_passage: end an answer with the cited passage's sentences closest to the question.
        min_coverage: the share of the question's subject (its words, weighted by how rare they
            are in the corpus) a passage must name for its sentences to be quoted as evidence when
            the fitted decision doubts the question. On dev retrieval (167 items, no model), a
            passage of the asked kind reaches 0.75 for 13.6% of answerable and 4.1% of unanswerable
            questions; 0.5 for 43% and 25%: lower quotes too many of the unanswerable.
        evidence_sentences: at most this many sentences are quoted as evidence (0: none, so a draft
            that cannot be shown is refused).
        min_sentence_score: a sentence whose own score in the ranking (`rag.evidence`) reaches this
            is on the subject whatever its passage names (None: off), when the model's doubt
            (its p(refusal opening), `evidence_max_p_refusal`) is low enough.
        evidence_max_p_refusal: see `min_sentence_score` (None: any).
    """

    answerability: AnswerabilityModel | None = None
    answer_type_check: bool = True
    key_passage: bool = True
    min_coverage: float = 0.75
    evidence_sentences: int = 2
    min_sentence_score: float | None = None
    evidence_max_p_refusal: float | None = None


Step = Callable[[Draft, DecisionOptions], Verdict | None]


def checked_answer(draft: Draft, opts: DecisionOptions) -> Verdict | None:
    """The model's checked reply, when the check kept a sentence, it states the kind of thing asked,
    and the fitted decision finds it answerable; with the key passage appended."""
    checked = draft.checked
    if checked.refused:
        return None
    if opts.answer_type_check and draft.fits is False:
        return None
    p = p_answerable(draft, opts)
    if p is not None and opts.answerability is not None and p < opts.answerability.threshold:
        return None
    kept = sum(1 for s in checked.sentences if s.supported and s.cited)
    reason = f"{kept} of {len(checked.sentences)} sentences supported by the passages they cite"
    if opts.key_passage:
        checked = with_key_passage(checked, draft)
    return Verdict("answer", "checked_answer", reason, checked)


def evidence_excerpt(draft: Draft, opts: DecisionOptions) -> Verdict | None:
    """The passages' sentences closest to the question, quoted with their citations, when the draft
    could not be shown but the passages are on the question's subject: the fitted decision finds
    the question answerable, or a sentence's passage names most of the subject (`min_coverage`).
    Only sentences that state the kind of thing asked are quoted."""
    if opts.evidence_sentences <= 0:
        return None
    p = p_answerable(draft, opts)
    answerable = p is not None and opts.answerability is not None and p >= opts.answerability.threshold
    subject = set(tokenize(draft.question))
    citations: list[Citation] = []
    doubt = draft.signals.get("p_refusal_open_ended")
    sure = opts.evidence_max_p_refusal is None or (doubt is not None and doubt <= opts.evidence_max_p_refusal)
    for q, cov in zip(draft.ranked, draft.coverage, strict=True):
        text = q.text(draft.hits)
        close = opts.min_sentence_score is not None and sure and q.score >= opts.min_sentence_score
        if not (answerable or close or cov >= opts.min_coverage) or not subject & set(tokenize(text)):
            continue  # off the subject: its passage names too little of it, or the sentence none
        if answers_the_question(draft.question, text) is False:
            continue
        citation = quote_citation(draft, q, len(citations) + 1)
        if citation is not None:
            citations.append(citation)
        if len(citations) == opts.evidence_sentences:
            break
    if not citations:
        return None
    text = " ".join([EVIDENCE_OPENING, *(f"“{c.quote}” [{c.n}]" for c in citations)])
    checked = CheckedAnswer(text, False, citations, draft.checked.sentences)
    return Verdict("partial", "evidence_excerpt", why_not_answered(draft, opts), checked)


def p_answerable(draft: Draft, opts: DecisionOptions) -> float | None:
    """The fitted p(answerable) of the draft's signals (kept in `signals`), or None without a model."""
    if opts.answerability is None:
        return None
    if draft.signals.get("p_answerable") is None:
        features = {k: v for k, v in draft.signals.items() if v is not None}
        draft.signals["p_answerable"] = opts.answerability.probability(features)
    return draft.signals["p_answerable"]


def off_topic(draft: Draft, opts: DecisionOptions) -> Verdict:
    """The refusal: no passage is about the question's subject."""
    reason = f"no passage names enough of the question's subject ({why_not_answered(draft, opts)})"
    return Verdict("refused", "off_topic", reason, CheckedAnswer(REFUSAL, True, [], draft.checked.sentences))


STEPS: tuple[Step, ...] = (checked_answer, evidence_excerpt, off_topic)


def decide(draft: Draft, opts: DecisionOptions, steps: Sequence[Step] = STEPS) -> Verdict:
    """The first verdict of `steps` on `draft` (the last step must always decide)."""
    for step in steps:
        verdict = step(draft, opts)
        if verdict is not None:
            return verdict
    raise AssertionError("the last decision step must always decide")


def why_not_answered(draft: Draft, opts: DecisionOptions) -> str:
    """Why the model's own reply is not shown, in a few words."""
    if draft.checked.refused and draft.raw.strip().lower().startswith(REFUSAL[:12].lower()):
        return "the model said the documents do not hold it"
    if draft.checked.refused:
        return "no sentence of the draft is supported by a passage it cites"
    if opts.answer_type_check and draft.fits is False:
        kinds = " or ".join(sorted(expected_types(draft.question)))
        return f"the draft does not state the {kinds} asked for"
    p = draft.signals.get("p_answerable")
    threshold = opts.answerability.threshold if opts.answerability else 0.0
    return f"the fitted decision doubts the draft (p(answerable) {p:.2f} < {threshold:.2f})" if p is not None else ""


def subject_coverage(question: str, texts: Sequence[str], weight: Callable[[str], float]) -> list[float]:
    """For each text, the share of the question's words (weighted, e.g. by rarity) it contains.

    `subject_coverage("OpenAI staff in London", ["OpenAI has 100 staff", "In London"], lambda w: 1.0)`
    -> `[0.667, 0.333]` (to three places).
    """
    words = list(dict.fromkeys(tokenize(question)))
    total = sum(weight(w) for w in words)
    if not words or total <= 0:
        return [0.0 for _ in texts]
    out = []
    for text in texts:
        have = set(tokenize(text))
        out.append(sum(weight(w) for w in words if w in have) / total)
    return out


def with_key_passage(checked: CheckedAnswer, draft: Draft) -> CheckedAnswer:
    """`checked` followed by the key passage: the sentences of a passage the answer cites that are
    closest to the question and not already said, `… [1]\\n\\nKey passage: “…” [1] “…” [1]`."""
    hits = draft.hits
    cited_ids = {c.chunk_id for c in checked.citations}
    cited = {i for i, h in enumerate(hits) if h.chunk.chunk_id in cited_ids}
    key = key_excerpt(
        draft.ranked, hits, cited, strip_markers(checked.text), partial(answers_the_question, draft.question)
    )
    if not key:
        return checked
    j = key[0].hit
    n = next(c.n for c in checked.citations if c.chunk_id == hits[j].chunk.chunk_id)
    quotes = " ".join(f"“{' '.join(q.text(hits).split())}” [{n}]" for q in key)
    return CheckedAnswer(
        f"{checked.text}{KEY_PASSAGE_LABEL}{quotes}", checked.refused, checked.citations, checked.sentences
    )


def quote_citation(draft: Draft, q: Quote, n: int) -> Citation | None:
    """Citation `n` of the sentence `q`, with its span in its document's text, or None when the
    sentence is not in the document word for word (a passage's text may carry more than its span)."""
    chunk = draft.hits[q.hit].chunk
    quote = chunk.text[q.start : q.end].strip()
    body = draft.documents[chunk.doc_id].body if chunk.doc_id in draft.documents else ""
    at = body.find(quote, max(chunk.start + q.start - 200, 0)) if quote else -1
    at = at if at >= 0 or not quote else body.find(quote)
    if at < 0:
        return None
    return Citation(
        n=n,
        doc_id=chunk.doc_id,
        title=chunk.title,
        url=chunk.source_url,
        quote=quote,
        start=at,
        end=at + len(quote),
        chunk_id=chunk.chunk_id,
        publisher=chunk.publisher,
        date=chunk.date,
        heading_path=list(chunk.heading_path),
    )
