"""Check an answer's [n] citations against the passages it was given, before anyone sees it.

Markers that point at no passage are removed; each sentence is scored against the passages it
cites (lexical overlap and embedding similarity); an unsupported sentence is dropped or flagged;
an answer left with no supported sentence becomes the refusal. Citations are renumbered in
order of appearance and each carries the best-matching quote with its offsets in the document.
This module does not retrieve or generate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.embedding import Embedder
from rag.lexical import tokenize
from rag.prompts import REFUSAL
from rag.types import Citation, Hit, SentenceCheck

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\[A-Z0-9\"“‘(£$€])|\n+")
_LEADING_MARKERS = re.compile(r"^((?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+)\s*")
_REFUSAL_LIKE = re.compile(
    r"(can ?not|can't|cannot|could not|couldn't|unable to) (find|answer|locate)|"
    r"(not|no) (contain|mention|say|state|specify|include|provide|give)|"
    r"(does|do|did) not (contain|mention|say|state|specify|include|provide|give|cover)|"
    r"(isn't|is not|not) (in|covered|mentioned|stated|specified|provided)|no information",
    re.IGNORECASE,
)


TERSE_WORDS = 3  # claims with fewer content words than this are scored with their question


@dataclass
class CheckedAnswer:
    text: str
    refused: bool
    citations: list[Citation]
    sentences: list[SentenceCheck]


def split_sentences(text: str) -> list[str]:
    """Sentences with their markers; a marker after the full stop stays with its sentence, unless
    that sentence has markers of its own (then the marker leads the next one, as small models write).

    `split_sentences("A is b. [1] C is d [2].")` -> `["A is b. [1]", "C is d [2]."]`;
    `split_sentences("[1] A is b.\n[2] C is d.")` -> `["[1] A is b.", "[2] C is d."]`.
    """
    pieces = [p.strip() for p in _SPLIT.split(text.strip()) if p and p.strip()]
    out: list[str] = []
    for p in pieces:
        m = _LEADING_MARKERS.match(p)
        if m and out and not _MARKER.search(out[-1]):
            out[-1] = out[-1] + " " + m.group(1).strip()
            p = p[m.end() :].strip()
        if p:
            out.append(p)
    return out


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """Strip markers from a sentence: `parse_markers("X grew [1, 3].")` -> `("X grew.", [1, 3])`."""
    nums: list[int] = []
    for m in _MARKER.finditer(sentence):
        for n in re.split(r"\s*[,;]\s*", m.group(1)):
            if int(n) not in nums:
                nums.append(int(n))
    bare = _MARKER.sub("", sentence).strip()
    bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
    return bare, nums


def is_refusal(text: str) -> bool:
    """True when a sentence says the documents do not hold the answer."""
    return REFUSAL.lower().rstrip(".") in text.lower() or bool(_REFUSAL_LIKE.search(text))


def lexical_support(claim: str, passage: str) -> float:
    """Share of the claim's content words found in the passage.

    `lexical_support("OpenAI hires staff", "OpenAI will hire more staff")` -> 1.0 (stems meet).
    """
    c = set(tokenize(claim))
    return len(c & set(tokenize(passage))) / len(c) if c else 0.0


_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    """Numbers as written, without thousands separators: `numbers("£1,500m in 2025")` -> `{"1500", "2025"}`."""
    return {m.group(0).replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}


def numbers_supported(claim: str, passage: str) -> bool:
    """Every number in the claim appears in the passage; a made-up figure fails however fluent.

    `numbers_supported("200 bids came in", "Bids came from Scotland")` -> False.
    """
    return numbers(claim) <= numbers(passage)


_MONEY = re.compile(r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:bn|m|k|billion|million|thousand)\b)?", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[-’'][A-Za-z]+)?\b")
_NOT_NAMES = frozenset(
    [
        "A",
        "AI",
        "An",
        "And",
        "As",
        "At",
        "But",
        "By",
        "For",
        "From",
        "He",
        "If",
        "In",
        "It",
        "Its",
        "On",
        "Our",
        "She",
        "The",
        "Their",
        "There",
        "These",
        "They",
        "This",
        "Those",
        "To",
        "Under",
        "We",
        "What",
        "When",
        "Where",
        "Which",
        "While",
        "Who",
        "With",
        "Yes",
        "No",
    ]
)


def _first_name(text: str) -> str | None:
    return next((m.group(0) for m in _NAME.finditer(text) if m.group(0) not in _NOT_NAMES), None)


def amounts_attributed(claim: str, passage: str) -> bool:
    """A sum of money is credited to the same actor as in the passage: the first name in the claim
    (its subject) must appear before that sum in a passage sentence that states it.

    `amounts_attributed("OpenAI is investing £500m", "The UK is investing £500m with OpenAI")` -> False;
    `amounts_attributed("The UK is investing £500m", "The UK is investing £500m with OpenAI")` -> True.
    """
    for m in _MONEY.finditer(claim):
        subject = _first_name(claim[: m.start()])
        if subject is None:
            continue
        figure = numbers(m.group(0))
        sentences = [passage[a:b] for a, b in _sentence_spans(passage)]
        placed = False
        for sent in sentences:
            for pm in _MONEY.finditer(sent):
                if numbers(pm.group(0)) == figure and re.search(rf"\b{re.escape(subject)}\b", sent[: pm.start()]):
                    placed = True
        if not placed:
            return False
    return True


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in re.finditer(r"(?<=[.!?])\s+|\n+", text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def best_quote(passage: str, claims: list[str]) -> tuple[int, int]:
    """The span of the passage (one sentence, or two adjacent) that best matches the claims.

    Returns offsets into `passage`; the whole passage when nothing matches.
    """
    want = set(tokenize(" ".join(claims)))
    spans = _sentence_spans(passage)
    if not want or not spans:
        return 0, len(passage)
    toks = [set(tokenize(passage[s:e])) for s, e in spans]
    candidates = []
    for i in range(len(spans)):
        for j in range(i, min(i + 2, len(spans))):
            cover = len(want & set().union(*toks[i : j + 1]))
            # A pair of sentences must cover two more words than one sentence to be worth quoting.
            candidates.append((cover - 1.5 * (j - i), -(spans[j][1] - spans[i][0]), spans[i][0], spans[j][1]))
    best = max(candidates)
    if best[0] <= 0:
        return 0, len(passage)
    return best[2], best[3]


class CitationChecker:
    """Scores sentences as 0.5 * lexical overlap + 0.5 * embedding cosine against a passage,
    and zero when the sentence states a number the passage does not hold, or credits a sum of
    money to someone the passage does not."""

    def __init__(self, embedder: Embedder | None, threshold: float = 0.45, unsupported: str = "drop") -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.unsupported = unsupported

    def _scores(self, claims: list[str], hits: list[Hit], question: str = "") -> np.ndarray:
        """`scores[i, j]`: support of claim i by passage j."""
        # A number the question itself states ("the 10 principles") may be repeated without a source.
        nums = np.array(
            [
                [
                    numbers_supported(c, f"{question} {h.chunk.text}") and amounts_attributed(c, h.chunk.text)
                    for h in hits
                ]
                for c in claims
            ],
            dtype=np.float32,
        )
        claims = [f"{question} {c}" if question and len(tokenize(c)) < TERSE_WORDS else c for c in claims]
        lex = np.array([[lexical_support(c, h.chunk.text) for h in hits] for c in claims], dtype=np.float32)
        if self.embedder is None or not claims or not hits:
            return lex * nums
        cv = self.embedder.embed_documents(claims)
        pv = self.embedder.embed_documents([h.chunk.text for h in hits])
        return (0.5 * lex + 0.5 * np.clip(cv @ pv.T, 0.0, 1.0)) * nums

    def check(self, raw: str, hits: list[Hit], question: str = "") -> CheckedAnswer:
        """Check `raw` (the model's text, markers numbered from 1 over `hits`).

        A terse claim ("5 [1]") is scored together with the question it answers, since on its
        own it has too few words to match anything; its numbers must still be in the passage.

        Returns:
            The cleaned answer with renumbered markers, its citations, and a verdict per sentence.
        """
        sentences = split_sentences(raw)
        if not sentences or is_refusal(sentences[0]):
            return CheckedAnswer(REFUSAL, True, [], [])

        parsed = [parse_markers(s) for s in sentences]
        claims = [bare for bare, _ in parsed]
        scores = self._scores(claims, hits, question)

        kept: list[tuple[str, list[int]]] = []  # (sentence, 0-based passage indices)
        checks: list[SentenceCheck] = []
        for i, (bare, nums) in enumerate(parsed):
            if not bare:
                continue
            valid = [n - 1 for n in nums if 1 <= n <= len(hits)]
            if is_refusal(bare) and not valid:
                kept.append((bare, []))  # an honest "the documents do not say X" is not a claim
                checks.append(SentenceCheck(bare, [], True, 0.0))
                continue
            row = scores[i] if len(hits) else np.zeros(0)
            cited_ok = [j for j in valid if row[j] >= self.threshold]
            if cited_ok:
                use, score = cited_ok, float(max(row[j] for j in cited_ok))
            elif len(row) and float(row.max()) >= self.threshold:
                # Cited the wrong passage, or forgot the marker: point at the one that supports it.
                use, score = [int(row.argmax())], float(row.max())
            else:
                use, score = [], float(max((row[j] for j in valid), default=row.max() if len(row) else 0.0))
            ok = bool(use)
            checks.append(SentenceCheck(bare, [j + 1 for j in use], ok, score))
            if ok or self.unsupported == "flag":
                kept.append((bare, use))

        if not any(use for _, use in kept):
            return CheckedAnswer(REFUSAL, True, [], checks)

        order: dict[int, int] = {}
        for _, use in kept:
            for j in use:
                order.setdefault(j, len(order) + 1)
        out = []
        for bare, use in kept:
            marks = "".join(f"[{order[j]}]" for j in use)
            if marks and bare[-1:] in ".!?":
                out.append(f"{bare[:-1]} {marks}{bare[-1]}")
            else:
                out.append(f"{bare} {marks}".strip())
        citations = []
        for j, n in order.items():
            chunk = hits[j].chunk
            s, e = best_quote(chunk.text, [bare for bare, use in kept if j in use])
            citations.append(
                Citation(
                    n=n,
                    doc_id=chunk.doc_id,
                    title=chunk.title,
                    url=chunk.source_url,
                    quote=chunk.text[s:e],
                    start=chunk.start + s,
                    end=chunk.start + e,
                    chunk_id=chunk.chunk_id,
                    publisher=chunk.publisher,
                    date=chunk.date,
                    heading_path=list(chunk.heading_path),
                )
            )
        return CheckedAnswer(" ".join(out), False, citations, checks)
