"""The one sentence ranker: the passages' sentences scored against the question (embedding cosine
plus the share of the question's words each holds), closest first. The decision's evidence
excerpt, the key passage and the fitted signals all read this ranking. It does not retrieve or
generate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.embedding import Embedder
from rag.lexical import tokenize
from rag.text import sentence_spans
from rag.types import Hit


def sentence_scores(question: str, texts: list[str], embedder: Embedder | None) -> np.ndarray:
    """0.5 * cosine(question, sentence) + 0.5 * share of the question's words in the sentence."""
    want = set(tokenize(question))
    lex = np.array([len(want & set(tokenize(t))) / max(len(want), 1) for t in texts], dtype=np.float32)
    if embedder is None or not texts:
        return lex
    cos = embedder.embed_documents(texts) @ embedder.embed_query(question)
    return 0.5 * np.clip(cos, 0.0, 1.0) + 0.5 * lex


@dataclass
class Quote:
    """A passage sentence that best answers a question: its hit and its span in the chunk text."""

    hit: int
    start: int
    end: int
    score: float

    def text(self, hits: list[Hit]) -> str:
        return hits[self.hit].chunk.text[self.start : self.end]


def ranked_sentences(question: str, hits: list[Hit], embedder: Embedder | None) -> list[Quote]:
    """The passages' sentences, closest to the question first: 0.5 * cosine + 0.5 * share of question words.

    Sentences of fewer than three words are left out. Empty when there are no passages.
    """
    cands: list[tuple[int, int, int, str]] = []
    for i, h in enumerate(hits):
        for s, e in sentence_spans(h.chunk.text):
            text = h.chunk.text[s:e].strip()
            if len(tokenize(text)) >= 3:
                cands.append((i, s, e, text))
    if not cands:
        return []
    score = sentence_scores(question, [t for *_, t in cands], embedder)
    order = np.argsort(-score, kind="stable")
    return [Quote(cands[b][0], cands[b][1], cands[b][2], float(score[b])) for b in order]
