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


def _one(text: str, doc: str = "p", title: str = "") -> list[Hit]:
    return [Hit(Chunk(f"{doc}#0", doc, text, 0, len(text), title=title), 1.0)]


def test_a_claim_must_keep_the_passage_polarity():
    from rag.citations import polarity_agrees

    passage = "The memorandum of understanding is voluntary and not legally binding."
    assert polarity_agrees("The MoU is not legally binding.", passage)
    assert not polarity_agrees("The MoU is legally binding.", passage)
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    assert checker.check("The memorandum of understanding is legally binding [1].", _one(passage)).refused
    ok = checker.check("The memorandum of understanding is not legally binding [1].", _one(passage))
    assert not ok.refused and "not legally binding" in ok.text


def test_yes_or_no_is_checked_as_the_answer_to_the_question():
    passage = _one("The memorandum of understanding is voluntary and not legally binding.")
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    q = "Is the memorandum of understanding legally binding?"
    assert checker.check("Yes [1].", passage, q).refused
    assert not checker.check("No [1].", passage, q).refused
    assert not checker.check("No, the memorandum of understanding is not legally binding [1].", passage, q).refused


def test_a_cited_negative_first_sentence_is_an_answer_not_a_refusal():
    passage = _one("The memorandum does not include any funding commitment from either side.")
    out = CitationChecker(HashEmbedder(), threshold=0.45).check(
        "The memorandum does not include any funding commitment [1].", passage
    )
    assert not out.refused and out.citations
    assert CitationChecker(HashEmbedder()).check("The documents do not say.", passage).refused


def test_names_in_a_claim_must_be_in_the_cited_passage():
    from rag.citations import names_supported

    assert names_supported("Peter Kyle signed it.", "Signed today by Technology Secretary Peter Kyle.")
    assert not names_supported("Anthropic will share its models.", "OpenAI will share its models.", {"Anthropic"})
    assert not names_supported("The deal with Anthropic is new.", "The deal with OpenAI is new.")
    # A compound names each party: both must be in the passage.
    signed = "Signed by Technology Secretary Peter Kyle and OpenAI CEO Sam Altman, the UK’s memorandum…"
    assert names_supported("Peter Kyle and Sam Altman signed the UK-OpenAI memorandum.", signed)
    assert not names_supported("Peter Kyle and Sam Altman signed the UK–Cohere memorandum.", signed)
    passage = _one("Anthropic will share its models with the AI Security Institute.", title="Anthropic MoU")
    checker = CitationChecker(HashEmbedder(), threshold=0.45)
    assert checker.check("OpenAI will share its models with the AI Security Institute [1].", passage).refused


def test_a_sentence_moves_to_the_passage_that_names_its_people():
    passages = [
        Hit(Chunk("a#0", "a", "Sam Altman welcomed the deal signed for the UK today.", 0, 53), 1.0),
        Hit(
            Chunk("b#0", "b", "Signed today by Technology Secretary Peter Kyle and OpenAI CEO Sam Altman.", 0, 74), 1.0
        ),
    ]
    out = CitationChecker(HashEmbedder(), threshold=0.3).check(
        "Peter Kyle signed the deal for the UK [1].", passages, "Who signed the deal for the UK?"
    )
    assert not out.refused
    assert [c.doc_id for c in out.citations] == ["b"]


def test_money_rule_finds_the_real_subject():
    from rag.citations import amounts_attributed

    passage = "Over £2bn will go to AI Growth Zones across the country."
    assert amounts_attributed("Over £2bn will go to AI Growth Zones.", passage)
    assert amounts_attributed("According to the plan, over £2bn will go to AI Growth Zones.", passage)


def test_hyphenated_and_possessive_names_are_found():
    from rag.citations import names_supported

    passage = "The UK has struck similar deals with major US-based companies such as Google and Anthropic."
    assert names_supported("The UK has deals with US-based firms such as Google and Anthropic's rivals.", passage)
    assert not names_supported("The UK has deals with US-based firms such as Cohere.", passage)


def test_an_abbreviation_names_what_the_passage_writes_out():
    from rag.citations import acronym_in, names_supported

    passage = "The Department for Science, Innovation and Technology will work with the AI Security Institute."
    assert acronym_in("DSIT", passage) and acronym_in("AISI", passage)
    assert not acronym_in("NCSC", passage)
    assert names_supported("DSIT will work with AISI.", passage)
    assert not names_supported("The NCSC will work with AISI.", passage)


def test_polarity_is_held_statement_by_statement():
    from rag.citations import clauses, polarity_agrees

    passage = "Though not legally binding, the deal outlines a framework for collaboration and shared ambitions."
    assert clauses("The deal is not binding; it sets out a framework for collaboration.") == [
        "The deal is not binding",
        "it sets out a framework for collaboration",
    ]
    assert polarity_agrees("The deal is not legally binding; it outlines a framework for collaboration.", passage)
    assert not polarity_agrees("The deal is legally binding; it outlines a framework for collaboration.", passage)
    assert not polarity_agrees("The deal is not legally binding; it does not outline a framework.", passage)
    trial = "17% of users did not notice any clear time savings. Professions that saved least were least satisfied."
    assert polarity_agrees(
        "17% of users did not notice any time savings, and professions that saved least were least satisfied.", trial
    )
    assert not polarity_agrees(
        "17% of users did notice clear time savings, and professions that saved least were least satisfied.", trial
    )


def test_no_is_not_contradicted_by_an_affirmative_sentence_but_yes_is_by_a_negative_one():
    from rag.citations import polarity_agrees

    q = "Are open source AI models less secure than closed source ones?"
    equal = "Open source and closed source AI models are generally equally secure."
    assert polarity_agrees("No.", equal, q)
    binding = "The memorandum is voluntary and not legally binding."
    assert not polarity_agrees("Yes.", binding, "Is the memorandum legally binding?")
    assert polarity_agrees("No.", binding, "Is the memorandum legally binding?")
    assert not polarity_agrees("No.", binding, "Is the memorandum not legally binding?")


def test_a_sums_actor_is_named_in_its_own_clause():
    from rag.citations import amounts_attributed

    passage = "The next phase of the Sovereign AI Unit launches in April 2026, backed by up to £500 million."
    claim = "James Wise will chair it; the next phase launches in April 2026, backed by up to £500 million."
    assert amounts_attributed(claim, passage)
    assert not amounts_attributed(
        "Peter Kyle said OpenAI will invest £500 million.", "The UK will invest £500 million."
    )


def test_numbers_may_come_from_the_documents_date():
    from rag.citations import failed_rules

    chunk = Chunk("p#0", "p", "The office opened just 2 years ago.", 0, 35, date="2025-07-21")
    assert failed_rules("It opened 2 years before the July 2025 partnership.", Hit(chunk, 1.0)) == []
    assert failed_rules("It opened 3 years before the July 2025 partnership.", Hit(chunk, 1.0)) == ["number"]


def test_passages_are_embedded_once_across_checks():
    class Counting(HashEmbedder):
        texts = 0

        def embed_documents(self, texts, progress=False):
            self.texts += len(texts)
            return super().embed_documents(texts)

    emb = Counting()
    checker = CitationChecker(emb, threshold=0.3)
    first = checker.check("OpenAI employs over 100 staff in London [2].", hits())
    after_first = emb.texts  # the claim, the two passages and passage a's three sentences
    again = checker.check("OpenAI employs over 100 staff in London [2].", hits())
    assert after_first == 6 and emb.texts == after_first + 1  # only the claim the second time
    assert first.text == again.text and not again.refused
