import numpy as np

from rag.answerability import AnswerabilityModel, choose_threshold, fit, key_excerpt, ranked_sentences
from rag.prompts import REFUSAL
from rag.types import Chunk, Hit
from tests.fakes import HashEmbedder


def test_fit_separates_answerable_from_unanswerable():
    rng = np.random.default_rng(0)
    rows = [{"best_dense": float(x), "support": float(x) / 2} for x in rng.uniform(0.5, 1.0, 30)]
    rows += [{"best_dense": float(x), "support": 0.0} for x in rng.uniform(0.0, 0.4, 10)]
    labels = [True] * 30 + [False] * 10
    model = fit(rows, labels, features=("best_dense", "support"))
    probs = [model.probability(r) for r in rows]
    assert min(probs[:30]) > max(probs[30:])
    assert model.weights["best_dense"] > 0
    again = AnswerabilityModel.load_text(model.to_json())
    assert again.probability(rows[0]) == model.probability(rows[0])


def test_threshold_separates_best_within_the_false_refusal_budget():
    probs = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
    labels = [True] * 10 + [False]
    # Refusing the one unanswerable item costs no answerable one: no higher threshold is worth it.
    assert choose_threshold(probs, labels, 0.10) == 0.1
    probs = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.12, 0.05]
    labels = [True] * 10 + [False, False]
    assert choose_threshold(probs, labels, 0.0) == 0.1  # refuse no answerable item: one of two refused
    assert choose_threshold(probs, labels, 0.10) == 0.15  # one answerable refused buys the second


def test_key_excerpt_adds_the_better_neighbour_and_skips_what_the_answer_says():
    text = "Ferries run daily. The breakwater costs £40 million. The board pays for the breakwater. Gulls nest."
    hits = [Hit(Chunk("a#0", "a", text, 0, len(text)), 1.0)]
    ranked = ranked_sentences("How much does the breakwater cost?", hits, HashEmbedder())
    key = key_excerpt(ranked, hits, {0}, "It costs a lot.", lambda t: None)
    assert [q.text(hits) for q in key] == ["The breakwater costs £40 million.", "The board pays for the breakwater."]
    said = "The breakwater costs £40 million."
    assert [q.text(hits) for q in key_excerpt(ranked, hits, {0}, said, lambda t: None)][0] != said
    assert key_excerpt(ranked, hits, set(), "", lambda t: None) == []  # no cited passage, no excerpt
    assert key_excerpt(ranked, hits, {0}, "", lambda t: False) == []  # nothing states what was asked


def test_best_sentence_is_the_one_about_the_question():
    text = "Ferries run daily. The breakwater costs £40 million."
    ranked = ranked_sentences(
        "How much does the breakwater cost?", [Hit(Chunk("a#0", "a", text, 0, len(text)), 1.0)], HashEmbedder()
    )
    q = ranked[0]
    assert text[q.start : q.end] == "The breakwater costs £40 million."


def _model(bias: float) -> AnswerabilityModel:
    return AnswerabilityModel(weights={}, bias=bias, mean={}, scale={}, threshold=0.5)


def test_a_refused_draft_on_the_subject_becomes_the_closest_passages_quoted(make_pipeline):
    pipe, _ = make_pipeline([REFUSAL], answerability=_model(5.0))
    ans = pipe.ask("Which sectors could OpenAI provide technology to?")
    assert not ans.refused and ans.partial and ans.decision["step"] == "evidence_excerpt"
    assert "the model said the documents do not hold it" in ans.decision["reason"]
    assert "education" in ans.citations[0].quote and ans.citations[0].doc_id == "openai-deal"


def test_a_doubted_answer_is_not_shown_as_an_answer(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI may provide technology to education and defence [1]."], answerability=_model(-5.0))
    ans = pipe.ask("Which sectors could OpenAI provide technology to?")
    assert ans.decision["outcome"] == "refused" and ans.signals["p_answerable"] < 0.5
    assert "do not seem to answer it (p(answerable) 0.01" in ans.decision["reason"]
    assert ans.answer != "OpenAI may provide technology to education and defence [1]."


def test_the_shipped_decision_was_fitted_on_dev_with_the_chosen_features():
    from rag.answerability import FEATURES, L2

    model = AnswerabilityModel.load()
    assert tuple(model.weights) == FEATURES and model.meta["l2"] == L2
    assert model.meta["splits"] == ["dev"]
    # Each signal points the way it should: support and a stated answer type towards "answerable",
    # the model's own probability of opening with the refusal away from it.
    w = model.weights
    assert w["support"] > 0 and w["type_match"] > 0 and w["p_refusal_open_ended"] < 0
    assert model.meta["n"] >= 150 and model.meta["n"] - model.meta["answerable"] >= 40  # enough of each kind


def test_a_yes_no_answer_s_refusal_probability_is_not_counted_as_doubt(make_pipeline):
    pipe, _ = make_pipeline()
    question = "Is the Cohere memorandum legally binding?"
    hits = pipe.retrieve(question).hits
    no = pipe.finish(question, question, hits, "No, it is not legally binding [1].", {"p_refusal": 0.3})
    open_ended = pipe.finish(question, question, hits, "It is not legally binding [1].", {"p_refusal": 0.3})
    unknown = pipe.finish(question, question, hits, "No, it is not legally binding [1].", {"p_refusal": None})
    assert no.signals["p_refusal_open_ended"] == 0.0 and no.signals["p_refusal"] == 0.3
    assert open_ended.signals["p_refusal_open_ended"] == 0.3
    assert unknown.signals["p_refusal_open_ended"] is None  # a backend without token probabilities


def test_the_type_signal_is_zero_only_for_an_answer_missing_the_asked_kind(make_pipeline):
    # Left unset for questions with no checkable kind, the decision used to take the signal's mean and
    # refuse those answers on a small p(refusal); now they pass the type signal as they pass the check.
    pipe, _ = make_pipeline()
    question = "Which sectors could OpenAI provide technology to?"
    hits = pipe.retrieve(question).hits
    why = pipe.finish(question, question, hits, "OpenAI may provide technology to education and defence [1].", {})
    missing = pipe.finish(
        "How much is it?", "How much money is OpenAI investing?", hits, "OpenAI may work with education [1].", {}
    )
    assert why.signals["type_match"] == 1.0
    assert missing.signals["type_match"] == 0.0
