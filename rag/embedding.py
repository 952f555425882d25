"""The `Embedder` seam and its real implementation over the packaged all-MiniLM-L6-v2.

Vectors are L2-normalised float32, so inner product is cosine similarity. Nothing here
downloads: the model is loaded from the folder its PyPI package installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rag.packaged import EMBEDDING_NAME, embedding_model_dir


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; `name` and `dim` go into the index manifest."""

    name: str
    dim: int

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """sentence-transformers over a local model folder (the packaged MiniLM by default)."""

    def __init__(self, model_dir: Path | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = model_dir or embedding_model_dir()
        self.name = EMBEDDING_NAME if model_dir is None else Path(model_dir).name
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vecs = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class CachingEmbedder:
    """Wraps an embedder and remembers every vector by its text, so a second build of the same
    corpus, and the same question on another store, are not embedded again. Same `name` and `dim`."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._documents: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self.embedded = 0  # passages the wrapped embedder was given
        self.reused = 0  # passages answered from memory

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._documents]
        if new:
            self._documents.update(zip(new, self.inner.embed_documents(new, progress=progress), strict=True))
        self.embedded += len(new)
        self.reused += len(texts) - len(new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._documents[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._queries:
            self._queries[text] = self.inner.embed_query(text)
        return self._queries[text].copy()  # a caller may normalise in place
