"""Retrieval sweep on the dev split: chunk size x retrieval mode x k, with the real embedder.

Decides the defaults recorded in docs/decisions/0001-chunking-and-retrieval.md. Builds one
index per chunk size under .cache/ (never index/), scores retrieval only (no answer model),
and prints a Markdown table. Usage: `python bench/retrieval_sweep.py [--split dev]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.embedding import SentenceTransformerEmbedder  # noqa: E402
from rag.evaluation.harness import evaluate_item  # noqa: E402
from rag.evaluation.qaset import load_qaset, select_items  # noqa: E402
from rag.evaluation.scoring import summarise  # noqa: E402
from rag.generation import NoGenerator  # noqa: E402
from rag.indexing import build_index  # noqa: E402
from rag.pipeline import RagPipeline  # noqa: E402
from rag.retrieval import HybridRetriever  # noqa: E402
from rag.settings import Settings  # noqa: E402

KEYS = ["hit_at_1", "hit_at_5", "recall_at_5", "mrr", "quote_recall_at_5"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev")
    ap.add_argument("--sizes", default="500,900,1400")
    a = ap.parse_args()
    items = select_items(load_qaset(ROOT / "evals/qa.jsonl", ROOT / "corpus"), a.split)
    emb = SentenceTransformerEmbedder()
    print(f"{len(items)} {a.split} items\n")
    print("| chunk size | chunks | mode | k | " + " | ".join(KEYS) + " |")
    print("|---" * (4 + len(KEYS)) + "|")
    for size in [int(x) for x in a.sizes.split(",")]:
        s = Settings(
            corpus_dir=ROOT / "corpus",
            index_dir=ROOT / f".cache/sweep-index-{size}",
            chunk_size=size,
            chunk_overlap=min(120, size // 5),
        )
        t0 = time.perf_counter()
        data = build_index(s, emb, progress=False)
        build_s = time.perf_counter() - t0
        for mode in ("dense", "lexical", "hybrid"):
            retriever = HybridRetriever(data, emb, s.candidates, s.rrf_k, s.dedup_threshold, mode)
            pipe = RagPipeline(retriever, NoGenerator(), None, top_k=5)  # type: ignore[arg-type]
            bodies = {d: doc.body for d, doc in data.documents.items()}
            summary = summarise([evaluate_item(pipe, it, bodies, retrieval_only=True) for it in items])
            cells = " | ".join(f"{summary[k]:.3f}" for k in KEYS)
            print(f"| {size} | {len(data.chunks)} | {mode} | 5 | {cells} |", flush=True)
        print(f"<!-- build {size}: {build_s:.1f}s -->", flush=True)


if __name__ == "__main__":
    main()
