"""Lexical retrieval with BM25 (Okapi) over the same chunks the dense index holds.

Tokenisation is deliberately simple (lowercase words and numbers, English stop words removed,
a light suffix strip) so that scores can be worked out by hand in tests. `KeywordIndex` is what
retrieval uses: it scores exactly as rank-bm25's `BM25Okapi` (kept as `BM25Index`, the oracle),
but an upload tokenises only its own passages instead of rebuilding everything.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter

import numpy as np

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


class KeywordIndex:
    """BM25 (Okapi, rank-bm25's formula and idf floor) over passages keyed by chunk key, that
    grows and shrinks in place. `search` returns `[(key, score)]` best first, zero scores dropped,
    ties in the order passages were added. Thread-safe: searches and changes take one lock.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._lock = threading.Lock()
        self._keys: list[int] = []  # slot -> key; slots only grow, so slot order is insertion order
        self._slot: dict[int, int] = {}
        self._terms: list[list[str]] = []  # slot -> its distinct terms (to undo its counts on removal)
        self._len: list[int] = []
        self._alive: list[bool] = []
        self._postings: dict[str, tuple[list[int], list[int]]] = {}  # term -> (slots, term counts)
        self._df: dict[str, int] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._idf: dict[str, float] = {}
        self._n = 0
        self._total = 0

    def __len__(self) -> int:
        return self._n

    @property
    def doc_freq(self) -> dict[str, int]:
        """How many passages hold each word (0 for words only removed passages held); live, not a copy."""
        return self._df

    def add(self, keys: list[int], texts: list[str]) -> None:
        """Index passages (a key already present is replaced)."""
        tokens = [tokenize(t) for t in texts]  # outside the lock: the slow part
        with self._lock:
            self._remove([k for k in keys if k in self._slot])
            for key, toks in zip(keys, tokens, strict=True):
                slot = len(self._keys)
                counts = Counter(toks)
                self._keys.append(int(key))
                self._slot[int(key)] = slot
                self._terms.append(list(counts))
                self._len.append(len(toks))
                self._alive.append(True)
                for term, tf in counts.items():
                    slots, tfs = self._postings.setdefault(term, ([], []))
                    slots.append(slot)
                    tfs.append(tf)
                    self._df[term] = self._df.get(term, 0) + 1
                    self._arrays.pop(term, None)
                self._n += 1
                self._total += len(toks)
            self._calc_idf()

    def remove(self, keys: list[int]) -> None:
        with self._lock:
            self._remove([k for k in keys if k in self._slot])
            self._calc_idf()

    def _remove(self, keys: list[int]) -> None:
        for key in keys:
            slot = self._slot.pop(key)
            self._alive[slot] = False
            self._n -= 1
            self._total -= self._len[slot]
            for term in self._terms[slot]:
                self._df[term] -= 1
                self._arrays.pop(term, None)
            self._terms[slot] = []

    def _calc_idf(self) -> None:
        # As rank-bm25: idf = ln((N - n + 0.5) / (n + 0.5)); negative ones floored at epsilon * mean idf.
        idf: dict[str, float] = {}
        total, negative = 0.0, []
        for term, df in self._df.items():
            if df == 0:
                continue
            value = math.log(self._n - df + 0.5) - math.log(df + 0.5)
            idf[term] = value
            total += value
            if value < 0:
                negative.append(term)
        eps = self.epsilon * (total / len(idf)) if idf else 0.0
        for term in negative:
            idf[term] = eps
        self._idf = idf

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        if term not in self._arrays:
            slots, tfs = self._postings[term]
            s, f = np.asarray(slots, dtype=np.int64), np.asarray(tfs, dtype=np.int64)
            alive = np.asarray(self._alive, dtype=bool)[s]
            self._arrays[term] = (s[alive], f[alive])
        return self._arrays[term]

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        q = tokenize(query)
        with self._lock:
            if not q or self._n == 0:
                return []
            avgdl = self._total / self._n
            doc_len = np.asarray(self._len, dtype=np.int64)
            scores = np.zeros(len(self._keys))
            for term in q:
                idf = self._idf.get(term) or 0
                if not idf:
                    continue
                slots, tf = self._posting(term)
                dl = doc_len[slots]
                scores[slots] += idf * (tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / avgdl)))
            hit = np.flatnonzero(scores > 0)
            order = hit[np.lexsort((hit, -scores[hit]))][:k]
            return [(self._keys[i], float(scores[i])) for i in order]
