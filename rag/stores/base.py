"""The vector-store seam: one base with the verbs every backend has, and the stable chunk ids.

A store holds one unit vector per chunk under a stable int64 id (`chunk_key(chunk.chunk_id)`),
so a search answers in ids that stay valid while documents come and go, and several readers
can share one store. It does not know about documents, files or the manifest; `rag.index` does.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rag.types import Chunk


def chunk_key(chunk_id: str) -> int:
    """A stable positive int64 id for a chunk: the first 63 bits of sha256 of its `chunk_id`.

    `chunk_key("doc#0001")` is the same on every machine and run, and fits Milvus' INT64 key.
    """
    return int.from_bytes(hashlib.sha256(chunk_id.encode()).digest()[:8], "big") >> 1


def chunk_keys(chunks: list[Chunk]) -> np.ndarray:
    return np.fromiter((chunk_key(c.chunk_id) for c in chunks), dtype=np.int64, count=len(chunks))


class VectorIndex(ABC):
    """Nearest-neighbour search over unit vectors by inner product, keyed by chunk id.

    `build` replaces the contents; `add` and `delete` change them in place; `search` returns
    `[(id, score), ...]` best first. A store whose engine also ranks by keyword (Milvus' BM25)
    sets `keyword = True` and answers `keyword_search` the same way.
    """

    kind: ClassVar[str]
    keyword: bool = False

    @abstractmethod
    def build(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None:
        """Replace everything with these rows (`chunks` give the text for engine-side keywords)."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk]) -> None: ...

    @abstractmethod
    def delete(self, ids: list[int]) -> None: ...

    @abstractmethod
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def save(self, folder: Path) -> dict[str, Any]:
        """Persist into a build folder; returns what the manifest records about this store."""

    def keyword_search(self, text: str, k: int) -> list[tuple[int, float]]:
        raise NotImplementedError(f"the {self.kind} store has no keyword search")

    def describe(self) -> dict[str, Any]:
        """What `/healthz` and the Documents tab show: the store and how it searches."""
        return {"store": self.kind, "keyword_search": "engine BM25" if self.keyword else "in-process BM25"}

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections; the store is unusable afterwards."""

    def __len__(self) -> int:
        return self.count()
