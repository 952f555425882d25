import numpy as np

from rag.answerability import AnswerabilityModel, best_sentence, choose_threshold, fit
from rag.prompts import REFUSAL
from rag.types import Chunk, Hit
from tests.fakes import HashEmbedder


def test_fit_separates_answerable_from_unanswerable():
    rng = np.random.default_rng(0)
    rows = [{"best_dense": float(x), "support": float(x) / 2} for x in rng.uniform(0.5, 1.0, 30)]
    rows += [{"best_dense": float(x), "support": 0.0} for x in rng.uniform(0.0, 0.4, 10)]
    labels = [True] * 30 + [False] * 10
    model = fit(rows, labels)
    probs = [model.probability(r) for r in rows]
    assert min(probs[:30]) > max(probs[30:])
    assert model.weights["best_dense"] > 0
    again = AnswerabilityModel.load_text(model.to_json())
    assert again.probability(rows[0]) == model.probability(rows[0])


def test_threshold_allows_the_target_share_of_false_refusals():
    probs = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
    labels = [True] * 10 + [False]
    assert choose_threshold(probs, labels, 0.0) == 0.1  # refuse no answerable item
    assert choose_threshold(probs, labels, 0.10) == 0.15  # one of ten may be refused


def test_best_sentence_is_the_one_about_the_question():
    text = "Ferries run daily. The breakwater costs £40 million."
    q = best_sentence(
        "How much does the breakwater cost?", [Hit(Chunk("a#0", "a", text, 0, len(text)), 1.0)], HashEmbedder()
    )
    assert q is not None and text[q.start : q.end] == "The breakwater costs £40 million."


def _model(bias: float) -> AnswerabilityModel:
    return AnswerabilityModel(weights={}, bias=bias, mean={}, scale={}, threshold=0.5)


def test_answerable_but_refused_becomes_a_cited_quote(make_pipeline):
    pipe, _ = make_pipeline([REFUSAL], answerability=_model(5.0))
    ans = pipe.ask("Which sectors could OpenAI provide technology to?")
    assert not ans.refused
    assert ans.answer.startswith("The documents say: “") and ans.answer.endswith("[1]")
    assert "education" in ans.citations[0].quote and ans.citations[0].doc_id == "openai-deal"
    assert ans.signals["p_answerable"] > 0.5


def test_not_answerable_turns_an_answer_into_the_refusal(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI may provide technology to education and defence [1]."], answerability=_model(-5.0))
    ans = pipe.ask("Which sectors could OpenAI work with?")
    assert ans.refused and ans.answer == REFUSAL and ans.citations == []
