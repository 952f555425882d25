"""Check an answer's [n] citations against the passages it was given, before anyone sees it.

Markers that point at no passage are removed; each sentence is scored against the passages it
cites (lexical overlap and embedding similarity); an unsupported sentence is dropped or flagged;
an answer left with no supported sentence becomes the refusal. Citations are renumbered in
order of appearance and each carries the best-matching quote with its offsets in the document.
This module does not retrieve or generate.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from rag.embedding import Embedder
from rag.lexical import STOP_WORDS, tokenize
from rag.prompts import REFUSAL
from rag.settings import shipped
from rag.text import CAPITALISED, MONTHS, names, parse_markers, proper_nouns, sentence_spans, split_sentences
from rag.types import CheckedAnswer, Citation, Hit, SentenceCheck

__all__ = ["CitationChecker", "CheckedAnswer", "parse_markers", "split_sentences", "is_refusal"]

_REFUSAL_LIKE = re.compile(
    r"(can ?not|can't|cannot|could not|couldn't|unable to) (find|answer|locate)|"
    r"(not|no) (contain|mention|say|state|specify|include|provide|give)|"
    r"(does|do|did) not (contain|mention|say|state|specify|include|provide|give|cover)|"
    r"(isn't|is not|not) (in|covered|mentioned|stated|specified|provided)|no information",
    re.IGNORECASE,
)


PASSAGE_CACHE = 4096  # passage and sentence vectors kept by the checker (1.5 kB each)
TERSE_WORDS = 3  # claims with fewer content words than this are scored with their question


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
_NEGATION = re.compile(r"\b(not|no|never|none|neither|nor|cannot|unable)\b|n't\b", re.IGNORECASE)
_YES_NO = re.compile(r"^\s*(yes|no)\b", re.IGNORECASE)


def opens_with_yes_or_no(text: str) -> bool:
    """`opens_with_yes_or_no("No. It is voluntary [1].")` -> True; `opens_with_yes_or_no("Nobody")` -> False."""
    return bool(_YES_NO.match(text))


_CONNECTORS = frozenset({"of", "for", "and", "the", "&", "on", "in"})


def acronym_in(acronym: str, passage: str) -> bool:
    """`acronym` spells the initials of a capitalised run of the passage ("of", "for", "and", ...
    may sit inside it; a word in capitals gives itself).

    `acronym_in("DSIT", "the Department for Science, Innovation and Technology")` -> True;
    `acronym_in("AISI", "the AI Security Institute")` -> True.
    """
    runs, run = [], ""
    for word in re.findall(r"[\w&][\w&'’-]*", passage):
        if word[0].isupper():
            run += word if word.isupper() and len(word) > 1 else word[0]
        elif word.lower() not in _CONNECTORS:
            runs.append(run)
            run = ""
    runs.append(run)
    return any(acronym.upper() in r.upper() for r in runs if len(r) >= len(acronym))


def names_supported(claim: str, passage: str, known: set[str] = frozenset()) -> bool:
    """Every name the claim states (the head of each capitalised run) occurs in the passage, so a
    claim cannot credit a deal to another company or a signature to another person.

    `names_supported("Peter Kyle signed it", "Signed today by Technology Secretary Peter Kyle")` -> True;
    `names_supported("Anthropic will share models", "OpenAI will share models")` -> False.
    """
    text = passage.lower().replace("’", "'")
    for name in names(claim, known | proper_nouns(passage)):
        # A compound ("UK-OpenAI", "UK–Cohere") names each of its parties.
        for part in filter(None, re.split(r"[-–]", name.lower().replace("’", "'").split("'")[0])):
            if re.search(rf"(?<![a-z0-9]){re.escape(part.rstrip('s') if len(part) > 3 else part)}", text):
                continue
            # An abbreviation of a name the passage writes out ("DSIT", "AISI") names it too.
            if not (name.isupper() and len(name) > 1 and acronym_in(name, passage)):
                return False
    return True


def negated(text: str) -> bool:
    """`negated("The deal is not legally binding")` -> True; `negated("It is binding")` -> False."""
    return bool(_NEGATION.search(text))


def _closest(texts: list[str], claim: str) -> str:
    """The text sharing the most content words with the claim (the first of equals)."""
    want = set(tokenize(claim))
    return max(texts, key=lambda t: len(want & set(tokenize(t))))


def _closest_sentence(passage: str, claim: str) -> str:
    """The passage sentence sharing the most content words with the claim."""
    return _closest([passage[s:e] for s, e in sentence_spans(passage) or [(0, len(passage))]], claim)


_CLAUSE = re.compile(r"[.;:,!?](?:\s|$)|\s+(?:but|while|whereas)\s+")


def clauses(text: str) -> list[str]:
    """`text` cut into its statements at punctuation and at "but"/"while"/"whereas"; a part with
    fewer than two content words joins its neighbour ("not legally binding" stands, "however" joins):
    `clauses("Though not binding, the deal sets a framework")` -> `["Though not binding", "the deal sets a framework"]`.
    """
    out: list[str] = []
    for part in (p.strip() for p in _CLAUSE.split(text)):
        if not part:
            continue
        if out and min(len(tokenize(part)), len(tokenize(out[-1]))) < 2:
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out or [text]


def polarity_agrees(claim: str, passage: str, question: str = "") -> bool:
    """Each statement of the claim and the passage statement closest to it are both negative or both positive.

    A bare "Yes"/"No" is read as the answer to the question, against the passage sentence closest
    to the question. "Yes" must agree with it; so must "No" when that sentence says "not", but an
    affirmative sentence does not contradict "No" ("Is OpenAI the only one?" - "No": "similar deals
    were signed with Google and Anthropic" says so without a "not").
    `polarity_agrees("Yes.", "The MoU is not legally binding.", "Is the MoU legally binding?")` -> False.
    """
    yn = _YES_NO.match(claim)
    if yn and len(tokenize(claim)) < TERSE_WORDS:
        sentence = _closest_sentence(passage, question)
        expected = "no" if negated(sentence) != negated(question) else "yes"
        said = yn.group(1).lower()
        return said == expected or (said == "no" and not negated(sentence))
    body = _YES_NO.sub("", claim, count=1)
    # Statement against statement: a passage sentence may say "not" in one clause and more in the
    # next, so each statement of the claim is held against the closest statement of the passage.
    pieces = clauses(passage)
    return all(negated(part) == negated(_closest(pieces, part)) for part in clauses(body))


_NOT_SUBJECTS = frozenset(w.capitalize() for w in STOP_WORDS) | frozenset(
    [
        *MONTHS,
        "One",
        "Two",
        "Three",
        "Four",
        "Five",
        "Six",
        "Seven",
        "Eight",
        "Nine",
        "Ten",
        "AI",
        "Yes",
        "No",
        "According",
        "However",
        "Also",
        "Additionally",
        "Overall",
        "Over",
        "Under",
    ]
)


def _subject(text: str) -> str | None:
    """The first name-like word of `text`'s last clause, the actor of the sum that follows it:
    `_subject("Over £2bn will go")` -> None; `_subject("Wise will chair it; from April, backed by")` -> None."""
    clause = re.split(r"[;:(]|,\s+(?:and|but|while|with)\b", text)[-1]
    return next((m.group(0) for m in CAPITALISED.finditer(clause) if m.group(0) not in _NOT_SUBJECTS), None)


def sums_of_money(text: str) -> list[str]:
    """The sums of money `text` states: `sums_of_money("£500m for compute, then $2bn")` -> `["£500m", "$2bn"]`."""
    return [m.group(0) for m in _MONEY.finditer(text)]


def amounts_attributed(claim: str, passage: str) -> bool:
    """A sum of money is credited to the same actor as in the passage: the claim's subject (the
    first name-like word of the clause that states the sum) must appear before that sum in a passage
    sentence that states it.

    `amounts_attributed("OpenAI is investing £500m", "The UK is investing £500m with OpenAI")` -> False;
    `amounts_attributed("The UK is investing £500m", "The UK is investing £500m with OpenAI")` -> True.
    """
    sentences = [passage[a:b] for a, b in sentence_spans(passage)]
    for m in _MONEY.finditer(claim):
        subject = _subject(claim[: m.start()])
        if subject is None:
            continue
        figure = numbers(m.group(0))
        placed = any(
            numbers(pm.group(0)) == figure and re.search(rf"\b{re.escape(subject)}\b", sent[: pm.start()])
            for sent in sentences
            for pm in _MONEY.finditer(sent)
        )
        if not placed:
            return False
    return True


def best_quote(passage: str, claims: list[str]) -> tuple[int, int]:
    """The span of the passage (one sentence, or two adjacent) that best matches the claims.

    Returns offsets into `passage`; the whole passage when nothing matches.
    """
    want = set(tokenize(" ".join(claims)))
    spans = sentence_spans(passage)
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


def broken_rules(claim: str, hit: Hit, question: str = "", known: set[str] = frozenset()) -> Iterator[str]:
    """The exact rules `claim` breaks against `hit`'s passage, in order, each tested only when asked for:
    "number" (a number not in the passage, its document's title or date, or the question),
    "amount" (money credited to another actor), "name" (a name not in the passage, its title or
    headings; `known` are names seen in the other passages, so a name opening the claim is
    recognised as one), "polarity" (a statement whose closest passage statement says "not" where it
    does not, or the reverse).
    """
    text = hit.chunk.text
    if not numbers_supported(claim, f"{question} {text} {hit.chunk.title} {hit.chunk.date}"):
        yield "number"
    if not amounts_attributed(claim, text):
        yield "amount"
    if not names_supported(claim, " ".join([text, hit.chunk.title, *hit.chunk.heading_path]), known):
        yield "name"
    if not polarity_agrees(claim, text, question):
        yield "polarity"


def failed_rules(claim: str, hit: Hit, question: str = "", known: set[str] = frozenset()) -> list[str]:
    """Every exact rule `claim` breaks against `hit`'s passage (see `broken_rules`)."""
    return list(broken_rules(claim, hit, question, known))


class CitationChecker:
    """Scores sentences as 0.5 * lexical overlap + 0.5 * embedding cosine against a passage, and
    zero when the sentence states a number or a name the passage does not hold, credits a sum of
    money to someone the passage does not, or says "not" where the passage does not (or the reverse)."""

    def __init__(
        self,
        embedder: Embedder | None,
        threshold: float = shipped("support_threshold"),
        unsupported: str = shipped("unsupported"),
        *,
        rules: bool = True,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.unsupported = unsupported
        self.rules = rules  # False only to measure what the exact rules do (rag.evaluation.check_probe)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _scores(self, claims: list[str], hits: list[Hit], question: str = "") -> np.ndarray:
        """`scores[i, j]`: support of claim i by passage j; zero when an exact rule fails."""
        known = set().union(*(proper_nouns(h.chunk.text) for h in hits)) if hits else set()
        rules = np.array(
            # The first broken rule settles it; the others are not tested.
            [[not self.rules or next(broken_rules(c, h, question, known), None) is None for h in hits] for c in claims],
            dtype=np.float32,
        )
        claims = [self._scored_text(c, question) for c in claims]
        lex = np.array([[lexical_support(c, h.chunk.text) for h in hits] for c in claims], dtype=np.float32)
        if self.embedder is None or not claims or not hits:
            return lex * rules
        return (0.5 * lex + 0.5 * self._similarity(claims, hits)) * rules

    def _passage_vectors(self, texts: list[str]) -> np.ndarray:
        """The passages' (and their sentences') vectors, each embedded once: a streamed answer is
        checked again as each sentence finishes, against the same passages."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = self.embedder.embed_documents(missing)
            with self._lock:
                for t, v in zip(missing, fresh, strict=True):
                    self._vectors[t] = v
                while len(self._vectors) > PASSAGE_CACHE:
                    self._vectors.popitem(last=False)
        with self._lock:
            vectors = [self._vectors.get(t) for t in texts]
        if any(v is None for v in vectors):  # evicted meanwhile by other requests: embed directly
            return self.embedder.embed_documents(texts)
        return np.stack(vectors)

    def _similarity(self, claims: list[str], hits: list[Hit]) -> np.ndarray:
        """`sim[i, j]`: cosine of claim i with passage j or with its closest sentence, whichever is
        higher, so a claim that restates one sentence is not diluted by the rest of the passage."""
        texts, owner = [], []
        for j, h in enumerate(hits):
            sentences = [h.chunk.text[a:b] for a, b in sentence_spans(h.chunk.text)]
            for t in [h.chunk.text, *(sentences if len(sentences) > 1 else [])]:
                texts.append(t)
                owner.append(j)
        cos = np.clip(self.embedder.embed_documents(claims) @ self._passage_vectors(texts).T, 0.0, 1.0)
        sim = np.zeros((len(claims), len(hits)), dtype=np.float32)
        for k, j in enumerate(owner):
            sim[:, j] = np.maximum(sim[:, j], cos[:, k])
        return sim

    @staticmethod
    def _scored_text(claim: str, question: str) -> str:
        """A terse claim ("5", "No") is scored together with the question it answers."""
        return f"{question} {claim}" if question and len(tokenize(claim)) < TERSE_WORDS else claim

    @staticmethod
    def _cites(sentence: str, n_hits: int) -> bool:
        return any(1 <= n <= n_hits for n in parse_markers(sentence)[1])

    def check(self, raw: str, hits: list[Hit], question: str = "") -> CheckedAnswer:
        """Check `raw` (the model's text, markers numbered from 1 over `hits`).

        A terse claim ("5 [1]") is scored together with the question it answers, since on its
        own it has too few words to match anything; its numbers must still be in the passage.

        Returns:
            The cleaned answer with renumbered markers, its citations, and a verdict per sentence.
        """
        sentences = split_sentences(raw)
        # "The MoU does not include funding [1]." is a cited claim; an uncited "not in the documents" is a refusal.
        if not sentences or (is_refusal(sentences[0]) and not self._cites(sentences[0], len(hits))):
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
            s, e = best_quote(chunk.text, [self._scored_text(bare, question) for bare, use in kept if j in use])
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
