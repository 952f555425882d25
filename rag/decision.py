"""After the model has spoken: one ordered list of steps that turns the checked draft into what
the reader is shown, the answer, the closest passages quoted, or the refusal, and says why.

Every step has one signature: it takes the `Draft` (the question, the passages the model saw,
its checked reply, the passage sentences ranked against the question, and the signals) and
returns a `Verdict` or None ("not mine to decide"). The first verdict wins and is kept in
`Answer.decision` as the step's name and its reason. One fitted probability that the documents
answer the question (`rag.answerability`) is the gate. A refusal says "the documents don't hold
this", so it is kept for questions below the gate: above it, a draft that cannot be shown gives
way to the passages' closest sentences on the question's subject, quoted (`partial`).
This module neither retrieves nor generates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

from rag.answer_type import answers_the_question, asks_how_much, expected_types, unanswered_parts
from rag.answerability import AnswerabilityModel, Quote, key_excerpt
from rag.citations import amounts_attributed, sums_of_money
from rag.lexical import tokenize
from rag.prompts import REFUSAL
from rag.text import names, strip_markers
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
        documents: the indexed documents by id, to place a quoted sentence in its document.
    """

    question: str
    hits: list[Hit]
    raw: str
    checked: CheckedAnswer
    ranked: list[Quote]
    signals: dict[str, float | None]
    fits: bool | None = None
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
        answerability: the fitted p(answerable), the one gate: below its threshold the reader gets
            the refusal, at or above it the checked draft or, when that cannot be shown, the
            passages' closest sentences. None lets every question through.
        answer_type_check: a draft must state the kind of thing asked (a sum for "how much"), and an
            answer to a two-part question says which part the passages do not cover.
        key_passage: end an answer with the cited passage's sentences closest to the question.
        evidence_sentences: at most this many sentences are quoted as evidence (0: none, so a draft
            that cannot be shown is refused).
        quote_sum_actor: for a "how much" question that names who pays ("How much is OpenAI
            paying…?"), a quoted sentence must name that party before its sum, as the citation
            check asks of a claim (`amounts_attributed`).
    """

    answerability: AnswerabilityModel | None = None
    answer_type_check: bool = True
    key_passage: bool = True
    evidence_sentences: int = 2
    quote_sum_actor: bool = True


Step = Callable[[Draft, DecisionOptions], Verdict | None]


def checked_answer(draft: Draft, opts: DecisionOptions) -> Verdict | None:
    """The model's checked reply, when the check kept a sentence, it states the kind of thing asked,
    and the fitted decision finds the question answerable; with the key passage appended."""
    checked = draft.checked
    if checked.refused or (opts.answer_type_check and draft.fits is False) or not answerable(draft, opts):
        return None
    kept = sum(1 for s in checked.sentences if s.supported and s.cited)
    reason = f"{kept} of {len(checked.sentences)} sentences supported by the passages they cite"
    if opts.key_passage:
        checked = with_key_passage(checked, draft)
    missing = unanswered_parts(draft.question, strip_markers(checked.text)) if opts.answer_type_check else []
    if missing:
        checked = with_note(checked, uncovered_note(missing))
        reason += f"; {len(missing)} part of the question not stated by them"
    return Verdict("answer", "checked_answer", reason, checked)


def uncovered_note(parts: list[str]) -> str:
    """The sentence that says which part of a two-part question the passages do not answer."""
    quoted = " ".join(f"“{p[0].upper()}{p[1:]}”" for p in parts)
    return f"The passages found do not cover this part of the question: {quoted}"


def with_note(checked: CheckedAnswer, note: str) -> CheckedAnswer:
    """`checked` with `note` as the last sentence of its answer, before any key passage."""
    body, label, key = checked.text.partition(KEY_PASSAGE_LABEL)
    return replace(checked, text=f"{body} {note}{label}{key}")


def evidence_excerpt(draft: Draft, opts: DecisionOptions) -> Verdict | None:
    """The passages' sentences closest to the question, quoted with their citations, when the draft
    could not be shown but the fitted decision finds the question answerable. Only sentences that
    name part of the question's subject and state the kind of thing asked are quoted."""
    if opts.evidence_sentences <= 0 or not answerable(draft, opts):
        return None
    subject = set(tokenize(draft.question))
    actor = sum_actor(draft.question) if opts.quote_sum_actor else None
    citations: list[Citation] = []
    for q in draft.ranked:
        text = q.text(draft.hits)
        if not subject & set(tokenize(text)) or answers_the_question(draft.question, text) is False:
            continue
        if actor is not None and not all(amounts_attributed(f"{actor} {sum_}", text) for sum_ in sums_of_money(text)):
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


def sum_actor(question: str) -> str | None:
    """Who a "how much" question says pays or receives: its first name, or None (no name, or not a
    question about money). `sum_actor("How much is OpenAI paying the UK government?")` -> "OpenAI"."""
    if not asks_how_much(question):
        return None
    return next(iter(names(question)), None)


def answerable(draft: Draft, opts: DecisionOptions) -> bool:
    """Whether the fitted decision lets the question through (always, without a fitted model)."""
    p = p_answerable(draft, opts)
    return p is None or p >= opts.answerability.threshold


def p_answerable(draft: Draft, opts: DecisionOptions) -> float | None:
    """The fitted p(answerable) of the draft's signals (also kept in `signals`), or None without a
    model. Computed afresh each time: signals replayed from a recorded run carry the p of the model
    that recorded them."""
    if opts.answerability is None:
        return None
    features = {k: v for k, v in draft.signals.items() if v is not None and k != "p_answerable"}
    draft.signals["p_answerable"] = opts.answerability.probability(features)
    return draft.signals["p_answerable"]


def off_topic(draft: Draft, opts: DecisionOptions) -> Verdict:
    """The refusal: the fitted decision finds the documents do not answer the question, or no
    passage sentence on its subject states the kind of thing asked."""
    p = p_answerable(draft, opts)
    if p is not None and p < opts.answerability.threshold:
        reason = f"the documents do not seem to answer it (p(answerable) {p:.2f} < {opts.answerability.threshold:.2f})"
    else:
        reason = f"no passage sentence on the question's subject states what it asks ({why_not_answered(draft, opts)})"
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
    """Why the model's own reply is not shown, above the gate, in a few words."""
    if draft.checked.refused and opens_with_refusal(draft.raw):
        return "the model said the documents do not hold it"
    if draft.checked.refused:
        return "no sentence of the draft is supported by a passage it cites"
    if opts.answer_type_check and draft.fits is False:
        kinds = " or ".join(sorted(expected_types(draft.question)))
        return f"the draft does not state the {kinds} asked for"
    return ""


def opens_with_refusal(raw: str) -> bool:
    """Whether the model's reply opens with the refusal ("I can't find that in the documents.")."""
    return raw.strip().lower().startswith(REFUSAL[:12].lower())


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
