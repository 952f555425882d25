"""Checked sentences as they come: a sentence is sent once the model has finished it and the check
has kept it, never taken back, and the final answer begins with what was sent."""

from rag.pipeline import Sentence
from rag.prompts import REFUSAL

TWO = "OpenAI may provide technology to education and defence [1]. OpenAI will expand its London office [1]."


def events_of(pipe, question):
    return list(pipe.stream(question))


def test_a_checked_sentence_is_sent_before_the_model_has_finished(make_pipeline):
    pipe, _ = make_pipeline([TWO])
    events = events_of(pipe, "Which sectors could OpenAI work with?")
    kinds = [e.kind for e in events]
    first = kinds.index("sentence")
    # The first sentence goes out while tokens of the second are still coming.
    assert "token" in kinds[first + 1 :]
    sent = [e for e in events if isinstance(e, Sentence)]
    assert sent[0].data == "OpenAI may provide technology to education and defence [1]."
    assert [c.n for c in sent[0].citations] == [1] and sent[0].citations[0].doc_id == "openai-deal"
    answer = events[-1].data
    assert answer.answer.startswith(" ".join(s.data for s in sent))
    assert 0 < answer.timings.first_sentence_s <= answer.timings.total_s


def test_the_streamed_sentences_are_the_final_answer_with_the_key_passage_added(make_pipeline):
    pipe, _ = make_pipeline([TWO], key_passage=True)
    events = events_of(pipe, "Which sectors could OpenAI work with?")
    sent = " ".join(e.data for e in events if e.kind == "sentence")
    answer = events[-1].data
    assert answer.decision["step"] == "checked_answer"
    assert answer.answer.startswith(sent) and sent == answer.answer.split("\n\nKey passage: ")[0]


def test_an_unsupported_sentence_is_never_sent(make_pipeline):
    reply = "OpenAI may provide technology to education and defence [1]. OpenAI will pay nine billion pounds for bananas [1]. OpenAI will expand its London office [1]."
    pipe, _ = make_pipeline([reply])
    events = events_of(pipe, "Which sectors could OpenAI work with?")
    sent = " ".join(e.data for e in events if e.kind == "sentence")
    assert "bananas" not in sent and "London office" in sent
    assert "bananas" in "".join(e.data for e in events if e.kind == "token")  # the model did write it


def test_a_refused_draft_sends_no_sentence_only_the_refusal(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI will pay the government nine billion pounds for bananas [1]. It is big [1]."])
    events = events_of(pipe, "How much is OpenAI paying?")
    assert not any(e.kind == "sentence" for e in events)
    assert events[-1].data.answer == REFUSAL and events[-1].data.timings.first_sentence_s == 0


def test_a_draft_lacking_the_kind_asked_for_is_held_until_a_sentence_states_it(make_pipeline):
    # "How many" asks for a number: the first sentence alone would not be shown, so it waits.
    reply = "OpenAI will expand its London office [1]. The office employs over 100 staff [1]."
    pipe, _ = make_pipeline([reply])
    events = events_of(pipe, "How many staff does OpenAI employ in London?")
    kinds = [e.kind for e in events]
    sent = [e for e in events if e.kind == "sentence"]
    assert sent and sent[0].data.startswith("OpenAI will expand its London office")
    assert "100" in sent[0].data  # released together with the sentence that states the number
    assert "token" not in kinds[kinds.index("sentence") :]  # the second sentence ended the reply


def test_a_marker_after_the_full_stop_waits_to_join_its_sentence(make_pipeline):
    # "…defence. [1] OpenAI…": the marker belongs to the first sentence, which must not go out bare.
    reply = "OpenAI may provide technology to education and defence. [1] OpenAI will expand its London office [1]."
    pipe, _ = make_pipeline([reply])
    events = events_of(pipe, "Which sectors could OpenAI work with?")
    sent = [e.data for e in events if e.kind == "sentence"]
    assert sent[0].endswith("[1].") and events[-1].data.answer.startswith(" ".join(sent))


def test_the_shipped_decision_lets_sentences_go_out_early_and_a_refit_that_could_take_them_back_does_not():
    from dataclasses import replace

    from rag.answerability import AnswerabilityModel
    from rag.pipeline import settles_early

    shipped = AnswerabilityModel.load()
    assert settles_early(shipped) and settles_early(None)
    # A negative weight on support: a later, better-supported sentence could lower p(answerable).
    assert not settles_early(replace(shipped, weights={**shipped.weights, "support": -0.5}))
    assert not settles_early(replace(shipped, weights={**shipped.weights, "sentences_dropped": 0.3}))


def test_with_a_decision_that_cannot_settle_early_the_answer_comes_whole_at_the_end(make_pipeline):
    from dataclasses import replace

    from rag.answerability import AnswerabilityModel

    pipe, _ = make_pipeline([TWO])
    model = AnswerabilityModel.load()
    model = replace(model, weights={**model.weights, "support": -0.01}, threshold=0.0)
    pipe.options = pipe.options.but(answerability=model)
    events = events_of(pipe, "Which sectors could OpenAI work with?")
    kinds = [e.kind for e in events]
    assert "sentence" in kinds and "token" not in kinds[kinds.index("sentence") :]
    assert events[-1].data.answer.startswith(" ".join(e.data for e in events if e.kind == "sentence"))


def test_the_note_on_a_part_not_covered_is_streamed_as_the_answers_last_sentence(make_pipeline):
    pipe, _ = make_pipeline(["The office employs over 100 staff [1]."], key_passage=True)
    events = events_of(pipe, "How many staff does OpenAI employ in London, and where will it build a data centre?")
    sent = [e.data for e in events if e.kind == "sentence"]
    answer = events[-1].data
    assert answer.decision["step"] == "checked_answer" and "1 part of the question" in answer.decision["reason"]
    streamed = " ".join(sent)
    assert streamed.endswith(
        "The passages found do not cover this part of the question: “Where will it build a data centre?”"
    )
    assert streamed == answer.answer.split("\n\nKey passage: ")[0]
