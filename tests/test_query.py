from rag.query import with_focus

FOCUS = "UK government OpenAI strategic partnership"


def test_a_deal_that_names_nobody_gets_the_focus():
    assert with_focus("Is the deal legally binding?", FOCUS) == f"Is the deal legally binding? ({FOCUS})"
    assert with_focus("Is the OpenAI agreement binding?", FOCUS).endswith(f"({FOCUS})")  # the focus's own party


def test_other_parties_and_other_topics_are_left_alone():
    assert with_focus("Is the Cohere deal legally binding?", FOCUS) == "Is the Cohere deal legally binding?"
    assert with_focus("What is Humphrey?", FOCUS) == "What is Humphrey?"
    assert with_focus("Is the deal binding?", "") == "Is the deal binding?"
