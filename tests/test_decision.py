"""Each step of the decision after generation, on drafts built by hand: the checked answer, the
passages quoted when the draft cannot be shown, and the refusal below the fitted gate or when no
passage sentence is on the subject."""

from __future__ import annotations

from rag.answer_type import answers_the_question
from rag.answerability import AnswerabilityModel
from rag.citations import CitationChecker
from rag.decision import (
    EVIDENCE_OPENING,
    STEPS,
    DecisionOptions,
    Draft,
    checked_answer,
    decide,
    evidence_excerpt,
    off_topic,
    subject_coverage,
    sum_actor,
)
from rag.evidence import ranked_sentences
from rag.prompts import REFUSAL
from rag.types import Chunk, Document, Hit
from tests.fakes import HashEmbedder

HARBOUR = "The harbour board approved the breakwater. The breakwater costs £40 million. It opens in 2026."
FISH = "Fish quotas were set for the coming season."


def hits() -> list[Hit]:
    return [
        Hit(Chunk("harbour#0", "harbour", HARBOUR, 0, len(HARBOUR), title="Harbour plan"), 1.0),
        Hit(Chunk("fish#0", "fish", FISH, 0, len(FISH), title="Fisheries"), 0.5),
    ]


def draft(question: str, raw: str, **signals: float) -> Draft:
    hs = hits()
    embedder = HashEmbedder()
    checked = CitationChecker(embedder).check(raw, hs, question)
    ranked = ranked_sentences(question, hs, embedder)
    fits = answers_the_question(question, checked.text) if not checked.refused else None
    docs = {"harbour": Document("harbour", "Harbour plan", HARBOUR), "fish": Document("fish", "Fisheries", FISH)}
    return Draft(question, hs, raw, checked, ranked, dict(signals), fits, docs)


ALWAYS = AnswerabilityModel(weights={}, bias=5.0, mean={}, scale={}, threshold=0.5)
NEVER = AnswerabilityModel(weights={}, bias=-5.0, mean={}, scale={}, threshold=0.5)


def test_a_supported_draft_of_the_asked_kind_is_the_answer():
    d = draft("How much does the breakwater cost?", "The breakwater costs £40 million [1].")
    verdict = checked_answer(d, DecisionOptions(key_passage=False))
    assert verdict is not None and verdict.outcome == "answer" and verdict.step == "checked_answer"
    assert verdict.checked.text == "The breakwater costs £40 million [1]." and "1 of 1" in verdict.reason


def test_a_two_part_answer_says_which_part_the_passages_do_not_cover():
    question = "How much does the breakwater cost, and where will it be built?"
    d = draft(question, "The breakwater costs £40 million [1].")
    verdict = checked_answer(d, DecisionOptions())
    assert verdict is not None and verdict.outcome == "answer"
    body, _, key = verdict.checked.text.partition("Key passage:")
    # The note closes the answer's own sentences, before the key passage.
    assert body.strip().endswith("The passages found do not cover this part of the question: “Where will it be built?”")
    assert "1 part of the question not stated" in verdict.reason and "£40 million" not in key
    assert "do not cover" not in checked_answer(d, DecisionOptions(answer_type_check=False)).checked.text
    # Both parts answered: no note.
    both = draft(
        "How much does the breakwater cost, and when does it open?", "It costs £40 million and opens in 2026 [1]."
    )
    assert "do not cover" not in checked_answer(both, DecisionOptions()).checked.text


def test_the_answer_step_passes_on_a_draft_of_the_wrong_kind_or_a_doubted_one():
    wrong_kind = draft("How much does the breakwater cost?", "The harbour board approved the breakwater [1].")
    assert checked_answer(wrong_kind, DecisionOptions()) is None
    doubted = draft("How much does the breakwater cost?", "The breakwater costs £40 million [1].")
    assert checked_answer(doubted, DecisionOptions(answerability=NEVER)) is None
    assert doubted.signals["p_answerable"] < 0.5


