"""Milvus as the vector store: Milvus Lite for a local path, a server or cluster for a URI.

Where the engine has BM25 (Milvus 2.5+, Milvus Lite) the chunk text, tokenised by
`rag.lexical.tokenize` so both stores rank the same words, goes into a BM25 function and the
keyword side of retrieval runs in the engine too; on an engine without it (Milvus 2.3) the
collection holds vectors only and retrieval keeps its own BM25. Reads that must see a write
that just happened use strong consistency. Connection details come from `rag.stores.factory`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStaleError, VectorStoreError
from rag.lexical import tokenize
from rag.stores.base import VectorIndex
from rag.types import Chunk

FIELDS = ("id", "doc_id", "lex", "dense")
BATCH = 1000  # rows per insert: Milvus Lite took 90 s for one 5000-row insert here, 0.3 s for 1000
STRONG = {"consistency_level": "Strong"}


def _bm25_version(client) -> bool:
    """Whether the engine has BM25 functions: Milvus >= 2.5. Milvus Lite does not answer the
    version call but has them."""
    from rag.stores.factory import quiet_pymilvus

    try:
        with quiet_pymilvus():  # it logs the unanswered call as an error
            version = client.get_server_version()
    except Exception:
        return True
    parts = [int(p) for p in version.lstrip("v").split(".")[:2] if p.isdigit()]
    return tuple(parts) >= (2, 5)


class MilvusIndex(VectorIndex):
    """One collection: `id` (chunk key), `doc_id`, `lex` (tokens), `dense`, and `sparse` (BM25)."""

    kind = "milvus"

    def __init__(self, client, collection: str, dim: int, uri: str, index_type: str = "FLAT") -> None:
        self.client = client
        self.collection = collection
        self.dim = dim
        self.uri = uri
        self.index_type = index_type
        self.engine_bm25 = _bm25_version(client)
        self.keyword = False
        if client.has_collection(collection):
            self.keyword = self._has_sparse()

    def _fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.client.describe_collection(self.collection)["fields"]}

    def _has_sparse(self) -> bool:
        return "sparse" in self._fields()

    def check(self, chunk_count: int) -> None:
        """Check the collection exists, holds vectors of our dimension, and one row per chunk.

        Raises:
            IndexStaleError: naming what differs and the command that fixes it.
        """
        fix = "rebuild it with `python -m rag index` (or `make index`)"
        if not self.client.has_collection(self.collection):
            raise IndexStaleError(f"the Milvus collection “{self.collection}” at {self.uri} is missing: {fix}")
        fields = self._fields()
        dim = int(fields.get("dense", {}).get("params", {}).get("dim", -1))
        if dim != self.dim:
            raise IndexStaleError(
                f"the Milvus collection “{self.collection}” holds {dim}-dimensional vectors but the embedding "
                f"model gives {self.dim}: {fix}, or set RAG_MILVUS_COLLECTION to another collection"
            )
        n = self.count()
        if n != chunk_count:
            raise IndexStaleError(
                f"the Milvus collection “{self.collection}” holds {n} passages but the index lists {chunk_count}: {fix}"
            )

    def build(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        if c.has_collection(self.collection):
            if not set(FIELDS) <= set(self._fields()):
                raise VectorStoreError(
                    f"the Milvus collection “{self.collection}” at {self.uri} was not made by this app; "
                    "set RAG_MILVUS_COLLECTION to a new name rather than overwrite it"
                )
            c.drop_collection(self.collection)
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        lex = {"enable_analyzer": True, "analyzer_params": {"tokenizer": "whitespace"}} if self.engine_bm25 else {}
        schema.add_field("lex", DataType.VARCHAR, max_length=65535, **lex)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        index = c.prepare_index_params()
        index.add_index("dense", index_type=self.index_type, metric_type="IP")
        if self.engine_bm25:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function("bm25", FunctionType.BM25, input_field_names=["lex"], output_field_names=["sparse"])
            )
            # k1 and b as `rag.lexical.BM25Index` uses them
            index.add_index(
                "sparse", "SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.5, "bm25_b": 0.75}
            )
        c.create_collection(self.collection, schema=schema, index_params=index, **STRONG)
        self.keyword = self.engine_bm25
        self.add(ids, vectors, chunks)

    def add(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None:
        from rag.chunking import embedding_text

        v = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        for start in range(0, len(v), BATCH):
            rows = [
                {
                    "id": int(ids[i]),
                    "doc_id": chunks[i].doc_id,
                    "lex": " ".join(tokenize(embedding_text(chunks[i])))[:65000],
                    "dense": v[i].tolist(),
                }
                for i in range(start, min(start + BATCH, len(v)))
            ]
            self.client.insert(self.collection, rows)

    def delete(self, ids: list[int]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def delete_document(self, doc_id: str) -> None:
        self.client.delete(self.collection, filter=f"doc_id == {json.dumps(doc_id)}")

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        q = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        res = self.client.search(
            self.collection, [q], anns_field="dense", limit=k, search_params={"metric_type": "IP"}, **STRONG
        )
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def keyword_search(self, text: str, k: int) -> list[tuple[int, float]]:
        """BM25 in the engine. Lite's scores differ in sign and scale from a server's: use the order."""
        tokens = " ".join(tokenize(text))
        if not tokens or not self.keyword:
            return []
        res = self.client.search(
            self.collection, [tokens], anns_field="sparse", limit=k, search_params={"metric_type": "BM25"}, **STRONG
        )
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def hybrid_search(self, query: np.ndarray, text: str, k: int, rrf_k: int = 60) -> list[tuple[int, float]]:
        """Dense and BM25 fused by the engine's reciprocal-rank ranker: `[(id, rrf score)]`."""
        from pymilvus import AnnSearchRequest, RRFRanker

        q = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        reqs = [AnnSearchRequest([q], "dense", {"metric_type": "IP"}, k)]
        tokens = " ".join(tokenize(text))
        if self.keyword and tokens:
            reqs.append(AnnSearchRequest([tokens], "sparse", {"metric_type": "BM25"}, k))
        res = self.client.hybrid_search(self.collection, reqs, RRFRanker(rrf_k), limit=k, **STRONG)
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"], **STRONG)
        return int(res[0]["count(*)"])

    def save(self, folder: Path) -> dict[str, Any]:
        return {"kind": self.kind, "collection": self.collection, "index": self.index_type, "keyword": self.keyword}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "collection": self.collection, "uri": self.uri, "index": self.index_type}

    def close(self) -> None:
        logging.getLogger(__name__).debug("closing Milvus client for %s", self.uri)
        self.client.close()
