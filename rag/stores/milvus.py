"""Milvus as the vector store: Milvus Lite for a local path, a server or cluster for a URI.

Each passage is one row holding its vector, its text (so a client of the collection can read the
passages without our chunks file) and its words for BM25. Where the engine has BM25 (Milvus 2.5+,
Milvus Lite) the words, tokenised by `rag.lexical.tokenize` so both stores rank the same words, feed
a BM25 function and the keyword side of retrieval runs in the engine too; on an engine without it
(Milvus 2.3) retrieval keeps its own BM25. The dense index follows `rag.stores.milvus_plan`, and
every search passes that index's parameters. On a server the app's collection name is an alias, so
a rebuild never leaves readers without a collection. Connection details come from `rag.stores.factory`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexStaleError, RagError, VectorStoreError
from rag.lexical import tokenize
from rag.stores.base import VectorIndex
from rag.stores.factory import error_reason, quiet_pymilvus
from rag.stores.milvus_plan import IndexPlan, fallback, plan_index
from rag.types import Chunk

log = logging.getLogger(__name__)

FIELDS = ("id", "doc_id", "lex", "dense")  # a collection holding these was made by this app
PASSAGE_FIELDS = ("chunk_id", "doc_id", "title", "text")
VARCHAR_MAX = 65_535  # bytes: Milvus' largest VARCHAR; a VARCHAR stores its actual length, not this
BATCH = 1000  # rows per insert: Milvus Lite took 90 s for one 5000-row insert here, 0.3 s for 1000
STRONG = {"consistency_level": "Strong"}


def fit_utf8(text: str, limit: int = VARCHAR_MAX) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (Milvus counts VARCHAR lengths in bytes), never
    inside a character: `fit_utf8("naïve", 3)` -> `"na"` (the ï is two bytes)."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _unimplemented(e: Exception) -> bool:
    """Whether the engine lacks this call: Milvus Lite answers alias calls with gRPC UNIMPLEMENTED."""
    code = getattr(e, "code", None)
    try:
        return callable(code) and getattr(code(), "name", "") == "UNIMPLEMENTED"
    except Exception:
        return False


def _alias_target(client, name: str) -> tuple[bool, str | None]:
    """(whether the engine has aliases, the collection `name` is an alias of, or None if it is not one)."""
    try:
        with quiet_pymilvus():  # it logs an unknown alias as an error
            info = client.describe_alias(name)
    except Exception as e:
        return not _unimplemented(e), None
    return True, (info or {}).get("collection_name") or None


def _bm25_version(client) -> bool:
    """Whether the engine has BM25 functions: Milvus >= 2.5. Milvus Lite does not answer the
    version call but has them."""
    try:
        with quiet_pymilvus():  # it logs the unanswered call as an error
            version = client.get_server_version()
    except Exception:
        return True
    parts = [int(p) for p in version.lstrip("v").split(".")[:2] if p.isdigit()]
    return tuple(parts) >= (2, 5)


def _refuses_index_type(reason: str) -> bool:
    """An engine's answer to an index type it cannot build (Lite: "invalid index type: HNSW, local mode
    only support FLAT IVF_FLAT AUTOINDEX"), as against a failure that a fallback would not mend."""
    low = reason.lower()
    return "index type" in low or "not support" in low


