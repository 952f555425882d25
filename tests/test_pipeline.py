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
