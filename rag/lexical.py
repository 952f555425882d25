"""Lexical retrieval with BM25 (Okapi) over the same chunks the dense index holds.

Tokenisation is deliberately simple (lowercase words and numbers, English stop words removed,
a light suffix strip) so that scores can be worked out by hand in tests. Retrieval searches
`rag.keywords.KeywordIndex`, which scores exactly as rank-bm25's `BM25Okapi` (kept here as
`BM25Index`, the oracle the tests compare it with) but lives on disk and grows in place.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
STOP_WORDS = frozenset(
    {
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    }
)


def stem(word: str) -> str:
    """A light suffix strip so plurals and simple verb forms meet: `stem("centres")` -> `"centre"`."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + repl
    return word


def tokenize(text: str) -> list[str]:
    """`tokenize("The UK's data centres")` -> `["uk", "data", "centre"]`."""
    return [
        stem(w)
        for w in _WORD.findall(text.lower().replace("’", "'"))
        if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())
    ]


def document_frequency(texts: Iterable[str]) -> Counter[str]:
    """How many of `texts` hold each word: `document_frequency(["data centres", "data"])["data"]` -> 2."""
    return Counter(w for text in texts for w in set(tokenize(text)))


class BM25Index:
    """BM25 over a list of texts; `search` returns `[(row, score)]` best first, zero scores dropped."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        from rank_bm25 import BM25Okapi

        self._n = len(texts)
        tokens = [tokenize(t) for t in texts]
        self.doc_freq: Counter[str] = Counter(w for toks in tokens for w in set(toks))
        # rank_bm25 divides by the corpus size; an empty corpus is searched as no rows.
        self._bm25 = BM25Okapi(tokens, k1=k1, b=b) if self._n else None

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        q = tokenize(query)
        if not q or self._bm25 is None:
            return []
        scores = self._bm25.get_scores(q)
        order = sorted(range(self._n), key=lambda i: (-scores[i], i))[:k]
        return [(i, float(scores[i])) for i in order if scores[i] > 0]
