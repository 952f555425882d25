"""Tighter evidence: the sentences of the retrieved passages that matter, instead of whole chunks.

Each sentence is scored against the question (embedding cosine plus the share of question words
it holds); the best `max_sentences` across all passages are kept, and each passage is cut to the
window from its first to its last kept sentence, widened by `neighbours` sentences either side.
A passage with no kept sentence is dropped. The cut passages keep their document offsets, so a
citation still points at the exact place in the document. This module does not retrieve or generate.
"""

from __future__ import annotations

from dataclasses import replace

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


def tighten(
    question: str, hits: list[Hit], embedder: Embedder | None, max_sentences: int, neighbours: int = 1
) -> list[Hit]:
    """`hits` cut to the windows around their best sentences (see the module doc), in the same order.

    With `max_sentences` 0 the hits are returned unchanged.
    """
    if max_sentences <= 0 or not hits:
        return hits
    spans = [sentence_spans(h.chunk.text) or [(0, len(h.chunk.text))] for h in hits]
    flat = [(i, j) for i, ss in enumerate(spans) for j in range(len(ss))]
    texts = [hits[i].chunk.text[slice(*spans[i][j])] for i, j in flat]
    scores = sentence_scores(question, texts, embedder)
    keep = {flat[k] for k in np.argsort(-scores, kind="stable")[:max_sentences]}
    out = []
    for i, h in enumerate(hits):
        chosen = [j for j in range(len(spans[i])) if (i, j) in keep]
        if not chosen:
            continue
        first = max(chosen[0] - neighbours, 0)
        last = min(chosen[-1] + neighbours, len(spans[i]) - 1)
        s, e = spans[i][first][0], spans[i][last][1]
        c = h.chunk
        chunk = replace(c, text=c.text[s:e], start=c.start + s, end=c.start + e)
        out.append(replace(h, chunk=chunk))
    return out
