"""Vectors of real text from the shipped MiniLM for the scale benchmark, at a cost this machine can pay.

The benchmark's passages are corpus sentences recombined (`scale.real_texts`). Embedding 1M of
them with MiniLM would take about 12 hours on these 2 cores (the corpus build embeds 23 passages a
second), so each unique corpus sentence is embedded once (a few thousand, cached under the cache
folder) and a passage's vector is the normalised sum of its sentences' vectors weighted by their
word counts: the token mean MiniLM pools over, taken per sentence rather than over the whole
passage. `composition_check` measures how close that is to embedding the passage itself. Queries
are the reference set's questions embedded by MiniLM, so recall is measured on real questions.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LABEL = "minilm-sentence-mean"  # what a row's `vectors` field says these are


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uk-ai-rag" / "scale"


def corpus_sentences() -> list[str]:
    """The corpus passages' sentences, in order, repeats kept (as `scale.real_texts` draws them)."""
    from rag.chunking import chunk_corpus
    from rag.loaders import load_corpus
    from rag.settings import Settings
    from rag.text import split_sentences

    return [s for c in chunk_corpus(load_corpus(Settings().corpus_dir)) for s in split_sentences(c.text)]


def draws(n: int, n_sentences: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Which sentences make each of `n` passages: `scale.real_texts`'s draws (same seed, same order)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_sentences, size=n * 7)
    sizes = rng.integers(3, 8, size=n)
    return picks.reshape(n, 7), sizes


def embedder():
    from rag.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def sentence_vectors(sentences: list[str]) -> np.ndarray:
    """MiniLM vectors of `sentences` (one row each), embedding each distinct sentence once, cached."""
    unique = list(dict.fromkeys(sentences))
    key = hashlib.sha256("\n".join(unique).encode()).hexdigest()[:16]
    path = cache_dir() / f"minilm-sentences-{key}.npy"
    if path.is_file():
        table = np.load(path)
    else:
        table = embedder().embed_documents(unique, progress=True).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, table)
    row = {s: i for i, s in enumerate(unique)}
    return table[[row[s] for s in sentences]]


def passage_vectors(n: int, seed: int = 5) -> np.ndarray:
    """Unit vectors of `scale.real_texts(n, seed)`: word-count-weighted sums of their sentences' vectors."""
    sentences = corpus_sentences()
    sv = sentence_vectors(sentences)
    words = np.array([len(s.split()) for s in sentences], dtype=np.float32)
    picks, sizes = draws(n, len(sentences), seed)
    out = np.zeros((n, sv.shape[1]), dtype=np.float32)
    for j in range(7):
        used = sizes > j
        rows = picks[used, j]
        out[used] += words[rows, None] * sv[rows]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def question_vectors() -> np.ndarray:
    with open(ROOT / "evals" / "qa.jsonl", encoding="utf-8") as f:
        qs = [json.loads(line)["question"] for line in f]
    e = embedder()
    return np.stack([e.embed_query(q) for q in qs]).astype(np.float32)


def composition_check(k: int = 1000, seed: int = 5) -> dict[str, float]:
    """How close the composed vectors are to MiniLM's own, on `k` passages embedded both ways: the
    cosine between the two, and for the reference questions the overlap of the top 10 among the `k`
    searched by one and by the other."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from scale import real_texts

    direct = embedder().embed_documents(real_texts(k, seed), progress=True).astype(np.float32)
    composed = passage_vectors(k, seed)
    cos = np.sum(direct * composed, axis=1)
    q = question_vectors()
    top_d = np.argsort(-(q @ direct.T), axis=1)[:, :10]
    top_c = np.argsort(-(q @ composed.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_d, top_c, strict=True)])
    return {
        "passages": k,
        "cosine_mean": round(float(cos.mean()), 4),
        "cosine_p5": round(float(np.percentile(cos, 5)), 4),
        "question_top10_overlap": round(float(overlap), 4),
    }


if __name__ == "__main__":
    print(json.dumps(composition_check()))
