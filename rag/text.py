"""Citation markers and sentences: the one place that knows what `[n]` means and where a sentence ends.

The citation check, the prompts, the evaluation, the OpenAI-compatible route and the UI all read
markers and sentences through this module, so they cannot disagree. It does not score or render.
"""

from __future__ import annotations

import re

from rag.lexical import STOP_WORDS

# A marker group: `[1]`, `[1, 3]`, `[2; 4]`. Group 1 holds the numbers.
MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*" + MARKER.pattern)
_LEADING_MARKERS = re.compile(r"^((?:\s*" + MARKER.pattern + r")+)\s*")

# Words whose full stop does not end a sentence ("Mr. Kyle", "e.g. the", "No. 10").
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sir",
        "st",
        "rt",
        "hon",
        "gov",
        "govt",
        "dept",
        "no",
        "nos",
        "vs",
        "etc",
        "eg",
        "ie",
        "e.g",
        "i.e",
        "approx",
        "inc",
        "ltd",
        "co",
        "corp",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "fig",
        "cf",
        "al",
        "u.k",
        "u.s",
        "u.n",
        "e.u",
    ]
)
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets and markers), then space.
_END = re.compile(r"[.!?][\"”’')\]]*((?:[ \t]*" + MARKER.pattern + r")*)\s+|\n+")
_NEXT_STARTS = re.compile(r"[\[A-Z0-9\"“‘(£$€]")


def marker_numbers(text: str) -> list[int]:
    """Every marker number in order, with repeats: `marker_numbers("A [1]. B [2, 9][1].")` -> `[1, 2, 9, 1]`."""
    return [int(n) for m in MARKER.finditer(text) for n in re.split(r"\s*[,;]\s*", m.group(1))]


