"""Does an answer say the kind of thing its question asks for?

"How much is OpenAI investing?" asks for a sum of money; "How many people…?" for a number;
"Who signed…?" for a name the question does not already give; "In which city…?" for a place
("in Manchester", not a person's name).
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
# "What is the price tag of…?", "What is i.AI's annual budget?", "What does it cost…?": a sum, asked
# without "how much".
_PRICE_Q = re.compile(r"^\s*(?:and\s+)?what\b[^?]*\b(?:price|budget|cost|costs)\b", re.IGNORECASE)
_COUNT_Q = re.compile(r"\bhow many\b", re.IGNORECASE)
# "How long does the memorandum last?": a span of time, or the date it runs until.
_DURATION_Q = re.compile(r"\bhow long\b", re.IGNORECASE)
_WHO_Q = re.compile(r"^\s*(?:and\s+)?(who|whom)\b", re.IGNORECASE)
_PLACE_Q = re.compile(
    r"^\s*(?:and\s+)?where\b|\b(which|what)(\s+\w+){0,2}\s+(city|town|country|countries|region|county|place|location)\b",
    re.IGNORECASE,
)
# "Which energy companies…?", "Which minister…?": the answer is a name (an organisation, a person, a model).
_WHICH_ENTITY_Q = re.compile(
    r"\bwhich\s+(?:[\w’'-]+\s+){0,3}?(?:compan(?:y|ies)|organi[sz]ations?|firms?|universit(?:y|ies)|councils?|"
    r"groups?|departments?|bod(?:y|ies)|partners?|artists?|models?|datasets?|suppliers?|charit(?:y|ies)|"
    r"institutions?|ministers?|newspapers?|people|person)\b",
    re.IGNORECASE,
)
_YEAR_Q = re.compile(
    r"\b(what|which|in which) (year|date|month)\b|^\s*(?:and\s+)?when (was|were|did|will)\b", re.IGNORECASE
)

# "What is Humphrey?", "Who are i.AI?", "What's the AI Playbook?": the whole question asks what a term is.
_DEFINITION_Q = re.compile(
    r"^\s*(?:what|who)(?:\s+(?:is|are|was|were)|'s)\s+(?:an?\s+|the\s+)?(?P<term>[^?]{1,60}?)\s*\??\s*$",
    re.IGNORECASE,
)

_MONEY = re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(bn|billion|million|m)\b", re.IGNORECASE)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
# A number that dates or times something ("in the next 5 years", "in 2025") does not count things,
# unless the question counts that unit ("How many days…?").
_TIME_UNITS = r"(?:years?|months?|weeks?|days?|hours?|minutes?)"
_TIMING = re.compile(
    rf"\b(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve)\s+{_TIME_UNITS}\b|\b(?:19|20)\d\d\b",
    re.IGNORECASE,
)
_SPAN = re.compile(
    rf"\b(?:\d[\d,.]*\+?|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|several|few)[\s-]+{_TIME_UNITS}\b"
    r"|\b(?:until|indefinite(?:ly)?|permanent(?:ly)?|no end date|no fixed term)\b",
    re.IGNORECASE,
)
_COUNTS_TIME = re.compile(rf"\bhow many\s+(?:\w+\s+){{0,2}}?{_TIME_UNITS}\b", re.IGNORECASE)
# A place is a capitalised name after a word that locates ("built in Manchester", "based at Culham");
# a month or a season after "in" dates, and does not locate.
_LOCATED = re.compile(
    r"\b(?:in|at|near|across|outside|throughout|within|around)\s+(?:the\s+)?"
    r"(?P<place>[A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*)"
)
_MONTHS_AND_SEASONS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|spring|summer|autumn|winter"
)
_NOT_A_PLACE = re.compile(
    rf"^(?:{_MONTHS_AND_SEASONS}|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b", re.IGNORECASE
)
_DATE = re.compile(rf"\b(1[89]|20)\d\d\b|\b(?:{_MONTHS_AND_SEASONS})\b", re.IGNORECASE)


def expected_types(question: str) -> set[str]:
    """The kinds of answer `question` asks for: a subset of {"money", "count", "duration", "name", "place",
    "date"}.

    `expected_types("Who signed it, and how much is invested?")` -> `{"name"}` (only a leading "who" counts);
    `expected_types("How many staff work in London?")` -> `{"count"}`.
    """
    out = set()
    if _MONEY_Q.search(question) or _PRICE_Q.search(question):
        out.add("money")
    elif _COUNT_Q.search(question):
        out.add("count")
    if _PLACE_Q.search(question):
        out.add("place")
    elif _WHO_Q.search(question) or _WHICH_ENTITY_Q.search(question):
        out.add("name")
    if _YEAR_Q.search(question):
        out.add("date")
    if _DURATION_Q.search(question):
        out.add("duration")
    return out


def asks_how_much(question: str) -> bool:
    """Whether `question` asks "how much" of a sum ("How much is OpenAI paying…?"), rather than naming
    a price, a budget or a cost ("What does the review say it costs…?")."""
    return bool(_MONEY_Q.search(question))


def defined_term(question: str) -> str | None:
    """The term a "what is X?" question asks about, or None for any other question.

    `defined_term("What is Humphrey?")` -> `"Humphrey"`; `defined_term("What is Humphrey used for?")`
    -> `"Humphrey used for"` (callers require every word of it in a passage sentence);
    `defined_term("Why is AI useful?")` -> None.
    """
    m = _DEFINITION_Q.match(question)
    return m.group("term") if m and len(m.group("term").split()) <= 6 else None


def has_type(text: str, kind: str, question: str = "") -> bool:
    """True when `text` states an answer of `kind`; a name or place must be one the question does not give.

    `has_type("Peter Kyle signed it.", "name", "Who signed the OpenAI deal?")` -> True;
    `has_type("OpenAI signed it.", "name", "Who signed the OpenAI deal?")` -> False.
    """
    text = strip_markers(text)
    if kind == "money":
        return bool(_MONEY.search(text))
    if kind == "count":
        return bool(_NUMBER.search(text if _COUNTS_TIME.search(question) else _TIMING.sub(" ", text)))
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "duration":
        return bool(_SPAN.search(text) or _DATE.search(text))
    asked = question.lower()
    if kind == "place":
        places = (m.group("place") for m in _LOCATED.finditer(text))
        return any(not _NOT_A_PLACE.match(p) and p.lower().split("’")[0].split("'")[0] not in asked for p in places)
    return any(n.lower().split("'")[0] not in asked for n in names(text))


# "Who chairs it, and when does it begin?": a question that asks a second thing.
_SECOND_PART = re.compile(r",?\s+and\s+(?=(?:what|which|why|how|who|whom|where|when)\b)", re.IGNORECASE)


def _parts(question: str, answer: str) -> list[tuple[str, set[str], bool]]:
    """Each part of `question` (one, or two around ", and what/who/…"): its text, the kinds it asks
    for, and whether `answer` states one of them."""
    out = []
    for part in _SECOND_PART.split(question, maxsplit=1):
        kinds = expected_types(part)
        out.append((part.strip(), kinds, any(has_type(answer, k, question) for k in kinds)))
    return out


def answers_the_question(question: str, answer: str) -> bool | None:
    """Whether `answer` has one of the kinds `question` asks for; None when the question asks for no
    checkable kind. A question in two parts ("When did…, and what was set up?") is answered by either:
    an answer with neither part's kind is False only when both parts ask for a checkable kind.
    """
    parts = _parts(question, answer)
    if not any(kinds for _, kinds, _ in parts):
        return None
    if any(stated for *_, stated in parts):
        return True
    return None if not all(kinds for _, kinds, _ in parts) else False


def unanswered_parts(question: str, answer: str) -> list[str]:
    """The parts of a two-part question that ask a checkable kind `answer` does not state, as written
    in the question (empty for a one-part question, or when every such part is answered).

    `unanswered_parts("Who announced it, and where?", "David Lammy announced it [1].")` -> `["where?"]`.
    """
    parts = _parts(question, answer)
    if len(parts) < 2:
        return []
    return [text for text, kinds, stated in parts if kinds and not stated]