class MilvusIndex(VectorIndex):
    """One collection read and written through `collection`: `id` (chunk key), `doc_id`, `chunk_id`,
    `title`, `text`, `lex` (tokens), `dense`, and `sparse` (BM25).

    On an engine with aliases (a Milvus server or cluster) `collection` is an alias: `build` fills a
    new collection `<name>__<UTC stamp>_<random>` (`target`), moves the alias onto it, then drops the
    one it replaced. Milvus Lite has no aliases (nor renames): there `build` replaces the collection
    in place, which nobody can observe because one process holds a Lite file.
    """

    kind = "milvus"

    def __init__(
        self, client, collection: str, dim: int, uri: str, requested: str = "auto", info: dict | None = None
    ) -> None:
        """Args:
        requested: `RAG_MILVUS_INDEX`, used by the next `build`.
        info: what the manifest recorded (`save()`) for a built collection; None for a new store.
        """
        info = info or {}
        self.client = client
        self.collection = collection
        self.target = info.get("target", collection)
        self.dim = dim
        self.uri = uri
        self.requested = requested
        self.plan = IndexPlan.from_record(info)
        self.engine_bm25 = _bm25_version(client)
        self.keyword = False
        self.text = False
        if self._exists():
            fields = self._fields()
            self.keyword, self.text = "sparse" in fields, "text" in fields

    def _exists(self) -> bool:
        """Whether `collection` names a collection, itself or as an alias (Milvus resolves aliases in
        `has_collection`; the alias lookup makes that explicit rather than assumed)."""
        return self.client.has_collection(self.collection) or _alias_target(self.client, self.collection)[1] is not None

    @property
    def index_type(self) -> str:
        return self.plan.index_type

    def _fields(self, collection: str | None = None) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.client.describe_collection(collection or self.collection)["fields"]}

    def check(self, chunk_count: int) -> None:
        """Check the collection exists, holds vectors of our dimension, and one row per chunk.

        Raises:
            IndexStaleError: naming what differs and the command that fixes it.
        """
        fix = "rebuild it with `python -m rag index` (or `make index`)"
        if not self._exists():
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
        """Replace the contents: into a new collection behind the alias on a server, in place on Milvus Lite.

        Raises:
            VectorStoreError: a collection of that name was not made by this app, or the new one
                could not be made or filled (the live one is then left as it was).
        """
        c, name = self.client, self.collection
        has_aliases, old = _alias_target(c, name)
        existing = old is None and c.has_collection(name)  # a real collection under our name
        if existing and not set(FIELDS) <= set(self._fields()):
            raise VectorStoreError(
                f"the Milvus collection “{name}” at {self.uri} was not made by this app; "
                "set RAG_MILVUS_COLLECTION to a new name rather than overwrite it"
            )
        plan = plan_index(len(ids), self.requested)
        if not has_aliases:
            log.info("the Milvus engine at %s has no aliases (Milvus Lite): rebuilding %s in place", self.uri, name)
            if existing:
                c.drop_collection(name)
            self.plan, self.target = self._create(name, plan, len(ids)), name
            self._insert(name, ids, vectors, chunks)
            return
        new = f"{name[:200]}__{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}_{secrets.token_hex(3)}"
        try:
            plan = self._create(new, plan, len(ids))
            self._insert(new, ids, vectors, chunks)
            if old is not None:
                c.alter_alias(new, name)
            else:
                if existing:  # made before the app used aliases: an alias cannot share its name
                    log.warning(
                        "replacing the collection %s by an alias of that name (searches fail until it exists)", name
                    )
                    c.drop_collection(name)
                c.create_alias(new, name)
        except Exception as e:
            with suppress(Exception), quiet_pymilvus():
                c.drop_collection(new)
            if isinstance(e, RagError):
                raise
            raise VectorStoreError(
                f"building the Milvus collection “{new}” at {self.uri} failed ({error_reason(e)}); "
                f"“{name}” is unchanged: check the server's logs and run `python -m rag index` again"
            ) from None
        self.plan, self.target = plan, new
        log.info("the alias %s now names %s (%s)", name, new, plan.index_type)
        if old is not None and old != new:
            try:
                c.drop_collection(old)
            except Exception as e:  # the swap is done; a leftover costs space, not answers
                log.warning("could not drop the replaced collection %s (%s): drop it by hand", old, error_reason(e))

    def _create(self, collection: str, plan: IndexPlan, n: int) -> IndexPlan:
        """Make an empty collection with its indexes and load it; returns the dense index it got."""
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=1024)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
        lex = {"enable_analyzer": True, "analyzer_params": {"tokenizer": "whitespace"}} if self.engine_bm25 else {}
        schema.add_field("lex", DataType.VARCHAR, max_length=VARCHAR_MAX, **lex)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        if self.engine_bm25:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function("bm25", FunctionType.BM25, input_field_names=["lex"], output_field_names=["sparse"])
            )
        c.create_collection(collection, schema=schema, **STRONG)
        if self.engine_bm25:
            sparse = c.prepare_index_params()
            # k1 and b as `rag.lexical.BM25Index` uses them
            sparse.add_index(
                "sparse", "SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.5, "bm25_b": 0.75}
            )
            c.create_index(collection, sparse)
        plan = self._dense_index(collection, plan, n)
        c.load_collection(collection)
        self.keyword, self.text = self.engine_bm25, True
        return plan

    def _dense_index(self, collection: str, plan: IndexPlan, n: int) -> IndexPlan:
        """Create the planned dense index, falling back (logged, and recorded in the plan) while the
        engine refuses the type."""
        while True:
            index = self.client.prepare_index_params()
            index.add_index("dense", index_type=plan.index_type, metric_type="IP", params=plan.params)
            try:
                with quiet_pymilvus():
                    self.client.create_index(collection, index)
                return plan
            except Exception as e:
                why = error_reason(e)
                nxt = fallback(plan, n, why) if _refuses_index_type(why) else None
                if nxt is None:
                    raise
                log.warning("Milvus at %s: %s", self.uri, nxt.reason)
                plan = nxt

    def _insert(self, collection: str, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None:
        from rag.chunking import embedding_text

        v = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        for start in range(0, len(v), BATCH):
            rows = []
            for i in range(start, min(start + BATCH, len(v))):
                ch = chunks[i]
                row = {
                    "id": int(ids[i]),
                    "doc_id": fit_utf8(ch.doc_id, 512),
                    "lex": fit_utf8(" ".join(tokenize(embedding_text(ch)))),
                    "dense": v[i].tolist(),
                }
                if self.text:  # a collection made before passages were kept has no text fields
                    row |= {"chunk_id": fit_utf8(ch.chunk_id, 1024), "title": fit_utf8(ch.title, 1024)}
                    row["text"] = fit_utf8(ch.text)  # passages are at most RAG_CHUNK_SIZE (8000) chars: 32 KB
                rows.append(row)
            self.client.insert(collection, rows)

    def add(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None:
        self._insert(self.collection, ids, vectors, chunks)

    def delete(self, ids: list[int]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def delete_document(self, doc_id: str) -> None:
        self.client.delete(self.collection, filter=f"doc_id == {json.dumps(doc_id)}")

    def passages(self, ids: list[int]) -> dict[int, dict[str, str]]:
        """The stored passages: `{id: {"chunk_id", "doc_id", "title", "text"}}`; unknown ids are left out,
        and a collection made before passages were kept gives `{}`."""
        if not ids or not self.text:
            return {}
        rows = self.client.get(self.collection, ids=[int(i) for i in ids], output_fields=list(PASSAGE_FIELDS))
        return {int(r["id"]): {f: r[f] for f in PASSAGE_FIELDS} for r in rows}

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        q = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        res = self.client.search(
            self.collection, [q], anns_field="dense", limit=k, search_params=self.plan.search_params(k), **STRONG
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
        reqs = [AnnSearchRequest([q], "dense", self.plan.search_params(k), k)]
        tokens = " ".join(tokenize(text))
        if self.keyword and tokens:
            reqs.append(AnnSearchRequest([tokens], "sparse", {"metric_type": "BM25"}, k))
        res = self.client.hybrid_search(self.collection, reqs, RRFRanker(rrf_k), limit=k, **STRONG)
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"], **STRONG)
        return int(res[0]["count(*)"])

    def save(self, folder: Path) -> dict[str, Any]:
        """What the manifest records: the name searched, the collection behind it, and the index plan."""
        return {
            "kind": self.kind,
            "collection": self.collection,
            "target": self.target,
            "alias": self.target != self.collection,
            "keyword": self.keyword,
            "text": self.text,
            **self.plan.record(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "collection": self.collection,
            "target": self.target,
            "uri": self.uri,
            "index": self.plan.index_type,
            "search_params": self.plan.search_params(0)["params"],
        }

    def close(self) -> None:
        log.debug("closing Milvus client for %s", self.uri)
        self.client.close()
