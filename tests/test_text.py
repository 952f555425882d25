from rag.text import marker_numbers, names, parse_markers, sentence_spans, split_sentences, strip_markers


def test_markers_are_read_one_way():
    assert marker_numbers("A [1]. B [2, 9][1]; C [3;4].") == [1, 2, 9, 1, 3, 4]
    assert strip_markers("It is 5 [1][2].") == "It is 5."
    assert parse_markers("X [2][1] grew [2].") == ("X grew.", [2, 1])


def test_sentences_survive_abbreviations_and_initials():
    text = "Mr. Kyle met the U.K. team. J. Smith said no. 10 was ready. The U.K. The deal is new [1]."
    assert split_sentences(text) == [
        "Mr. Kyle met the U.K. team.",
        "J. Smith said no. 10 was ready.",
        "The U.K.",
        "The deal is new [1].",
    ]


def test_marker_after_the_full_stop_stays_with_its_sentence():
    assert split_sentences("Over £2bn will go to AI Growth Zones.[1] It grew [2].") == [
        "Over £2bn will go to AI Growth Zones.[1]",
        "It grew [2].",
    ]
    assert split_sentences("A is b. [1] C is d [2].") == ["A is b. [1]", "C is d [2]."]
    assert split_sentences("[1] Education.\n[2] Defence.") == ["[1] Education.", "[2] Defence."]


def test_lower_case_after_a_full_stop_does_not_split():
    assert split_sentences("Teams, e.g. the GDS one, use it [1].") == ["Teams, e.g. the GDS one, use it [1]."]
    assert sentence_spans("One. Two") == [(0, 4), (5, 8)]


def test_names_are_heads_of_capitalised_runs():
    assert names("Technology Secretary Peter Kyle met Sam Altman.") == ["Kyle", "Altman"]
    assert names("However, the UK signed it in July.") == []
    assert names("OpenAI will share models with the AI Security Institute.") == ["OpenAI", "Institute"]
    assert names("Critics say it is vague.") == []  # an ordinary capitalised opener is not a name
