"""Build, check and update the saved index: corpus files -> documents -> chunks -> vectors.

The one place that knows which files make up the index (the corpus folder plus user uploads)
and what a fresh manifest should say. Retrieval lives in `rag.retrieval`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rag.chunking import chunk_corpus, embedding_text
from rag.embedding import Embedder
from rag.errors import IndexMissingError, IndexStaleError
from rag.index import (
    FORMAT_VERSION,
    IndexData,
    chunking_hash,
    corpus_hash,
    load_index,
    make_manifest,
    save_index,
)
from rag.loaders import corpus_files, load_corpus
from rag.settings import Settings
from rag.stores.base import chunk_keys
from rag.stores.factory import collection_name, make_store
from rag.types import Document

log = logging.getLogger(__name__)


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def source_files(settings: Settings) -> list[Path]:
    files = corpus_files(settings.corpus_dir) if settings.corpus_dir.is_dir() else []
    up = uploads_dir(settings)
    return files + (corpus_files(up) if up.is_dir() else [])


def store_label(settings: Settings, embedder: Embedder) -> str:
    """`"faiss"`, or `"milvus:<collection>"`: changing either makes the index stale."""
    if settings.vector_store == "milvus":
        return f"milvus:{collection_name(settings, embedder.name)}"
    return "faiss"


def expected_manifest(settings: Settings, embedder: Embedder) -> dict:
    """What the manifest of an up-to-date index says (the fields that make an index stale)."""
    return {
        "store": store_label(settings, embedder),
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder.name,
        "embedding_dim": embedder.dim,
        "corpus_hash": corpus_hash(source_files(settings), settings.corpus_dir),
        "chunking_hash": chunking_hash(settings.chunk_size, settings.chunk_overlap),
    }


def load_documents(settings: Settings) -> list[Document]:
    docs = load_corpus(settings.corpus_dir)
    up = uploads_dir(settings)
    if up.is_dir() and any(up.iterdir()):
        ids = {d.doc_id for d in docs}
        for d in load_corpus(up):
            if d.doc_id in ids:
                log.warning("skipping upload %s: a corpus document has the same id", d.path)
                continue
            docs.append(d)
    return docs


def build_index(settings: Settings, embedder: Embedder, progress: bool = True) -> IndexData:
    """Load, chunk and embed every document, then save the index atomically.

    Returns:
        The new index, already saved under `settings.index_dir`.

    Raises:
        DocumentError: the corpus folder is missing or holds no readable document.
        VectorStoreError, BadInputError: the configured Milvus cannot be reached or its URI is malformed.
    """
    store = make_store(settings, embedder.dim, embedder.name)  # fail early, before embedding
    t0 = time.perf_counter()
    docs = load_documents(settings)
    chunks = chunk_corpus(docs, settings.chunk_size, settings.chunk_overlap)
    log.info("embedding %d chunks from %d documents", len(chunks), len(docs))
    vectors = embedder.embed_documents([embedding_text(c) for c in chunks], progress=progress)
    expected = expected_manifest(settings, embedder)
    manifest = make_manifest(
        embedder_name=embedder.name,
        dim=embedder.dim,
        chunks=chunks,
        docs=docs,
        corpus=expected["corpus_hash"],
        chunking=expected["chunking_hash"],
        build_s=time.perf_counter() - t0,
        store=expected["store"],
    )
    store.build(chunk_keys(chunks), vectors, chunks)
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    data = IndexData(manifest, chunks, store, {d.doc_id: d for d in docs})
    save_index(settings.index_dir, data)
    return data


def open_index(settings: Settings, embedder: Embedder, rebuild: bool = False) -> IndexData:
    """Load the index; with `rebuild`, build it first when it is missing or stale.

    Raises:
        IndexMissingError, IndexStaleError: without `rebuild`, naming the command that fixes it.
    """
    expected = expected_manifest(settings, embedder)
    try:
        return load_index(settings.index_dir, expected, settings)
    except (IndexMissingError, IndexStaleError) as e:
        if not rebuild:
            raise
        log.warning("%s; rebuilding now", str(e).split(":")[0])
        return build_index(settings, embedder)
