from rag.answer_type import answers_the_question, expected_types, has_type, unanswered_parts


def test_question_shapes_name_the_kind_of_answer():
    assert expected_types("How much money is OpenAI investing in the UK?") == {"money"}
    assert expected_types("How many people in the UK use ChatGPT?") == {"count"}
    assert expected_types("Who signed the Cohere memorandum?") == {"name"}
    assert expected_types("In which UK city will the lab be built?") == {"place"}
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


def test_which_company_or_minister_asks_for_a_name_but_which_sectors_does_not():
    assert expected_types("Which energy companies sit on the council?") == {"name"}
    assert expected_types("Which minister signed the NVIDIA memorandum, and when?") == {"name"}
    assert expected_types("Which sectors could OpenAI work with?") == set()
    assert expected_types("What delivery models does the programme use?") == set()
    question = "Which energy companies have been appointed to the AI Energy Council?"
    assert answers_the_question(question, "The council is formed of industry leaders [1].") is False
    assert answers_the_question(question, "The members are Drax and Octopus [1].") is True


def test_a_duration_or_a_year_is_not_a_count_unless_the_question_counts_time():
    question = "How many people does NVIDIA plan to train?"
    assert answers_the_question(question, "NVIDIA will upskill the workforce in the next 5 years [1].") is False
    assert answers_the_question(question, "It was agreed in 2025 [1].") is False
    assert answers_the_question(question, "NVIDIA will train 100,000 people [1].") is True
    assert answers_the_question("How many days of staff time will AI save?", "About 240,000 days [1].") is True


def test_a_place_question_wants_a_located_name_not_a_person_or_a_month():
    question = "Where will the new Health Data Research Service be based?"
    assert expected_types(question) == {"place"}
    led_by = "It will be led by Dr Melanie Ivarsson, appointed as CEO in January 2026 [1]."
    assert answers_the_question(question, led_by) is False  # a person, and "in January" dates
    assert answers_the_question(question, "It will be based in Edinburgh [1].") is True
    assert answers_the_question(question, "It will be based at the Harwell Campus [1].") is True
    # The place must be one the question does not give.
    assert (
        answers_the_question("In which UK city will the lab be built?", "It will be built in the UK’s north [1].")
        is False
    )
    # "Where…, and how many?" is answered by either kind.
    assert answers_the_question("Where will the jobs be, and how many?", "There will be 1,000 jobs [1].") is True


def test_a_two_part_question_is_answered_by_either_part():
    question = "When did Peter Kyle expect the recommendations, and what was to be set up in DSIT?"
    # The second part asks for nothing checkable, so an answer to it alone is not caught.
    assert answers_the_question(question, "An AI Opportunities Unit was to be set up in DSIT [4].") is None
    assert answers_the_question(question, "He expected them by September [3].") is True
    # Both parts checkable (a count, a place): an answer with neither kind is caught.
    both = "How many GPUs will Stargate UK start with, and where will it be based?"
    assert answers_the_question(both, "Stargate UK will grow over time [1].") is False
    assert answers_the_question(both, "It will be based in the North East [1].") is True


def test_how_long_asks_for_a_span_of_time_or_the_date_it_runs_until():
    question = "How long does the memorandum stay in force?"
    assert expected_types(question) == {"duration"}
    assert answers_the_question(question, "It stays active for 36 months [1].") is True
    assert answers_the_question(question, "Archer2 is being extended until November 2026 [1].") is True
    assert answers_the_question(question, "It opened about two years ago [1].") is True
    assert answers_the_question(question, "A pilot runs for 12+ months [1].") is True
    # The memorandum's title is on the subject, but says nothing of how long.
    assert answers_the_question(question, "Memorandum of Understanding between Anthropic and DSIT [1].") is False


def test_a_price_budget_or_cost_asks_for_a_sum_without_how_much():
    assert expected_types("What is the price tag of the new data centre?") == {"money"}
    assert expected_types("What is the Incubator for AI's annual budget?") == {"money"}
    assert expected_types("What does the review say failing to modernise costs each year?") == {"money"}
    # "value" is not a price, and a "which" question asks for a name.
    assert expected_types("Which guide should teams use to judge whether AI is delivering value?") == set()
    assert answers_the_question("What is the price tag of the data centre?", "It will host 8,000 GPUs [1].") is False
    assert answers_the_question("What is the price tag of the data centre?", "It will cost £2.5 billion [1].") is True


def test_the_parts_of_a_two_part_question_left_unanswered_are_named():
    question = "Who announced the data offer, and where?"
    assert unanswered_parts(question, "David Lammy announced it [1].") == ["where?"]
    assert unanswered_parts(question, "David Lammy announced it at a conference in London [1].") == []
    assert unanswered_parts("Where will the jobs be, and how many?", "They will be in Liverpool [1].") == ["how many?"]
    # A part that asks no checkable kind, or a one-part question, is never named.
    assert unanswered_parts("Who chairs it, and why does it matter?", "Jade Leung chairs it [1].") == []
    assert unanswered_parts("Who chairs the unit?", "It meets monthly [1].") == []
