"""The saved index: chunks and documents on disk with a manifest, vectors in a store.

A saved index is a build folder `index/builds/<id>/` holding `manifest.json`, `chunks.jsonl`,
`documents.jsonl`, the keyword index (`keywords/`, `rag.keywords`; none when the vector store ranks
by keyword itself) and what the vector store keeps there (`vectors.faiss` for FAISS; a Milvus
collection lives in Milvus and the manifest names it); the file `index/CURRENT` names the build
in use and is replaced atomically, so an interrupted build leaves the previous index usable.

A change made live (an upload or a removal, `Change`) is saved by appending, not by rewriting:
the new build folder hard-links every file of the one before and adds `deltas/<gen>.jsonl` (the
documents removed, then the documents and chunks added) and, for FAISS, `deltas/<gen>.npy` (the
added chunks' vectors); loading replays the deltas in order. A full write (`compact=True`, or
past `MAX_DELTAS`) folds them back into the base files.
Every file, the build folder and the pointer are fsynced before the next step; the manifest
records a sha256 per file, checked on load, so a damaged file is reported, never used. Writers
hold `index/.write.lock` (`write_lock`) while they save. This module does not chunk or embed;
`rag.indexing` drives a build, `rag.stores` holds vectors.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import IndexMissingError, IndexStaleError, ServerBusyError
from rag.stores.base import VectorIndex, chunk_keys
from rag.tables import CHUNK_COLUMNS, DOCUMENT_COLUMNS, ChunkTable, DocumentTable, chunk_table, document_table
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.keywords import KeywordIndex
    from rag.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 2: vectors keyed by chunk id (`rag.stores`), store named in the manifest; 3: keyword index saved; 4: deltas, column files
CHUNKER_VERSION = 1  # bump when chunking logic changes, so old indexes read as stale
WRITE_LOCK = ".write.lock"  # in the index folder; every writer of the saved index holds it
TMP_KEEP_SECONDS = 600.0  # a `.tmp-*` build younger than this may be another writer's, still going
HINT = "rebuild it with `python -m rag index` (or `make index`)"
DELTAS = "deltas"  # the folder of saved changes in a build
MAX_DELTAS = 64  # past this many, a save writes everything again (replaying them slows every start)


@dataclass
class Change:
    """One change made to a live index and not yet saved: documents removed (by id) and
    documents added with their chunks and the chunks' vectors, applied in that order."""

    removed: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None


