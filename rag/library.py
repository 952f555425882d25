"""The document library: list and read the indexed documents, add uploaded files, remove uploads.

Uploads go live in the running retriever and are saved with the index, so they survive a
restart. A failed upload changes nothing: no file is left behind and the index is untouched.
The uploads folder is the record of what was uploaded; the index follows it. A file is parsed
before any lock is taken; the change itself (file, live index, saved index) holds this
library's lock and a lock file beside the index (`index/.write.lock`), so two libraries, even in
two processes, never interleave their saves (`rag index` takes it too, to save). If the
process dies half-way, `reconcile()` (run at start) brings the index back in line with the folder.
Corpus documents are read-only here; this module does not build indexes from scratch
(`rag.indexing` does) and knows nothing about HTTP or the browser.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

from rag.chunking import chunk_document
from rag.errors import DocumentError, NotFoundError
from rag.index import IndexData, corpus_hash, fsync_path, save_index, write_lock
from rag.indexing import expected_manifest, source_files, uploads_dir
from rag.loaders import MAX_PARSE_SECONDS, SUPPORTED_SUFFIXES, check_content, corpus_files, load_untrusted
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from rag.types import Chunk, Document, DocumentInfo

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_ID_CHARS = 80
LOCK_WAIT_SECONDS = 120.0


def slugify(name: str) -> str:
    """A safe document id from a file name stem.

    `slugify("AI Plan (final) v2")` -> `"ai-plan-final-v2"`; `slugify("../../etc")` -> `"etc"`.
    """
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    return slug[:MAX_ID_CHARS].rstrip("-")


def _is_under(path: str, folder: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _write_durably(path: Path, data: bytes) -> None:
    """Write `path` through a hidden `.part` file, fsynced, then renamed into place: a reader (or a
    restart after a crash) sees the old state or the whole new file, never half of it."""
    partial = path.with_name(f".{path.name}.part")  # dot files are not read as documents
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    fsync_path(path.parent)


Loader = Callable[[Path, str], Document]


class DocumentLibrary:
    """Reads and changes the document set behind a live `HybridRetriever`.

    Every change holds one lock (and the index folder's lock file), so two uploads never
    interleave their index saves. Parsing an upload holds neither.
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        settings: Settings,
        max_bytes: int = MAX_UPLOAD_BYTES,
        *,
        loader: Loader | None = None,
        parse_timeout_s: float = MAX_PARSE_SECONDS,
    ) -> None:
        """
        Args:
            retriever: the live retriever whose index this library changes.
            settings: folders (corpus, uploads, index) and chunking.
            max_bytes: the upload size limit.
            loader: reads an uploaded file into a `Document`; defaults to `rag.loaders.load_untrusted`
                with `parse_timeout_s` (tests pass a fake).
            parse_timeout_s: how long parsing one upload may take.
        """
        self.retriever = retriever
        self.settings = settings
        self.max_bytes = max_bytes
        self.load: Loader = loader or (lambda path, doc_id: load_untrusted(path, doc_id, parse_timeout_s))
        self._lock = threading.Lock()

    @property
    def uploads(self) -> Path:
        return uploads_dir(self.settings)

    def is_uploaded(self, doc: Document) -> bool:
        return _is_under(doc.path, self.uploads)

    def _info(self, doc: Document, counts: dict[str, int]) -> DocumentInfo:
        return DocumentInfo(**doc.meta(), chunks=counts.get(doc.doc_id, 0), uploaded=self.is_uploaded(doc))

    def _counts(self) -> dict[str, int]:
        return self.retriever.chunks.counts()

    def list(self) -> list[DocumentInfo]:
        """Every indexed document, corpus first (by date, newest first), then uploads.

        Returns:
            One `DocumentInfo` per document.
        """
        counts = self._counts()
        infos = sorted(
            (self._info(d, counts) for d in self.retriever.documents.values()), key=lambda i: i.title.lower()
        )
        infos.sort(key=lambda i: i.date, reverse=True)  # ISO dates sort as text; sorts are stable
        infos.sort(key=lambda i: i.uploaded)
        return infos

    def get(self, doc_id: str) -> Document:
        """The document with its full body.

        Raises:
            NotFoundError: no document has that id.
        """
        doc = self.retriever.documents.get(doc_id)
        if doc is None:
            raise NotFoundError(f"There is no document with the id “{doc_id}”. The document list shows every id.")
        return doc

    def info(self, doc_id: str) -> DocumentInfo:
        """Metadata of one document (see `get` for errors)."""
        return self._info(self.get(doc_id), self._counts())

    def validate_upload(self, filename: str, size: int) -> tuple[str, str]:
        """Check an upload's name and size before reading it.

        Args:
            filename: the name the user's file had; only its stem and suffix are used.
            size: its size in bytes.

        Returns:
            `(doc_id, suffix)` for the stored file.

        Raises:
            DocumentError: unsupported type, empty or too large file, or a name with no usable characters.
        """
        name = Path(filename.replace("\\", "/")).name
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = "PDF, Word (.docx), HTML, Markdown or plain text"
            raise DocumentError(f"“{name}” is not a file type I can read. Upload a {kinds} file.")
        if size == 0:
            raise DocumentError(f"“{name}” is empty.")
        if size > self.max_bytes:
            raise DocumentError(
                f"“{name}” is {size / 1e6:.1f} MB; the limit is {self.max_bytes / 1e6:.0f} MB. "
                "Split it or upload a smaller file."
            )
        doc_id = slugify(Path(name).stem)
        if not doc_id:
            raise DocumentError(f"“{name}” needs a file name with letters or digits in it; rename it and try again.")
        return doc_id, suffix

    def _check_id_free(self, doc_id: str) -> None:
        existing = self.retriever.documents.get(doc_id)
        corpus = self.settings.corpus_dir
        in_corpus_dir = corpus.is_dir() and any(p.stem == doc_id for p in corpus.rglob(f"{doc_id}.*"))
        on_disk = self.uploads.is_dir() and any(p.stem == doc_id for p in self.uploads.glob(f"{doc_id}.*"))
        if (existing is not None and self.is_uploaded(existing)) or (existing is None and on_disk):
            raise DocumentError(
                f"A document called “{doc_id}” is already uploaded. Remove it first, or rename your file."
            )
        if existing is not None or in_corpus_dir:
            raise DocumentError(
                f"A corpus document already has the id “{doc_id}”. Rename your file and upload it again."
            )

    def add(self, filename: str, data: bytes) -> DocumentInfo:
        """Check, parse, chunk and index an uploaded file, then save it and the index.

        The file is checked and parsed in a temporary folder with no lock held (questions, and other
        uploads, go on meanwhile); only the change itself is locked. The file goes into the uploads
        folder first, then the index is saved; if indexing or saving fails, both are undone.

        Args:
            filename: the uploaded file's name (its suffix picks the parser; its stem becomes the id).
            data: the file's bytes.

        Returns:
            The new document's metadata.

        Raises:
            DocumentError: the file is rejected (type, size, content that does not match the
                extension, name clash, too slow to parse) or cannot be read.
            ServerBusyError: another process kept the index locked for too long.
        """
        doc_id, suffix = self.validate_upload(filename, len(data))
        name = Path(filename.replace("\\", "/")).name
        check_content(name, data)
        self._check_id_free(doc_id)  # refuse a clash before the (slow) parse
        with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
            staged = Path(tmp) / f"{doc_id}{suffix}"
            staged.write_bytes(data)
            doc = self.load(staged, doc_id)
        chunks = chunk_document(doc, self.settings.chunk_size, self.settings.chunk_overlap)
        if not chunks:
            raise DocumentError(f"“{filename}” holds no text passages to index.")
        if doc.title == doc_id.replace("-", " "):
            doc.title = Path(name).stem  # the user's own name reads better than a slug
            for c in chunks:
                c.title = doc.title

        with self._writing():
            self._check_id_free(doc_id)  # again: another upload may have taken the id during the parse
            final = self.uploads / f"{doc_id}{suffix}"
            doc.path = str(final)
            was_fresh = self._is_fresh()
            self.uploads.mkdir(parents=True, exist_ok=True)
            _write_durably(final, data)
            try:
                self._save(self.retriever.add_documents([doc], chunks), was_fresh)
            except BaseException:
                log.exception("upload of %s failed after parsing; undoing it", filename)
                final.unlink(missing_ok=True)
                if doc_id in self.retriever.documents:
                    self.retriever.remove_document(doc_id)
                raise
            log.info("added upload %s as %s (%d chunks)", filename, doc_id, len(chunks))
            return self._info(doc, {doc_id: len(chunks)})

    def remove(self, doc_id: str) -> None:
        """Remove an uploaded document from the index, save the index, then delete its file.

        In that order, a crash in between leaves the file, and `reconcile()` puts the document back:
        the removal did not happen, rather than half-happened.

        Raises:
            NotFoundError: no document has that id.
            DocumentError: the document is part of the corpus, which cannot be removed here.
            ServerBusyError: another process kept the index locked for too long.
        """
        with self._writing():
            doc = self.get(doc_id)
            if not self.is_uploaded(doc):
                raise DocumentError(
                    f"“{doc.title}” is part of the document corpus and cannot be removed; only uploaded documents can."
                )
            chunks: list[Chunk] = self.retriever.chunks.of_doc(doc_id)
            path = Path(doc.path)
            was_fresh = self._is_fresh()
            try:
                self._save(self.retriever.remove_document(doc_id), was_fresh, without=path)
            except BaseException:
                log.exception("removing %s failed; restoring it", doc_id)
                if doc_id not in self.retriever.documents:
                    self.retriever.add_documents([doc], chunks)
                raise
            path.unlink(missing_ok=True)
            fsync_path(path.parent)
            log.info("removed upload %s", doc_id)

    def reconcile(self) -> list[str]:
        """Bring the index in line with the uploads folder, which is the record of what was uploaded.

        After a crash mid-upload or mid-removal, or when another process saved an index without
        an upload in it (`rag index` running while a file was uploaded), the index and the folder
        can disagree: a file the index lacks is indexed, a document whose file is gone is dropped,
        and left-over partial files are deleted. A file that cannot be read is left alone and logged.

        Returns:
            One line per change made (empty when they agreed).

        Raises:
            ServerBusyError: another process kept the index locked for too long.
        """
        if not self.uploads.is_dir():
            return []
        with self._writing():
            for leftover in self.uploads.glob(".*.part"):
                leftover.unlink(missing_ok=True)
            was_fresh = self._is_fresh()
            files = {p.stem: p for p in corpus_files(self.uploads) if p.suffix.lower() in SUPPORTED_SUFFIXES}
            changes: list[str] = []
            for doc in [d for d in self.retriever.documents.values() if self.is_uploaded(d)]:
                if doc.doc_id not in files:
                    self.retriever.remove_document(doc.doc_id)
                    changes.append(f"dropped {doc.doc_id}: its file is no longer in the uploads folder")
            for doc_id, path in sorted(files.items()):
                if doc_id in self.retriever.documents:
                    continue
                try:
                    doc = self.load(path, doc_id)
                except DocumentError as e:
                    log.warning("cannot index the upload %s: %s", path.name, e)
                    continue
                chunks = chunk_document(doc, self.settings.chunk_size, self.settings.chunk_overlap)
                if chunks:
                    self.retriever.add_documents([doc], chunks)
                    changes.append(f"indexed {doc_id}: its file is in the uploads folder but was not in the index")
            if changes:
                for line in changes:
                    log.warning("uploads and index disagreed; %s", line)
                self._save(self.retriever.data, was_fresh)
            return changes

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """This library's lock, then the index folder's lock file (shared with other processes)."""
        with self._lock, write_lock(self.settings.index_dir, LOCK_WAIT_SECONDS):
            yield

    def _is_fresh(self) -> bool:
        """Whether the live index was built from exactly the files on disk now."""
        expected = expected_manifest(self.settings, self.retriever.embedder)["corpus_hash"]
        return self.retriever.data.manifest.get("corpus_hash") == expected

    def _save(self, data: IndexData, was_fresh: bool, without: Path | None = None) -> None:
        """Save the live index. If it matched the files on disk before this change, stamp it with the
        hash of the files after it (`without` a file about to be deleted), so a restart loads it
        rather than rebuilding. If it did not (a corpus file changed while the app ran), keep the
        old hash: the saved index stays stale and the next start rebuilds it with that file."""
        if was_fresh:
            files = [f for f in source_files(self.settings) if without is None or f.resolve() != without.resolve()]
            data.manifest["corpus_hash"] = corpus_hash(files, self.settings.corpus_dir)
        else:
            log.warning("the index was already out of date with the files on disk; it is saved marked stale")
        data.manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        save_index(self.settings.index_dir, data)
