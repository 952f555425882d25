from rag.prompts import REFUSAL


def test_answer_cites_the_passage_it_rests_on(make_pipeline):
    pipe, gen = make_pipeline(["OpenAI may provide technology to education and defence [1]."])
    ans = pipe.ask("Which sectors could OpenAI work with?")
    assert not ans.refused
    assert ans.citations and ans.citations[0].doc_id == "openai-deal"
    assert "education" in ans.citations[0].quote
    # the prompt numbered the retrieved passages and carried the question
    user = gen.prompts[0][-1]["content"]
    assert '<passage id="1"' in user and "Which sectors could OpenAI work with?" in user


def test_unsupported_claim_is_dropped_and_answer_refused(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI will pay the government nine billion pounds for bananas [1]."])
    ans = pipe.ask("How much is OpenAI paying?")
    assert ans.refused and ans.answer == REFUSAL and ans.citations == []


def test_refusal_floor_is_ignored_by_generators_without_token_probabilities(make_pipeline):
    pipe, gen = make_pipeline(["OpenAI may provide technology to education and defence [1]."], refusal_min_p=0.5)
    assert not pipe.ask("Which sectors could OpenAI work with?").refused
    assert not getattr(gen, "supports_opening_floor", False)


def test_the_gate_lets_through_a_question_whose_rare_word_is_in_the_corpus(make_pipeline):
    pipe, gen = make_pipeline(["Cohere will explore data centres in Canada [1]."], min_relevance=0.99)
    pipe.options = pipe.options.but(rare_term_max_df=0)
    gated = pipe.ask("What is Cohere exploring?")
    assert gated.refused and not gen.prompts  # no dense score passes
    assert gated.decision["step"] == "retrieval_gate"
    pipe.options = pipe.options.but(rare_term_max_df=3)
    ans = pipe.ask("What is Cohere exploring?")
    assert gen.prompts and not ans.refused


def test_a_question_about_the_deal_is_searched_with_the_focus(make_pipeline):
    pipe, _ = make_pipeline(focus_query="OpenAI London office staff")
    plain = [h.chunk.doc_id for h in pipe.retriever.retrieve("Is the deal binding?", 3).hits]
    focused = [h.chunk.doc_id for h in pipe.retrieve("Is the deal binding?", 3).hits]
    assert plain[0] == "cohere-mou" and focused[0] == "openai-deal"


def test_demonstrations_come_before_the_passages(make_pipeline):
    pipe, gen = make_pipeline(["OpenAI may provide technology to education and defence [1]."], demonstrations=True)
    pipe.ask("Which sectors could OpenAI work with?")
    roles = [m["role"] for m in gen.prompts[0]]
    assert roles[0] == "system" and roles[-1] == "user" and roles.count("assistant") >= 4
    assert "Which sectors" in gen.prompts[0][-1]["content"]
    assert all("Which sectors" not in m["content"] for m in gen.prompts[0][:-1])


def test_warm_reads_the_same_fixed_prefix_as_an_answer(make_pipeline):
    pipe, gen = make_pipeline(["x", "OpenAI may provide technology to education and defence [1]."])
    pipe.warm()
    pipe.ask("Which sectors could OpenAI work with?")
    warm, answer = gen.prompts
    assert len(warm) == len(answer) and warm[:-1] == answer[:-1]  # system prompt and examples


def test_the_rewrite_prompt_shows_worked_examples_then_the_conversation(make_pipeline):
    pipe, gen = make_pipeline(["Who signed the OpenAI deal?", "OpenAI may provide technology to education [1]."])
    history = [
        {"role": "user", "content": "Tell me about the OpenAI deal."},
        {"role": "assistant", "content": "Yes [1]."},
    ]
    ans = pipe.ask("Who signed it?", history)
    rewrite = gen.prompts[0]
    assert [m["role"] for m in rewrite].count("assistant") == 3 and rewrite[-1]["role"] == "user"
    assert "Follow-up question: Who signed it?" in rewrite[-1]["content"] and "[1]" not in rewrite[-1]["content"]
    assert ans.standalone_question == "Who signed the OpenAI deal?"


def test_key_passage_quotes_what_the_cited_passage_adds_with_its_number(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI may provide technology to education [1]."], key_passage=True)
    ans = pipe.ask("Which sectors could OpenAI provide technology to?")
    head, key = ans.answer.split("\n\nKey passage: ")
    assert head == "OpenAI may provide technology to education [1]."
    assert key == "“OpenAI may provide technology to education, defence, security and justice.” [1]"
    assert [c.n for c in ans.citations] == [1] and ans.citations[0].doc_id == "openai-deal"


def test_key_passage_comes_only_from_a_passage_the_answer_cites(make_pipeline):
    pipe, _ = make_pipeline(["OpenAI will expand its London office [1]."], key_passage=True)
    ans = pipe.ask("Which sectors could OpenAI provide technology to?")
    # The sectors sentence answers better, but the answer does not cite its passage.
    assert "education" not in ans.answer
    n = ans.citations[0].n
    assert ans.answer.endswith(
        f"Key passage: “OpenAI will expand its London office, which employs over 100 staff.” [{n}]"
    )


def test_no_key_passage_when_the_answer_already_says_it(make_pipeline):
    reply = "OpenAI will expand its London office, which employs over 100 staff [1]."
    pipe, _ = make_pipeline([reply], key_passage=True)
    ans = pipe.ask("How many staff does OpenAI employ in London?")
    assert ans.answer == reply


def test_a_rewrite_that_drops_the_party_the_follow_up_names_is_not_used(make_pipeline):
    pipe, _ = make_pipeline(["Who signed the memorandum with OpenAI?", "Cohere will explore data centres [1]."])
    history = [{"role": "user", "content": "Who signed the OpenAI deal?"}, {"role": "assistant", "content": "X [1]."}]
    ans = pipe.ask("And who signed the Cohere one?", history)
    assert ans.standalone_question == "And who signed the Cohere one?"


def test_a_draft_the_check_empties_shows_the_passages_on_the_subject_as_a_partial_answer(make_pipeline):
    # The model misreads ("a bank in Paris" is in no passage); the check drops it. Cohere's passage is
    # about the question's subject, so it is quoted, marked partial, instead of a false refusal.
    pipe, _ = make_pipeline(["Cohere is a bank in Paris [2]."])
    ans = pipe.ask("What is Cohere?")
    assert not ans.refused and ans.partial
    assert ans.answer.startswith("I couldn't write a checked answer; the closest passages say: “Cohere will explore")
    assert ans.citations[0].doc_id == "cohere-mou"
    assert ans.decision["step"] == "evidence_excerpt" and "supported" in ans.decision["reason"]


def test_a_question_whose_subject_no_passage_names_is_refused(make_pipeline):
    pipe, _ = make_pipeline(["Cohere is a bank in Paris [2]."], min_relevance=-1.0)  # past the retrieval gate
    ans = pipe.ask("What is Zebedee?")
    assert ans.refused and not ans.partial and ans.decision["step"] == "off_topic"


def test_a_follow_up_also_searches_with_its_own_words_after_the_previous_question(make_pipeline):
    history = [{"role": "user", "content": "What will Cohere explore?"}, {"role": "assistant", "content": "Data [1]."}]
    calls: list[tuple] = []
    for fusion in (True, False):
        pipe, _ = make_pipeline(["Is the memorandum legally binding?", REFUSAL], follow_up_fusion=fusion)
        search = pipe.retriever.retrieve
        pipe.retriever.retrieve = lambda q, k, also=(), search=search: calls.append((q, also)) or search(q, k, also)
        pipe.ask("Is it binding?", history)
    # The rewrite is searched first (with the documents' focus, as it asks about "the memorandum");
    # the user's own words follow, after the question they follow up.
    assert calls[0][0].startswith("Is the memorandum legally binding?")
    assert calls[0][1] == ("Is it binding? What will Cohere explore?",)
    assert calls[1][1] == ()
    pipe, _ = make_pipeline([REFUSAL])
    assert pipe.follow_up_query("Is it binding?", []) == ()
