from rag.evaluation.check_probe import corrupt_name, corrupt_number, corrupt_polarity, corrupt_yes_no


def test_each_corruption_changes_one_fact():
    assert corrupt_number("The plan has 5 parts.") == "The plan has 16 parts."
    assert corrupt_number("No figures here.") is None
    assert corrupt_polarity("The deal is binding.") == "The deal is not binding."
    assert corrupt_polarity("The deal is not binding.") == "The deal is binding."
    assert corrupt_yes_no("No. It is voluntary.") == "Yes. It is voluntary."
    assert corrupt_yes_no("Nobody signed.") is None


def test_a_name_swap_prefers_an_actor_another_passage_mentions():
    passages = ["OpenAI will share models with the institute.", "Cohere signed a similar memorandum."]
    assert corrupt_name("OpenAI will share models.", passages) == "Cohere will share models."
    assert corrupt_name("the institute will share models.", passages) is None  # no name to swap