def strip_markers(text: str) -> str:
    """Remove markers and the space before them: `strip_markers("It is 5 [1][2].")` -> `"It is 5."`."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER_WITH_SPACE.sub("", text)).strip()


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """A sentence without its markers, and their distinct numbers in order.

    `parse_markers("X grew [1, 3].")` -> `("X grew.", [1, 3])`.
    """
    nums: list[int] = []
    for n in marker_numbers(sentence):
        if n not in nums:
            nums.append(n)
    return strip_markers(sentence), nums


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the full stop at `text[dot]` closes an abbreviation or an initial ("U.K.", "Mr.", "J.")."""
    m = re.search(r"([A-Za-z][A-Za-z.]*)$", text[:dot])
    if not m:
        return False
    word = m.group(1).rstrip(".")
    if len(word) == 1:
        return word.isupper()  # an initial: "J. Smith"
    return word.lower() in _ABBREVIATIONS or ("." in word and len(word) <= 5)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`; markers after a full stop stay with their sentence.

    `sentence_spans("Mr. Kyle signed. It is £2bn.[1] Then")` -> `[(0, 16), (17, 32), (33, 37)]`.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        if "\n" in m.group(0):
            end, nxt = m.start() + len(m.group(0).rstrip()), m.end()
        else:
            end = m.start() + len(m.group(0).rstrip())
            nxt = m.end()
            if nxt < len(text) and not _NEXT_STARTS.match(text, nxt):
                continue  # "e.g. the": a lower-case word follows, so the sentence goes on
            if text[m.start()] == "." and _is_abbreviation(text, m.start()) and not m.group(1):
                # "U.K. The" is ambiguous; a capitalised common word after it starts a new sentence.
                following = re.match(r"[A-Z][a-z]+", text[nxt:])
                if not following or following.group(0).lower() not in _SENTENCE_OPENERS:
                    continue
        if text[start:end].strip():
            spans.append((start, end))
        start = nxt
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


_SENTENCE_OPENERS = frozenset(
    [
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "they",
        "there",
        "he",
        "she",
        "we",
        "a",
        "an",
        "in",
        "on",
        "at",
        "for",
        "but",
        "and",
        "however",
        "under",
        "as",
        "after",
        "before",
        "when",
        "while",
        "if",
        "so",
        "also",
        "then",
        "yes",
        "no",
    ]
)


def split_sentences(text: str) -> list[str]:
    """Sentences with their markers. A marker after the full stop stays with its sentence, unless that
    sentence has markers of its own (then the marker leads the next one, as small models write).

    `split_sentences("A is b. [1] C is d [2].")` -> `["A is b. [1]", "C is d [2]."]`;
    `split_sentences("It is £2bn.[1] It grew.")` -> `["It is £2bn.[1]", "It grew."]`.
    """
    text = text.strip()
    out: list[str] = []
    for s, e in sentence_spans(text):
        piece = text[s:e].strip()
        m = _LEADING_MARKERS.match(piece)
        if m and out and not MARKER.search(out[-1]):
            out[-1] = out[-1] + " " + m.group(1).strip()
            piece = piece[m.end() :].strip()
        if piece:
            out.append(piece)
    return out


MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# --- names ---------------------------------------------------------------------------------------

CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[-’'][A-Za-z]+)*\b")
# Capitalised words that are not names: sentence openers and words a claim may capitalise freely.
NOT_NAMES = frozenset(w.capitalize() for w in STOP_WORDS) | frozenset(
    [
        "A",
        "AI",
        "Also",
        "According",
        "Additionally",
        "Both",
        "Each",
        "However",
        "Instead",
        "It's",
        "Overall",
        "Yes",
        "No",
        "Not",
        "Under",
        "Over",
        "Once",
        "Government",
        "Minister",
        "Ministers",
        "Secretary",
        "State",
        "Department",
        "Prime",
        "Chancellor",
        "Parliament",
        "House",
        "Commons",
        "UK",
        "British",
        "Britain",
        "Kingdom",
        "United",
        "England",
        "English",
        "Memorandum",
        "Understanding",
        "MoU",
        "Agreement",
        "Partnership",
        *MONTHS,
    ]
)
_RUN = re.compile(r"[A-Z][\w’'-]*(?:[ \t]+[A-Z][\w’'-]*)*")


def _is_name_word(word: str) -> bool:
    return word not in NOT_NAMES and not (word.isupper() and len(word) <= 3)


def _distinctive(word: str) -> bool:
    """A word that is a name even at the start of a sentence: "OpenAI", "DeepMind", "NVIDIA", "GPT-4"."""
    return any(c.isupper() or c.isdigit() for c in word[1:])


def proper_nouns(text: str) -> set[str]:
    """Capitalised words of `text` that are not at the start of a sentence, so are names there.

    `proper_nouns("Critics spoke. They met Anthropic staff.")` -> `{"Anthropic"}`.
    """
    out = set()
    for m in CAPITALISED.finditer(text):
        before = text[: m.start()].rstrip(' \t"“‘(')
        if before and before[-1] not in ".!?:\n":
            out.add(m.group(0))
    return out


def names(text: str, known: set[str] = frozenset()) -> list[str]:
    """The head (last word) of each capitalised run of `text`, such as a surname or an organisation.

    A lone capitalised word opening the text counts only when it is distinctive ("OpenAI") or in
    `known` (names seen elsewhere, e.g. in the passages), since any word is capitalised there.
    `names("Technology Secretary Peter Kyle met Sam Altman.")` -> `["Kyle", "Altman"]`.
    """
    out: list[str] = []
    for m in _RUN.finditer(text):
        words = [re.sub(r"[’']s$", "", w).strip("-’'") for w in m.group(0).split()]
        keep = [w for w in words if w and _is_name_word(w)]
        if not keep:
            continue
        opener = not text[: m.start()].strip(' \t"“‘(')
        if opener and len(keep) == 1 and keep[0] == words[0] and not (_distinctive(keep[0]) or keep[0] in known):
            continue
        out.append(keep[-1])
    return list(dict.fromkeys(out))
