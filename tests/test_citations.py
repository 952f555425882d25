from rag.citations import CitationChecker, best_quote, lexical_support, parse_markers, split_sentences
from rag.prompts import REFUSAL
from rag.types import Chunk, Hit
from tests.fakes import HashEmbedder


def hits() -> list[Hit]:
    texts = [
        ("a", "Intro line. OpenAI may provide technology to education, defence, security and justice. Other."),
        ("b", "The London office of OpenAI employs over 100 staff."),
    ]
    return [
        Hit(Chunk(f"{d}#0", d, t, 100, 100 + len(t), title=d.upper(), source_url=f"https://x/{d}"), 1.0)
        for d, t in texts
    ]


def test_split_and_parse_markers():
    assert split_sentences("A is b. [1] C is d [2].") == ["A is b. [1]", "C is d [2]."]
    assert parse_markers("X grew [1, 3].") == ("X grew.", [1, 3])
    assert parse_markers("X [2][1] grew.") == ("X grew.", [2, 1])


def test_lexical_support_and_best_quote():
    assert lexical_support("OpenAI hires staff", "OpenAI will hire more staff") == 1.0
    passage = hits()[0].chunk.text
    s, e = best_quote(passage, ["education and defence"])
    assert passage[s:e] == "OpenAI may provide technology to education, defence, security and justice."


def test_checker_renumbers_repairs_and_drops():
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    raw = (
        "OpenAI employs over 100 staff in London [2]. "
        "OpenAI may provide technology to education and defence [7]. "
        "The moon is made of cheese [1]."
    )
    out = checker.check(raw, hits())
    assert not out.refused
    # [7] pointed at no passage: re-pointed to the supporting passage; cheese dropped; renumbered 1, 2
    assert out.text == (
        "OpenAI employs over 100 staff in London [1]. OpenAI may provide technology to education and defence [2]."
    )
    assert [(c.n, c.doc_id) for c in out.citations] == [(1, "b"), (2, "a")]
    c2 = out.citations[1]
    assert c2.quote.startswith("OpenAI may provide") and c2.start == 100 + len("Intro line. ")
    assert [s.supported for s in out.sentences] == [True, True, False]


def test_flag_mode_keeps_unsupported_sentence_and_refusal_passes_through():
    checker = CitationChecker(HashEmbedder(), threshold=0.45, unsupported="flag")
    out = checker.check("OpenAI employs over 100 staff [2]. Bananas are blue [1].", hits())
    assert "Bananas are blue" in out.text and not out.sentences[1].supported
    assert checker.check(REFUSAL, hits()).refused
    assert CitationChecker(HashEmbedder()).check("Bananas are blue [1].", hits()).refused


def test_numbers_must_appear_in_the_cited_passage():
    from rag.citations import numbers, numbers_supported

    assert numbers("£1,500m in 2025, up 2.5%.") == {"1500", "2025", "2.5"}
    assert numbers_supported("over 100 staff", "which employs over 100 staff")
    assert not numbers_supported("more than 1,000 new jobs", "which employs over 100 staff")
    out = CitationChecker(HashEmbedder()).check("The London office of OpenAI employs over 1,000 staff [2].", hits())
    assert out.refused


def test_leading_markers_stay_with_their_own_line():
    assert split_sentences("[1] Education.\n[2] Defence.") == ["[1] Education.", "[2] Defence."]


def test_terse_answer_is_scored_with_its_question():
    passage = [Hit(Chunk("g#0", "g", "The government has designated 5 AI Growth Zones so far.", 0, 56), 1.0)]
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    out = checker.check("5 [1]", passage, question="How many AI Growth Zones have been designated?")
    assert not out.refused and out.text == "5 [1]"
    assert checker.check("7 [1]", passage, question="How many AI Growth Zones have been designated?").refused


def test_sums_of_money_must_be_credited_to_the_same_actor():
    from rag.citations import amounts_attributed

    passage = (
        "The initiative follows the UK investing up to £500 million in sovereign AI that will be spent "
        "backing national AI champions and partnering with world leading companies like OpenAI."
    )
    assert not amounts_attributed("OpenAI is paying the UK government £500 million.", passage)
    assert not amounts_attributed("OpenAI is investing up to £500 million in sovereign AI.", passage)
    assert amounts_attributed("The UK is investing up to £500 million in sovereign AI.", passage)
    assert amounts_attributed("It will be spent on national AI champions, £500 million in all.", passage)  # no subject
    assert amounts_attributed("Copilot saved 26 minutes a day.", "People saved 26 minutes a day.")  # not money
    hit = [Hit(Chunk("p#0", "p", passage, 0, len(passage)), 1.0)]
    assert CitationChecker(HashEmbedder()).check("OpenAI is paying the UK government £500 million [1].", hit).refused


def test_numbers_from_the_question_need_no_source():
    passage = [Hit(Chunk("p#0", "p", "The principles name data poisoning and prompt injection as risks.", 0, 66), 1.0)]
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    q = "Which risks do the 10 principles name?"
    assert not checker.check("The 10 principles name data poisoning and prompt injection [1].", passage, q).refused
    assert checker.check("The 12 principles name data poisoning and prompt injection [1].", passage, q).refused
