"""Does an answer say the kind of thing its question asks for?

"How much is OpenAI investing?" asks for a sum of money; "How many people…?" for a number;
"Who signed…?" for a name the question does not already give; "In which city…?" for a place.
A small model asked such a question about something the documents do not cover tends to write a
true but beside-the-point sentence from a passage ("OpenAI will expand its London office [1]"),
which the citation check keeps because the passage does say it. This module spots that case by
the answer's missing type. Questions of other shapes ("why", "what", "which sectors") expect
nothing checkable and always pass. It does not generate or score support.
"""

from __future__ import annotations

import re

from rag.text import names, strip_markers

_MONEY_Q = re.compile(
    r"\bhow much\b.*\b(money|cost|costs|costing|pay|paid|paying|invest\w*|fund\w*|spend\w*|spent|worth|budget|price|value)\b",
    re.IGNORECASE,
)
_COUNT_Q = re.compile(r"\bhow many\b", re.IGNORECASE)
_WHO_Q = re.compile(r"^\s*(?:and\s+)?(who|whom)\b", re.IGNORECASE)
_PLACE_Q = re.compile(
    r"^\s*(?:and\s+)?where\b|\b(which|what)(\s+\w+){0,2}\s+(city|town|country|countries|region|county|place|location)\b",
    re.IGNORECASE,
)
_YEAR_Q = re.compile(
    r"\b(what|which|in which) (year|date|month)\b|^\s*(?:and\s+)?when (was|were|did|will)\b", re.IGNORECASE
)

_MONEY = re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(bn|billion|million|m)\b", re.IGNORECASE)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(1[89]|20)\d\d\b|\b(January|February|March|April|May|June|July|August|September|October|November|December|"
    r"spring|summer|autumn|winter)\b",
    re.IGNORECASE,
)


def expected_types(question: str) -> set[str]:
    """The kinds of answer `question` asks for: a subset of {"money", "count", "name", "date"}.

    `expected_types("Who signed it, and how much is invested?")` -> `{"name"}` (only a leading "who" counts);
    `expected_types("How many staff work in London?")` -> `{"count"}`.
    """
    out = set()
    if _MONEY_Q.search(question):
        out.add("money")
    elif _COUNT_Q.search(question):
        out.add("count")
    if _WHO_Q.search(question) or _PLACE_Q.search(question):
        out.add("name")
    if _YEAR_Q.search(question):
        out.add("date")
    return out


def has_type(text: str, kind: str, question: str = "") -> bool:
    """True when `text` states an answer of `kind`; a name must be one the question does not give.

    `has_type("Peter Kyle signed it.", "name", "Who signed the OpenAI deal?")` -> True;
    `has_type("OpenAI signed it.", "name", "Who signed the OpenAI deal?")` -> False.
    """
    text = strip_markers(text)
    if kind == "money":
        return bool(_MONEY.search(text))
    if kind == "count":
        return bool(_NUMBER.search(text))
    if kind == "date":
        return bool(_DATE.search(text))
    asked = question.lower()
    return any(n.lower().split("'")[0] not in asked for n in names(text))


def answers_the_question(question: str, answer: str) -> bool | None:
    """Whether `answer` has one of the kinds `question` asks for; None when the question asks for no checkable kind."""
    kinds = expected_types(question)
    if not kinds:
        return None
    return any(has_type(answer, k, question) for k in kinds)
