"""Vectors of real text from the shipped MiniLM for the scale benchmark.

Two kinds. `minilm-text` (`text_windows`, `text_vectors`): every passage is a run of 6 to 24
consecutive words of the corpus's documents (a window at every word, every length: about 1.13M
runs, so near-duplicates are common, a hard case for IVF), and its vector is MiniLM's
own embedding of that text, computed in blocks of 50,000 cached under the cache folder (resumable:
`python bench/minilm_vectors.py --embed 1000000`: 1 h 43 min for 1M on 2 cores).

`minilm-sentence-mean`, the earlier and cheaper kind, composes vectors for longer passages:

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
TEXT_LABEL = "minilm-text"
WINDOW_WORDS = (6, 24)  # shortest and longest run of words in a `minilm-text` passage
BLOCK = 50_000  # passages per cached block of `text_vectors`


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


def corpus_words() -> list[str]:
    """The words of the corpus's documents (title and body), one stream in document-id order."""
    from rag.loaders import load_corpus
    from rag.settings import Settings

    docs = sorted(load_corpus(Settings().corpus_dir), key=lambda d: d.doc_id)
    return [w for d in docs for w in f"{d.title}. {d.body}".split()]


def text_windows(n: int, seed: int = 7, words: list[str] | None = None) -> list[str]:
    """`n` runs (at distinct places) of 6 to 24 consecutive corpus words, in a seeded order that does not depend
    on `n` (the first 100,000 of the 1M are the 100k corpus). `words`: `corpus_words()` when None."""
    words = corpus_words() if words is None else words
    lo, hi = WINDOW_WORDS
    starts = np.arange(len(words))
    pairs = [(s, k) for k in range(lo, hi + 1) for s in starts[: len(words) - k + 1]]
    if n > len(pairs):
        raise ValueError(f"the corpus has {len(pairs):,} distinct windows, fewer than {n:,}")
    order = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [" ".join(words[pairs[i][0] : pairs[i][0] + pairs[i][1]]) for i in order]


def text_vectors(n: int, seed: int = 7) -> np.ndarray:
    """MiniLM's vectors of `text_windows(n, seed)`, embedded in blocks of `BLOCK` that are cached
    (keyed by the corpus text and the block), so an interrupted run resumes at its last block."""
    words = corpus_words()
    texts = text_windows(-(-n // BLOCK) * BLOCK, seed, words)  # whole blocks, so a bigger n reuses them
    key = hashlib.sha256(" ".join(words).encode()).hexdigest()[:12]
    folder = cache_dir() / f"minilm-text-{key}-w{WINDOW_WORDS[0]}-{WINDOW_WORDS[1]}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    blocks, model = [], None
    for b, start in enumerate(range(0, n, BLOCK)):
        path = folder / f"block-{b:04d}.npy"
        part = texts[start : min(start + BLOCK, n)]
        if path.is_file() and len(have := np.load(path, mmap_mode="r")) >= len(part):
            blocks.append(np.asarray(have[: len(part)]))
            continue
        model = model or embedder()
        print(f"block {b + 1} of {-(-n // BLOCK)}: {BLOCK:,} passages", flush=True)
        vecs = model.embed_documents(texts[start : start + BLOCK], progress=True).astype(np.float32)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
        blocks.append(vecs[: len(part)])
    return np.concatenate(blocks) if blocks else np.zeros((0, 384), np.float32)


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
    import argparse

    ap = argparse.ArgumentParser(description="MiniLM vectors of real text for bench/scale.py")
    ap.add_argument("--embed", type=int, metavar="N", help="embed (or finish embedding) N minilm-text passages")
    args = ap.parse_args()
    if args.embed:
        v = text_vectors(args.embed)
        print(json.dumps({"passages": len(v), "folder": str(cache_dir())}))
    else:
        print(json.dumps(composition_check()))