@dataclass
class IndexData:
    """Everything retrieval needs: the chunks in memory, their vectors in a store keyed by chunk id.

    One store may serve several `IndexData` versions (an upload changes it in place), so ids the
    store returns are mapped to rows of this version's `chunks`, and ids it does not list are dropped.
    `keywords` is the saved keyword index, None when the store ranks by keyword or none was built;
    `doc_freq` how many documents hold each word (None: not counted yet). `saved_as` names the
    build folder this version was loaded from or saved to, and `changes` what was done to it since
    (the next save appends them to that build).
    """

    manifest: dict[str, Any]
    chunks: Sequence[Chunk]  # a `ChunkTable` once made (a list is turned into one)
    vectors: VectorIndex
    documents: Mapping[str, Document] = field(default_factory=dict)  # likewise a `DocumentTable`
    keywords: KeywordIndex | None = None
    doc_freq: dict[str, int] | None = None
    saved_as: str | None = None
    changes: list[Change] = field(default_factory=list)
    keys: np.ndarray | None = field(default=None, repr=False)  # chunk_key of each chunk, in order
    rows: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.chunks = chunk_table(self.chunks)
        self.documents = document_table(self.documents)
        if self.keys is None or len(self.keys) != len(self.chunks):
            self.keys = self.chunks.keys
        self.rows = dict(zip(self.keys.tolist(), range(len(self.chunks)), strict=True))

    def changed(self, change: Change) -> IndexData:
        """A new version with `change` applied to the chunks and documents (not to the stores,
        which the caller changes) and remembered for the next save. Reuses this version's chunk keys."""
        gone = set(change.removed)
        keys = self.keys if self.keys is not None else self.chunks.keys
        chunks, documents = self.chunks, self.documents  # tables since __post_init__
        if gone:
            keys = keys[~np.isin(keys, chunks.keys_of(gone))]
            chunks, documents = chunks.without(gone), documents.without(gone)
        if change.chunks:
            chunks = chunks.plus(change.chunks)
            keys = np.concatenate([keys, chunk_keys(change.chunks)])
        if change.documents:
            documents = documents.plus(change.documents)
        manifest = {**self.manifest, "chunk_count": len(chunks), "doc_count": len(documents)}
        return IndexData(
            manifest,
            chunks,
            self.vectors,
            documents,
            self.keywords,
            self.doc_freq,
            self.saved_as,
            [*self.changes, change],
            keys,
        )

    def to_rows(self, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """`[(chunk key, score)]` -> `[(row in chunks, score)]`, dropping keys this version does not hold."""
        return [(self.rows[i], s) for i, s in hits if i in self.rows]

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Dense search: `[(row in chunks, score), ...]`, best first."""
        return self.to_rows(self.vectors.search(query, k))


_DIGESTS: dict[tuple[str, int, int, int], bytes] = {}  # (path, inode, size, mtime_ns) -> sha256 of its bytes


def source_digest(path: Path) -> bytes:
    """sha256 of a source file's bytes, read once per process while its inode, size and mtime hold
    (an upload then hashes only the new file, not every document again)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = bytes.fromhex(file_sha256(path))
    return digest


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
        h.update(source_digest(f))
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


@contextlib.contextmanager
def write_lock(index_dir: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold `index_dir/.write.lock` (an exclusive `flock`, shared with other processes).

    Args:
        wait_s: give up after this many seconds; `None` waits as long as it takes.

    Raises:
        ServerBusyError: another writer kept the lock past `wait_s`.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / WRITE_LOCK, "a") as f:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise ServerBusyError(
                        "Another process is writing the index (a rebuild?); try again when it has finished."
                    ) from None
                if not told:
                    log.info("waiting for %s: another process is writing the index", index_dir / WRITE_LOCK)
                    told = True
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes the names in it, and renames, durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_files(folder: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """`{relative name: sha256}` of every file in a build folder but the manifest, which lists them.

    Args:
        known: hashes already known (of files just written, or linked from an earlier build), not recomputed.
    """
    known = known or {}
    out = {}
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if p.is_file() and p.name != "manifest.json":
            out[name] = known.get(name) or file_sha256(p)
    return out


def _build_started(name: str) -> str | None:
    """The sortable start stamp of a build folder name: `"20261130T161400-12-345"` -> `"20261130T161400"`."""
    stamp = name.split("-", 1)[0]
    return stamp if len(stamp) == 15 and stamp[8] == "T" and stamp.replace("T", "").isdigit() else None


def _drop_old_builds(index_dir: Path, keep: Path) -> None:
    """Delete builds that nobody can be using: finished builds started before `keep` (the build just
    made current) that `CURRENT` does not name, and `.tmp-*` builds untouched for `TMP_KEEP_SECONDS`
    (left by a crash). A newer build, or a fresh `.tmp-*`, may be another writer's, so it stays."""
    builds = keep.parent
    try:
        named = (index_dir / "CURRENT").read_text().strip()
    except OSError:
        named = keep.name
    ours = _build_started(keep.name) or ""
    for old in builds.iterdir():
        if old.name in (keep.name, named):
            continue
        if old.name.startswith(".tmp-"):
            try:
                idle = time.time() - old.stat().st_mtime
            except OSError:
                continue
            if idle < TMP_KEEP_SECONDS:
                continue
        else:
            started = _build_started(old.name)
            if started is None or started >= ours:
                continue
        shutil.rmtree(old, ignore_errors=True)


def save_index(index_dir: Path, data: IndexData, compact: bool = False) -> Path:
    """Write a new build folder, fsync it, point `CURRENT` at it atomically, then drop old builds.

    When `data` was loaded from (or saved to) the build `CURRENT` names and `changes` were made
    since, they are appended (`_append_files`); otherwise, or with `compact`, or past
    `MAX_DELTAS` saved changes, every file is written again. Call it holding `write_lock(index_dir)`;
    the manifest gains `files` (a sha256 per file). `data` is then `saved_as` the new build.

    Returns:
        The new build folder.
    """
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build = builds / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{build.name}"
    tmp.mkdir()
    try:
        current = (index_dir / "CURRENT").read_text().strip()
    except OSError:
        current = None
    appending = (
        not compact
        and data.changes
        and data.saved_as is not None
        and data.saved_as == current
        and len(data.manifest.get(DELTAS, [])) < MAX_DELTAS
    )
    known = _append_files(builds / current, tmp, data) if appending and current else _write_files(tmp, data)
    if data.keywords is not None:
        keywords = data.keywords.save(tmp)
        known.update(keywords.pop("files"))
        data.manifest["keywords"] = keywords
    else:
        data.manifest.pop("keywords", None)
    if data.doc_freq is not None:
        (tmp / "doc_freq.json").write_text(json.dumps(data.doc_freq, ensure_ascii=False), encoding="utf-8")
    data.manifest["files"] = build_files(tmp, known)
    (tmp / "manifest.json").write_text(json.dumps(data.manifest, indent=2))
    linked = set(known) if appending else set()
    for p in tmp.rglob("*"):  # files, and folders (the names in them); a linked file is durable already
        if str(p.relative_to(tmp)) not in linked:
            fsync_path(p)
    fsync_path(tmp)
    os.replace(tmp, build)
    fsync_path(builds)
    if data.keywords is not None:
        data.keywords.saved(build, data.manifest["files"])
    pointer = index_dir / ".CURRENT.tmp"
    with open(pointer, "w") as f:
        f.write(build.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    fsync_path(index_dir)
    data.saved_as, data.changes = build.name, []
    _drop_old_builds(index_dir, build)
    return build


def _write_files(tmp: Path, data: IndexData) -> dict[str, str]:
    """Write the vectors, chunks and documents of `data` in full into `tmp`; no hashes known."""
    data.manifest["vector_store"] = data.vectors.save(tmp)
    data.manifest.pop(DELTAS, None)
    chunk_table(data.chunks).save(tmp)
    document_table(data.documents).save(tmp)
    return {}


def _append_files(old: Path, tmp: Path, data: IndexData) -> dict[str, str]:
    """Hard-link the files of the build `old` into `tmp` (all but the keyword index and the word
    counts, which are saved after) and write `data.changes` as the next delta. Returns the hashes
    known without reading: the linked files' (from `old`'s manifest) and the delta's."""
    from rag.keywords import FOLDER as KEYWORDS_FOLDER

    old_files: dict[str, str] = json.loads((old / "manifest.json").read_text())["files"]
    known = {}
    for name, digest in old_files.items():
        if name.startswith(f"{KEYWORDS_FOLDER}/") or name == "doc_freq.json":
            continue
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(old / name, tmp / name)
        known[name] = digest
    deltas = list(data.manifest.get(DELTAS, []))
    gen = len(deltas) + 1
    (tmp / DELTAS).mkdir(exist_ok=True)
    records = tmp / DELTAS / f"{gen:06d}.jsonl"
    vectors: list[np.ndarray] = []
    removed: list[str] = []
    added = 0
    with open(records, "w", encoding="utf-8") as f:
        for change in data.changes:
            for doc_id in change.removed:
                f.write(json.dumps({"remove": doc_id}, ensure_ascii=False) + "\n")
            for d in change.documents:
                f.write(json.dumps({"document": asdict(d)}, ensure_ascii=False) + "\n")
            for c in change.chunks:
                f.write(json.dumps({"chunk": c.to_dict()}, ensure_ascii=False) + "\n")
            if change.vectors is not None and len(change.chunks):
                vectors.append(np.asarray(change.vectors, dtype=np.float32))
            removed += change.removed
            added += len(change.chunks)
    entry: dict[str, Any] = {"gen": gen, "removed": removed, "chunks": added, "records": f"{DELTAS}/{records.name}"}
    if data.manifest.get("vector_store", {}).get("kind", "faiss") == "faiss" and added:
        np.save(tmp / DELTAS / f"{gen:06d}.npy", np.concatenate(vectors))
        entry["vectors"] = f"{DELTAS}/{gen:06d}.npy"
    data.manifest[DELTAS] = [*deltas, entry]
    data.manifest["vector_store"] = {**data.manifest.get("vector_store", {}), "vectors": len(data.vectors)}
    return known


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (a saved file is never written again), or copy it where the file
    system has no hard links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def replay_deltas(
    build: Path, manifest: dict[str, Any], chunks: ChunkTable, docs: DocumentTable, vectors: VectorIndex | None
) -> tuple[ChunkTable, DocumentTable]:
    """Apply the build's saved changes, record by record, to `chunks`, `docs` and `vectors` (None:
    a store that keeps its own changes, as Milvus does); returns the chunks and documents after them."""
    for entry in manifest.get(DELTAS, []):
        delta = np.load(build / entry["vectors"]) if vectors is not None and "vectors" in entry else None
        pending: list[Chunk] = []  # added by the records read, not yet to `chunks` and the store
        used = 0  # rows of `delta` given to the store
        with open(build / entry["records"], encoding="utf-8") as f:
            for rec in map(json.loads, f):
                if "chunk" in rec:
                    pending.append(Chunk.from_dict(rec["chunk"]))
                    continue
                chunks, used = _flush(chunks, vectors, delta, pending, used)
                if "remove" in rec:
                    gone = {rec["remove"]}
                    if vectors is not None:
                        vectors.delete(chunks.keys_of(gone))
                    chunks, docs = chunks.without(gone), docs.without(gone)
                else:
                    docs = docs.plus([Document(**rec["document"])])
        chunks, _ = _flush(chunks, vectors, delta, pending, used)
    return chunks, docs


def _flush(
    chunks: ChunkTable, vectors: VectorIndex | None, delta: np.ndarray | None, pending: list[Chunk], used: int
) -> tuple[ChunkTable, int]:
    """`chunks` with the `pending` ones added, and their vectors (the next rows of `delta`) added to the store."""
    if not pending:
        return chunks, used
    if vectors is not None and delta is not None:
        vectors.add(chunk_keys(pending), delta[used : used + len(pending)], pending)
        used += len(pending)
    chunks = chunks.plus(pending)
    pending.clear()
    return chunks, used


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


def verify_files(build: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists against its recorded sha256.

    A manifest written before checksums were recorded has no `files`; it is loaded unchecked, with
    a warning, until the next save writes them.

    Raises:
        IndexMissingError: a file is missing, truncated or changed since it was saved.
    """
    files = manifest.get("files")
    if files is None:
        log.warning("the index in %s has no checksums (saved by an older version); it is not checked", build)
        return
    for name, want in files.items():
        path = build / name
        try:
            got = file_sha256(path)
        except OSError:
            raise IndexMissingError(f"the index in {build} is damaged ({name} is missing): {HINT}") from None
        if got != want:
            raise IndexMissingError(
                f"the index in {build} is damaged ({name} does not match its checksum; truncated or corrupted?): {HINT}"
            )


def load_index(index_dir: Path, expected: dict[str, Any] | None = None, settings: Settings | None = None) -> IndexData:
    """Load the current build, checking its manifest against `expected` when given.

    Args:
        settings: how to reach a Milvus store (URI, token); default `Settings()`.

    Raises:
        IndexMissingError: no index, or its files are unreadable, or one fails its checksum.
        IndexStaleError: the manifest does not match `expected`, or a Milvus collection is out of step.
        VectorStoreError: the Milvus server cannot be reached.
    """
    from rag.keywords import FOLDER as KEYWORDS_FOLDER
    from rag.keywords import KeywordIndex
    from rag.stores.factory import load_store

    build, manifest = read_manifest(index_dir)
    if expected:
        check_manifest(manifest, expected)
    verify_files(build, manifest)
    try:
        if (build / CHUNK_COLUMNS).is_file() and (build / DOCUMENT_COLUMNS).is_file():
            chunks, documents = ChunkTable.open(build), DocumentTable.open(build)
        else:  # saved before the columns: read whole
            with open(build / "chunks.jsonl", encoding="utf-8") as f:
                chunks = ChunkTable.of(Chunk.from_dict(json.loads(line)) for line in f)
            with open(build / "documents.jsonl", encoding="utf-8") as f:
                documents = DocumentTable.of(Document(**json.loads(line)) for line in f)
        vectors = load_store(build, manifest, settings)
        file_store = manifest.get("vector_store", {"kind": "faiss"}).get("kind", "faiss") == "faiss"
        chunks, documents = replay_deltas(build, manifest, chunks, documents, vectors if file_store else None)
        keywords = KeywordIndex.open(build / KEYWORDS_FOLDER, manifest.get("files")) if "keywords" in manifest else None
        doc_freq_file = build / "doc_freq.json"
        doc_freq = json.loads(doc_freq_file.read_text(encoding="utf-8")) if doc_freq_file.is_file() else None
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise IndexMissingError(
            f"the index in {build} is damaged ({e}): rebuild it with `python -m rag index`"
        ) from None
    if len(chunks) != len(vectors) or (keywords is not None and len(keywords) != len(chunks)):
        raise IndexMissingError(f"the index in {build} is inconsistent: rebuild it with `python -m rag index`")
    return IndexData(manifest, chunks, vectors, documents, keywords, doc_freq, saved_as=build.name)
