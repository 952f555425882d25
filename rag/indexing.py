"""Build, check and update the saved index: corpus files -> documents -> chunks -> vectors.

The one place that knows which files make up the index (the corpus folder plus user uploads)
and what a fresh manifest should say. A build hashes the files before it reads them, so a file
added or changed meanwhile leaves the saved index stale (rebuilt at the next start), never fresh
but missing it; it saves holding `index/.write.lock`, like the document library. Retrieval lives
in `rag.retrieval`.
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
    write_lock,
)
from rag.keywords import KeywordIndex
from rag.lexical import document_frequency
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
    """`"faiss"`, or `"milvus:<collection>"` (`"milvus:<database>/<collection>"` with RAG_MILVUS_DB_NAME):
    changing either makes the index stale."""
    if settings.vector_store == "milvus":
        db = f"{settings.milvus_db_name}/" if settings.milvus_db_name else ""
        return f"milvus:{db}{collection_name(settings, embedder.name)}"
    return "faiss"


def expected_manifest(settings: Settings, embedder: Embedder, corpus: str | None = None) -> dict:
    """What the manifest of an up-to-date index says (the fields that make an index stale).

    Args:
        corpus: the corpus hash to use; defaults to the hash of the files on disk now.
    """
    return {
        "store": store_label(settings, embedder),
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder.name,
        "embedding_dim": embedder.dim,
        "corpus_hash": corpus or corpus_hash(source_files(settings), settings.corpus_dir),
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
    """Load, chunk and embed every document, then save the index atomically, holding the write lock.

    Returns:
        The new index, already saved under `settings.index_dir`.

    Raises:
        DocumentError: the corpus folder is missing or holds no readable document.
        VectorStoreError, BadInputError: the configured Milvus cannot be reached or its URI is malformed.
    """
    store = make_store(settings, embedder.dim, embedder.name)  # fail early, before embedding
    t0 = time.perf_counter()
    # Hashed before reading: a file that changes from here on makes the saved index stale, so the
    # next start rebuilds it; hashed after, such a file would look indexed while it is not.
    corpus = corpus_hash(source_files(settings), settings.corpus_dir)
    docs = load_documents(settings)
    chunks = chunk_corpus(docs, settings.chunk_size, settings.chunk_overlap)
    log.info("embedding %d chunks from %d documents", len(chunks), len(docs))
    vectors = embedder.embed_documents([embedding_text(c) for c in chunks], progress=progress)
    expected = expected_manifest(settings, embedder, corpus)
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
    keywords = None
    if not store.keyword:  # the store's engine does not rank by keyword: we do, from a saved index
        keywords = KeywordIndex()
        keywords.add_chunks(chunks)
    doc_freq = document_frequency(d.body for d in docs)
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    data = IndexData(manifest, chunks, store, {d.doc_id: d for d in docs}, keywords, dict(doc_freq))
    # Only the save holds the lock: uploads go on during the (long) embedding, and one saved
    # meanwhile is left out of this index but kept in the uploads folder, which `reconcile()` follows.
    with write_lock(settings.index_dir):
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
