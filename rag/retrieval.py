"""Hybrid retrieval: dense (the vector store) and lexical (BM25) candidates fused by reciprocal rank.

The lexical side is BM25 over each passage with its document title and headings (so "the Cohere
MoU" finds a passage that never names Cohere).

Near-duplicate passages (the same paragraph quoted in two press releases) are dropped after
fusion, so the model sees distinct evidence. This module does not generate or prompt.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rag.chunking import embedding_text
from rag.embedding import Embedder
from rag.index import Change, IndexData
from rag.keywords import KeywordIndex
from rag.lexical import document_frequency, tokenize
from rag.stores.base import chunk_keys
from rag.tables import ChunkTable
from rag.types import Chunk, Document, Hit, RetrievalResult


def rrf(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds 1/(k + rank) for every item it ranks (rank from 1).

    `rrf([[7, 3], [3]], k=60)` -> `[(3, 1/62 + 1/61), (7, 1/61)]`.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def jaccard(a: set[str], b: set[str]) -> float:
    """`jaccard({"a", "b"}, {"b", "c"})` -> `1/3`."""
    return len(a & b) / len(a | b) if a or b else 1.0


class KeywordsByRow:
    """A keyword search keyed by chunk, answering in rows of one `IndexData` (what `retrieve` reads)."""

    def __init__(self, data: IndexData, search: Callable[[str, int], list[tuple[int, float]]]) -> None:
        self.data = data
        self._search = search

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.data.to_rows(self._search(query, k))


class HybridRetriever:
    """Searches an `IndexData` with an `Embedder`; documents can be added and removed live."""

    def __init__(
        self,
        data: IndexData,
        embedder: Embedder,
        candidates: int = 30,
        rrf_k: int = 60,
        dedup_threshold: float = 0.85,
        mode: str = "hybrid",
    ) -> None:
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        self.mode = mode
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.dedup_threshold = dedup_threshold
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dense-search")
        # The lexical side: the store's engine when it ranks by keyword (Milvus' BM25), else the
        # saved keyword index, which an upload extends; built here only for an index saved without one.
        self._keywords = data.keywords
        if self._keywords is None and not data.vectors.keyword:
            self._keywords = KeywordIndex()
            self._keywords.add_chunks(data.chunks)
        # How many documents (not passages, whose text repeats their title) hold each word: saved
        # with the index; counted here only for an index saved without them.
        self._doc_freq: Counter[str] = (
            Counter(data.doc_freq)
            if data.doc_freq is not None
            else document_frequency(d.body for d in data.documents.values())
        )
        self._set(data)

    def _set(self, data: IndexData) -> None:
        self.data = data
        search = data.vectors.keyword_search if self._keywords is None else self._keywords.search
        self._bm25 = KeywordsByRow(data, search)

    def _version(self, change: Change) -> IndexData:
        """The next `IndexData`: this one with `change` applied, over the same stores (holds the lock)."""
        data = self.data.changed(change)
        data.keywords = self._keywords
        data.doc_freq = {w: n for w, n in self._doc_freq.items() if n > 0}
        return data

    @property
    def chunks(self) -> ChunkTable:
        return self.data.chunks

    @property
    def documents(self) -> dict[str, Document]:
        return self.data.documents

    def retrieve(self, query: str, k: int = 5, also: tuple[str, ...] = ()) -> RetrievalResult:
        """The `k` best distinct passages for `query`, fused from dense and lexical rankings.

        Each query in `also` adds its own rankings to the same fusion (a follow-up searches with its
        rewrite and with the user's own words beside the previous question); the best dense score
        is the best over all of them, the ranks reported on each hit are `query`'s.
        """
        with self._lock:
            data, bm25 = self.data, self._bm25
        rankings: list[list[int]] = []
        best_dense = -1.0
        dense_rank: dict[int, int] = {}
        lex_rank: dict[int, int] = {}
        queries = (query, *also)
        # The dense search runs on the pool while the keyword search runs here: FAISS and numpy
        # release the GIL, so at 1M passages a query waits for the slower of the two, not both.
        pending = [self._pool.submit(data.search, self.embedder.embed_query(q), self.candidates) for q in queries]
        lexical_all = [bm25.search(q, self.candidates) if self.mode != "dense" else [] for q in queries]
        for i, (future, lexical) in enumerate(zip(pending, lexical_all, strict=True)):
            dense = future.result()
            best_dense = max(best_dense, dense[0][1] if dense else -1.0)
            if self.mode == "lexical":
                dense = []
            if i == 0:
                dense_rank = {row: r for r, (row, _) in enumerate(dense, 1)}
                lex_rank = {row: r for r, (row, _) in enumerate(lexical, 1)}
            rankings += [[row for row, _ in ranking] for ranking in (dense, lexical) if ranking]
        fused = rrf(rankings, self.rrf_k)

        hits: list[Hit] = []
        kept_tokens: list[set[str]] = []
        for row, score in fused:
            chunk = data.chunks[row]
            toks = set(tokenize(chunk.text))
            if any(jaccard(toks, t) >= self.dedup_threshold for t in kept_tokens):
                continue
            kept_tokens.append(toks)
            hits.append(Hit(chunk, score, dense_rank.get(row), lex_rank.get(row)))
            if len(hits) == k:
                break
        return RetrievalResult(hits, best_dense)

    def rare_terms(self, query: str, max_df: int) -> list[str]:
        """The query's words that occur in at least one and at most `max_df` documents: names and terms
        specific enough that their presence means the corpus is about them ("Humphrey", "Caddy")."""
        with self._lock:
            return [w for w in dict.fromkeys(tokenize(query)) if 0 < self._doc_freq.get(w, 0) <= max_df]

    def document_frequency(self, word: str) -> int:
        """How many documents hold `word` (a token as `tokenize` makes it)."""
        with self._lock:
            return self._doc_freq.get(word, 0)

    def _count_words(self, old: Document | None, new: Document | None) -> None:
        """Replace a document's words in the document counts (holds the lock)."""
        if old is not None:
            self._doc_freq.subtract(set(tokenize(old.body)))
        if new is not None:
            self._doc_freq.update(set(tokenize(new.body)))

    def add_documents(self, docs: list[Document], chunks: list[Chunk]) -> IndexData:
        """Append documents and their chunks (embedding them) to the store; returns the new index.

        The store changes in place; searches still holding the previous `IndexData` ignore the new ids.
        """
        vecs = self.embedder.embed_documents([embedding_text(c) for c in chunks])
        with self._lock:
            old = self.data
            if len(chunks):
                old.vectors.add(chunk_keys(chunks), vecs, chunks)
                if self._keywords is not None:
                    self._keywords.add_chunks(chunks)
            for d in docs:
                self._count_words(old.documents.get(d.doc_id), d)
            self._set(self._version(Change(documents=list(docs), chunks=list(chunks), vectors=vecs)))
            return self.data

    def remove_document(self, doc_id: str) -> IndexData:
        """Drop a document and its chunks from the store (by their chunk ids); returns the new index."""
        with self._lock:
            old = self.data
            self._count_words(old.documents.get(doc_id), None)
            # The new version maps ids first, so searches skip the gone ones before the stores drop them.
            self._set(self._version(Change(removed=[doc_id])))
            gone = old.chunks.keys_of({doc_id})
            old.vectors.delete(gone)
            if self._keywords is not None:
                self._keywords.remove(gone)
            return self.data
