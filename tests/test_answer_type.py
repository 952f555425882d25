from rag.answer_type import answers_the_question, expected_types, has_type


def test_question_shapes_name_the_kind_of_answer():
    assert expected_types("How much money is OpenAI investing in the UK?") == {"money"}
    assert expected_types("How many people in the UK use ChatGPT?") == {"count"}
    assert expected_types("Who signed the Cohere memorandum?") == {"name"}
    assert expected_types("In which UK city will the lab be built?") == {"name"}
    assert expected_types("When was the plan published?") == {"date"}
    assert expected_types("Why are critics worried?") == set()
    assert expected_types("How much time did staff save?") == set()  # not money, not a count


def test_an_answer_beside_the_point_is_caught():
    q = "How much money is OpenAI investing in the UK?"
    assert answers_the_question(q, "OpenAI will expand its London office, which employs over 100 staff [1].") is False
    assert answers_the_question(q, "The UK is investing up to £500 million [1].") is True
    assert answers_the_question("How many people use it?", "Use grew fourfold [1].") is False  # the marker is no number
    assert answers_the_question("Who signed the Cohere MoU?", "The UK government and Cohere signed it [1].") is False
    assert answers_the_question("Who signed it?", "Technology Secretary Peter Kyle signed it [1].") is True
    assert answers_the_question("Why?", "Because [1].") is None


def test_names_given_by_the_question_do_not_count():
    assert not has_type(
        "Google DeepMind’s lab will be built in the UK’s north.", "name", "Where is Google DeepMind's lab?"
    )
    assert has_type("It will be built in Manchester.", "name", "Where is Google DeepMind's lab?")
