"""Evaluation metrics as pure functions over plain values (ids, spans, strings, booleans, numbers).

Each is small enough to check by hand; evals/README.md gives the exact definitions. This module
knows nothing about `Answer`s or result files: `rag.evaluation.scoring` feeds it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence

from rag.text import marker_numbers

Span = tuple[str, int, int]  # (doc_id, start, end): a half-open character range of a document body

_ARTICLES = re.compile(r"\b(a|an|the)\b")


# --- retrieval ---------------------------------------------------------------------------------


def hit_at_k(retrieved: Sequence[str], gold: Collection[str], k: int) -> float:
    """1.0 if any of the first `k` retrieved doc ids is gold: `hit_at_k(["a", "b"], {"b"}, 1)` -> `0.0`."""
    return float(any(d in gold for d in retrieved[:k]))


def recall_at_k(retrieved: Sequence[str], gold: Collection[str], k: int) -> float:
    """Share of gold doc ids among the first `k` retrieved: `recall_at_k(["a", "a"], {"a", "c"}, 5)` -> `0.5`."""
    want = set(gold)
    return len(want & set(retrieved[:k])) / len(want) if want else 0.0


def reciprocal_rank(retrieved: Sequence[str], gold: Collection[str]) -> float:
    """1/rank of the first retrieved passage from a gold doc: `reciprocal_rank(["a", "b"], {"b"})` -> `0.5`."""
    return next((1.0 / r for r, d in enumerate(retrieved, start=1) if d in gold), 0.0)


def spans_overlap(a: Span, b: Span) -> bool:
    """Same document and at least one shared character: `spans_overlap(("d", 0, 5), ("d", 4, 9))` -> `True`."""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def quote_recall_at_k(quotes: Sequence[Sequence[Span]], chunks: Sequence[Span], k: int) -> float:
    """Share of gold quotes overlapping one of the first `k` chunks; each quote lists its occurrences.

    `quote_recall_at_k([[("d", 0, 9)], [("d", 50, 60)]], [("d", 5, 20)], 5)` -> `0.5`.
    """
    if not quotes:
        return 0.0
    top = chunks[:k]
    return sum(any(spans_overlap(q, c) for q in occ for c in top) for occ in quotes) / len(quotes)


# --- answer text (markers are read by rag.text: `strip_markers`, `marker_numbers`) ---------------


def key_facts_present(answer: str, facts: Sequence[str]) -> float:
    """1.0 if every fact occurs in the answer, ignoring case and spacing, else 0.0.

    `key_facts_present("OpenAI makes ChatGPT", ["openai", "chatgpt"])` -> `1.0`.
    """

    def norm(s: str) -> str:
        return " ".join(s.replace("’", "'").casefold().split())

    text = norm(answer)
    return float(all(norm(f) in text for f in facts))


def normalize_answer(text: str) -> str:
    """SQuAD normalisation (lower case, no punctuation, no articles, single spaces).

    Punctuation is deleted as in SQuAD, but any Unicode punctuation, so curly quotes go too:
    `normalize_answer("The UK’s plan!")` -> `"uks plan"`.
    """
    text = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 after `normalize_answer`: `answer_f1("the cat sat", "a cat ran")` -> `0.5`."""
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence: `lcs_length("abcd", "acbd")` -> `3`."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) over `normalize_answer` tokens: `rouge_l("cat sat mat", "cat on mat")` -> `2/3`."""
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    lcs = lcs_length(p, r) if p and r else 0
    if lcs == 0:
        return float(p == r)
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


# --- citations ---------------------------------------------------------------------------------


def citation_validity(raw: str, n_passages: int) -> float | None:
    """Share of markers in `raw` that name a given passage (1..n); None without markers.

    `citation_validity("A [1]. B [4].", 3)` -> `0.5`.
    """
    nums = marker_numbers(raw)
    return sum(1 <= n <= n_passages for n in nums) / len(nums) if nums else None


Claim = tuple[Sequence[int], Collection[int]]  # (passages the sentence cites, passages that support it)


def citation_precision(claims: Sequence[Claim]) -> float | None:
    """Share of all citations (sentence, passage) whose passage supports the sentence; None without any.

    `citation_precision([([1, 2], {1}), ([3], {3})])` -> `2/3`.
    """
    total = sum(len(cited) for cited, _ in claims)
    good = sum(n in support for cited, support in claims for n in cited)
    return good / total if total else None


def citation_recall(claims: Sequence[Claim]) -> float | None:
    """Share of sentences with at least one supporting citation; None without sentences.

    `citation_recall([([1], {1}), ([2], set()), ([], {1})])` -> `1/3`.
    """
    if not claims:
        return None
    return sum(any(n in support for n in cited) for cited, support in claims) / len(claims)


# --- refusals ----------------------------------------------------------------------------------


def refusal_precision(refused: Sequence[bool], answerable: Sequence[bool]) -> float | None:
    """Share of refusals that were right (the item is unanswerable); None without refusals.

    `refusal_precision([True, True, False], [False, True, True])` -> `0.5`.
    """
    right = [not a for r, a in zip(refused, answerable, strict=True) if r]
    return sum(right) / len(right) if right else None


def refusal_recall(refused: Sequence[bool], answerable: Sequence[bool]) -> float | None:
    """Share of unanswerable items refused; None without unanswerable items.

    `refusal_recall([True, False], [False, False])` -> `0.5`.
    """
    got = [r for r, a in zip(refused, answerable, strict=True) if not a]
    return sum(got) / len(got) if got else None


def false_refusal_rate(refused: Sequence[bool], answerable: Sequence[bool]) -> float | None:
    """Share of answerable items refused; None without answerable items.

    `false_refusal_rate([True, False, True], [True, True, False])` -> `0.5`.
    """
    got = [r for r, a in zip(refused, answerable, strict=True) if a]
    return sum(got) / len(got) if got else None


# --- aggregates --------------------------------------------------------------------------------


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the defined values: `mean([1.0, None, 0.0])` -> `0.5`; `mean([None])` -> `None`."""
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default.

    `percentile([1, 2, 3, 4], 50)` -> `2.5`; `percentile([], 50)` -> `None`.
    """
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def tokens_per_s(tokens: Sequence[int], seconds: Sequence[float]) -> float | None:
    """Pooled throughput, total tokens over total seconds: `tokens_per_s([10, 30], [1, 3])` -> `10.0`."""
    total = sum(seconds)
    return sum(tokens) / total if total > 0 else None
