"""The cases users reported (issue "Answers that get the facts right"), with the default 1.5B model."""

from __future__ import annotations

import pytest

from rag.citations import acronym_in
from rag.text import names, parse_markers, split_sentences

pytestmark = pytest.mark.slow


def _cited_texts(answer, sentence: str, with_titles: bool = False) -> list[str]:
    """The passage texts that one final-answer sentence cites (with their titles and headings)."""
    by_chunk = {h.chunk.chunk_id: h.chunk for h in answer.retrieved}
    _, nums = parse_markers(sentence)
    chunks = [by_chunk[c.chunk_id] for c in answer.citations if c.n in nums]
    return [" ".join([c.text, c.title, *c.heading_path]) if with_titles else c.text for c in chunks]


def test_a_paraphrased_yes_no_question_is_answered_not_refused(qwen15, real_pipeline):
    a = real_pipeline(qwen15).ask("Is the OpenAI deal legally binding?")
    assert not a.refused, a.raw_answer
    assert "not legally binding" in a.answer.lower() or a.answer.lower().startswith("no")
    assert any("legally binding" in c.quote for c in a.citations)


def test_a_rare_name_is_not_refused_by_the_relevance_gate_and_its_passages_are_quoted(qwen15, real_pipeline):
    # Best dense score 0.157 < 0.2: the gate used to refuse before the model ran. Now the model runs;
    # when it misreads the passages ("Humphrey is a collective known as Humphrey") the check drops
    # that and the passage sentences on Humphrey are quoted instead (a partial answer, not a refusal);
    # either way what is shown cites only sentences naming Humphrey.
    # The fitted gate is left out here: on this item p(answerable) sits at the threshold (0.567
    # against 0.561 on 2026-12-03's build, 0.55 on the day before's), so whether the shipped
    # decision quotes or refuses it moves with the llama.cpp build; issue 18 keeps that open.
    pipe = real_pipeline(qwen15)
    pipe.options = pipe.options.but(answerability=None)
    a = pipe.ask("What is Humphrey?")
    assert a.raw_answer, "refused before generation"
    assert not a.refused, a.answer
    assert "humphrey" in a.answer.lower() and a.citations
    assert all("Humphrey" in c.quote for c in a.citations), [c.quote for c in a.citations]


def test_a_follow_up_about_who_signed_is_answered_from_the_passage_naming_the_signer(qwen15, real_pipeline):
    history = [
        {"role": "user", "content": "What did the UK agree with OpenAI in July 2025?"},
        {"role": "assistant", "content": "The UK government signed a strategic partnership with OpenAI [1]."},
    ]
    a = real_pipeline(qwen15).ask("Who signed it for the UK?", history)
    assert "OpenAI" in a.standalone_question  # the rewrite resolved "it"
    # The rewrite's passages alone hold no signer; the follow-up's own words after the previous
    # question bring the press release ("Signed today by Technology Secretary Peter Kyle…").
    assert not a.refused, a.raw_answer
    assert any("Kyle" in s for s in split_sentences(a.answer)), a.answer
    for sentence in (s for s in split_sentences(a.answer) if "Kyle" in s):
        cited = _cited_texts(a, sentence)
        assert cited and all("Peter Kyle" in t for t in cited), (sentence, cited)


@pytest.mark.parametrize(
    "question",
    [
        "Which companies has the UK signed AI memorandums of understanding with?",
        "What will OpenAI share with the AI Security Institute?",
        "Who signed the Anthropic memorandum of understanding?",
    ],
)
def test_every_name_in_an_answer_is_in_the_passage_it_cites(qwen15, real_pipeline, question):
    a = real_pipeline(qwen15).ask(question)
    for sentence in split_sentences(a.answer):
        if a.refused or not parse_markers(sentence)[1]:
            continue
        cited = " ".join(_cited_texts(a, sentence, with_titles=True))
        for name in names(parse_markers(sentence)[0]):
            # An abbreviation ("AISI") may name what the passage writes out ("AI Security Institute").
            assert name.lower().split("'")[0] in cited.lower() or acronym_in(name, cited), (name, sentence)
