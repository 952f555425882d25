"""The saved index: chunks and documents on disk with a manifest, vectors in a store.

A saved index is a build folder `index/builds/<id>/` holding `manifest.json`, `chunks.jsonl`,
`documents.jsonl` and what the vector store keeps there (`vectors.faiss` for FAISS; a Milvus
collection lives in Milvus and the manifest names it); the file `index/CURRENT` names the build
in use and is replaced atomically, so an interrupted build leaves the previous index usable.
This module does not chunk or embed; `rag.indexing` drives a build, `rag.stores` holds vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import IndexMissingError, IndexStaleError
from rag.stores.base import VectorIndex, chunk_key
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.settings import Settings

FORMAT_VERSION = 2  # 2: vectors keyed by chunk id (`rag.stores`), store named in the manifest
CHUNKER_VERSION = 1  # bump when chunking logic changes, so old indexes read as stale


@dataclass
class IndexData:
    """Everything retrieval needs: the chunks in memory, their vectors in a store keyed by chunk id.

    One store may serve several `IndexData` versions (an upload changes it in place), so ids the
    store returns are mapped to rows of this version's `chunks`, and ids it does not list are dropped.
    """

    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: VectorIndex
    documents: dict[str, Document] = field(default_factory=dict)
    rows: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows = {chunk_key(c.chunk_id): i for i, c in enumerate(self.chunks)}

    def to_rows(self, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """`[(chunk key, score)]` -> `[(row in chunks, score)]`, dropping keys this version does not hold."""
        return [(self.rows[i], s) for i, s in hits if i in self.rows]

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Dense search: `[(row in chunks, score), ...]`, best first."""
        return self.to_rows(self.vectors.search(query, k))


def corpus_hash(files: list[Path], root: Path) -> str:
    """sha256 over the relative names and bytes of the files an index is built from."""
    h = hashlib.sha256()
    for f in sorted(files):
        try:
            rel = f.relative_to(root)
        except ValueError:
            rel = Path(f.name)
        h.update(str(rel).encode())
        h.update(b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def chunking_hash(chunk_size: int, chunk_overlap: int) -> str:
    key = json.dumps({"v": CHUNKER_VERSION, "size": chunk_size, "overlap": chunk_overlap})
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("faiss-cpu", "pymilvus", "sentence-transformers", "torch", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def make_manifest(
    *,
    embedder_name: str,
    dim: int,
    chunks: list[Chunk],
    docs: list[Document],
    corpus: str,
    chunking: str,
    build_s: float,
    store: str = "faiss",
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder_name,
        "embedding_dim": dim,
        "chunk_count": len(chunks),
        "doc_count": len(docs),
        "corpus_hash": corpus,
        "chunking_hash": chunking,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(build_s, 2),
        "versions": library_versions(),
        "store": store,
    }


def save_index(index_dir: Path, data: IndexData) -> Path:
    """Write a new build folder, then point `CURRENT` at it atomically and drop older builds.

    Returns:
        The new build folder.
    """
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build = builds / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{build.name}"
    tmp.mkdir()
    data.manifest["vector_store"] = data.vectors.save(tmp)
    with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in data.chunks:
            f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
    with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
        for d in data.documents.values():
            f.write(json.dumps(asdict(d), ensure_ascii=False) + "\n")
    (tmp / "manifest.json").write_text(json.dumps(data.manifest, indent=2))
    os.replace(tmp, build)
    pointer = index_dir / ".CURRENT.tmp"
    pointer.write_text(build.name + "\n")
    os.replace(pointer, index_dir / "CURRENT")
    for old in builds.iterdir():
        if old.name != build.name:
            shutil.rmtree(old, ignore_errors=True)
    return build


def read_manifest(index_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The build folder in use and its manifest.

    Raises:
        IndexMissingError: there is no usable index in `index_dir`.
    """
    hint = "build it with `python -m rag index` (or `make index`)"
    current = index_dir / "CURRENT"
    if not current.is_file():
        raise IndexMissingError(f"no index in {index_dir}/: {hint}")
    build = index_dir / "builds" / current.read_text().strip()
    try:
        manifest = json.loads((build / "manifest.json").read_text())
    except (OSError, ValueError):
        raise IndexMissingError(f"the index in {build} is unreadable: {hint}") from None
    return build, manifest


def check_manifest(manifest: dict[str, Any], expected: dict[str, Any]) -> None:
    """Compare a manifest with what the current corpus and settings would build.

    Raises:
        IndexStaleError: naming what changed and how to rebuild.
    """
    labels = {
        "format_version": "index format",
        "embedding_model": "embedding model",
        "embedding_dim": "embedding dimension",
        "corpus_hash": "corpus",
        "chunking_hash": "chunking settings",
        "store": "vector store",
    }
    changed = [labels[k] for k, v in expected.items() if k in labels and manifest.get(k) != v]
    if changed:
        raise IndexStaleError(
            f"the index is out of date ({', '.join(changed)} changed since it was built): "
            "rebuild it with `python -m rag index` (or `make index`)"
        )


def load_index(index_dir: Path, expected: dict[str, Any] | None = None, settings: Settings | None = None) -> IndexData:
    """Load the current build, checking its manifest against `expected` when given.

    Args:
        settings: how to reach a Milvus store (URI, token); default `Settings()`.

    Raises:
        IndexMissingError: no index, or its files are unreadable.
        IndexStaleError: the manifest does not match `expected`, or a Milvus collection is out of step.
        VectorStoreError: the Milvus server cannot be reached.
    """
    from rag.stores.factory import load_store

    build, manifest = read_manifest(index_dir)
    if expected:
        check_manifest(manifest, expected)
    try:
        with open(build / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk.from_dict(json.loads(line)) for line in f]
        with open(build / "documents.jsonl", encoding="utf-8") as f:
            docs = [Document(**json.loads(line)) for line in f]
        vectors = load_store(build, manifest, settings)
    except (OSError, ValueError, RuntimeError) as e:
        raise IndexMissingError(
            f"the index in {build} is damaged ({e}): rebuild it with `python -m rag index`"
        ) from None
    if len(chunks) != len(vectors):
        raise IndexMissingError(f"the index in {build} is inconsistent: rebuild it with `python -m rag index`")
    return IndexData(manifest=manifest, chunks=chunks, vectors=vectors, documents={d.doc_id: d for d in docs})
