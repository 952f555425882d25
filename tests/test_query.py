from rag.query import with_focus

FOCUS = "UK government OpenAI strategic partnership"


def test_a_deal_that_names_nobody_gets_the_focus():
    assert with_focus("Is the deal legally binding?", FOCUS) == f"Is the deal legally binding? ({FOCUS})"
    assert with_focus("Is the OpenAI agreement binding?", FOCUS).endswith(f"({FOCUS})")  # the focus's own party


def test_other_parties_and_other_topics_are_left_alone():
    assert with_focus("Is the Cohere deal legally binding?", FOCUS) == "Is the Cohere deal legally binding?"
    assert with_focus("What is Humphrey?", FOCUS) == "What is Humphrey?"
    assert with_focus("Is the deal binding?", "") == "Is the deal binding?"


def test_a_comparison_of_two_parties_is_searched_for_each():
    from rag.query import question_parts

    assert question_parts("How do the Google DeepMind and OpenAI memoranda differ?") == (
        "How do the Google DeepMind memoranda differ?",
        "How do the OpenAI memoranda differ?",
    )
    assert question_parts("What is the difference between the Action Plan and the Compute Roadmap?") == (
        "What is the difference between the Action Plan?",
        "What is the difference between the Compute Roadmap?",
    )
    assert question_parts("How does the OpenAI MoU compare with the Anthropic one?") == (
        "How does the OpenAI MoU compare",
        "the Anthropic one",
    )
    # Not comparisons: two names in one question, a question that asks two things.
    assert question_parts("What did Peter Kyle and Sam Altman say?") == ()
    assert question_parts("When was the Anthropic MoU signed, and who signed it?") == ()


def test_the_best_passage_of_each_compared_party_reaches_the_model(make_pipeline, monkeypatch):
    from rag.query import question_parts

    pipe, _ = make_pipeline(top_k=2)
    q = "How do Cohere and Skills differ?"
    real = pipe.retriever.retrieve

    def fused_finds_only_openai(query, k=5, also=()):  # a fused ranking that misses both parties
        result = real(query, k, also)
        if also:
            result.hits = [h for h in real("OpenAI London office staff", 10).hits if h.chunk.doc_id == "openai-deal"][
                :k
            ]
        return result

    monkeypatch.setattr(pipe.retriever, "retrieve", fused_finds_only_openai)
    best = {real(part, 1).hits[0].chunk.chunk_id for part in question_parts(q)}
    got = [h.chunk.chunk_id for h in pipe.retrieve(q).hits]
    fused = {h.chunk.chunk_id for h in fused_finds_only_openai(q, 2, ("x",)).hits}
    assert len(best) == 2 and not best & fused  # each party's best passage was missing from the fusion
    assert len(got) == 2 and best <= set(got)