def test_a_refused_draft_on_the_subject_shows_the_closest_sentences_of_the_asked_kind():
    d = draft("How much does the breakwater cost?", REFUSAL)
    verdict = evidence_excerpt(d, DecisionOptions(answerability=ALWAYS))
    assert verdict is not None and verdict.outcome == "partial" and verdict.step == "evidence_excerpt"
    assert verdict.checked.text.startswith(EVIDENCE_OPENING)
    assert "“The breakwater costs £40 million.” [1]" in verdict.checked.text
    assert all("approved" not in c.quote for c in verdict.checked.citations)  # no sum in it: not quoted
    assert verdict.checked.citations[0].doc_id == "harbour" and not verdict.checked.refused
    assert "the model said the documents do not hold it" in verdict.reason
    # With no sentences to quote, the step stands aside and the refusal decides.
    assert evidence_excerpt(d, DecisionOptions(answerability=ALWAYS, evidence_sentences=0)) is None
    assert decide(d, DecisionOptions(answerability=ALWAYS, evidence_sentences=0)).step == "off_topic"


def test_no_evidence_when_no_passage_sentence_names_the_subject():
    d = draft("How tall is the lighthouse in Zennor?", REFUSAL)
    assert evidence_excerpt(d, DecisionOptions(answerability=ALWAYS)) is None
    verdict = decide(d, DecisionOptions(answerability=ALWAYS))
    assert verdict.outcome == "refused" and verdict.step == "off_topic" and verdict.checked.text == REFUSAL
    assert "no passage sentence on the question's subject" in verdict.reason


def test_below_the_fitted_gate_the_draft_and_the_passages_give_way_to_the_refusal():
    supported = draft("How much does the breakwater cost?", "The breakwater costs £40 million [1].")
    failed = draft("How much does the breakwater cost?", "")  # the check removed every sentence
    for d in (supported, failed):
        verdict = decide(d, DecisionOptions(answerability=NEVER))
        assert verdict.outcome == "refused" and verdict.step == "off_topic"
        assert "p(answerable) 0.01 < 0.50" in verdict.reason
    assert decide(failed, DecisionOptions(answerability=ALWAYS)).outcome == "partial"
    assert decide(failed, DecisionOptions()).outcome == "partial"  # no fitted gate: every question passes


def test_a_sum_is_quoted_for_a_how_much_question_only_when_it_is_the_named_partys():
    # The harbour board's £40 million is not the council's: a question about what the council pays
    # gets no quoted sum, as the citation check would refuse "The council pays £40 million".
    council = draft("How much is the Council paying for the breakwater?", REFUSAL)
    assert sum_actor(council.question) == "Council"
    assert evidence_excerpt(council, DecisionOptions(answerability=ALWAYS)) is None
    shown = evidence_excerpt(council, DecisionOptions(answerability=ALWAYS, quote_sum_actor=False))
    assert shown is not None and "£40 million" in shown.checked.text  # without the rule it was quoted
    # A question naming no party still gets the sum.
    anyone = draft("How much does the breakwater cost?", REFUSAL)
    assert sum_actor(anyone.question) is None
    # A question that names a price or a cost names what is priced, or who reports it, not who pays.
    assert sum_actor("What does the Harbour Board say the breakwater costs?") is None
    assert evidence_excerpt(anyone, DecisionOptions(answerability=ALWAYS)) is not None


def test_the_last_step_always_decides_and_the_steps_run_in_order():
    assert STEPS[-1] is off_topic
    d = draft("How much does the breakwater cost?", "The breakwater costs £40 million [1].")
    assert decide(d, DecisionOptions(key_passage=False)).step == "checked_answer"


def test_coverage_weights_the_rare_words():
    weights = {"breakwater": 5.0}
    cov = subject_coverage("breakwater cost", ["the breakwater", "the cost"], lambda w: weights.get(w, 1.0))
    assert cov[0] > 0.8 > 0.2 > cov[1]
    assert subject_coverage("OpenAI staff in London", ["OpenAI has 100 staff"], lambda w: 1.0) == [2 / 3]


def test_when_the_fitted_decision_finds_it_answerable_the_closest_sentences_are_quoted_whatever_the_coverage():
    d = draft("How much will the seawall cost?", REFUSAL)  # "seawall": no passage names it
    assert evidence_excerpt(d, DecisionOptions(answerability=NEVER)) is None
    verdict = evidence_excerpt(d, DecisionOptions(answerability=ALWAYS))
    assert verdict is not None and verdict.outcome == "partial" and "£40 million" in verdict.checked.text


def test_a_sentence_not_in_its_document_word_for_word_is_not_quoted():
    d = draft("How much does the breakwater cost?", REFUSAL)
    d.documents = {}  # the passages' documents are unknown: nothing can be placed, so nothing is quoted
    assert evidence_excerpt(d, DecisionOptions(answerability=ALWAYS)) is None
