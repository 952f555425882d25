"""The saved chunks and documents, read on demand: opening an index reads two small column files,
not every JSON line (at 1M passages, 1.4 GB of JSON took most of a 45 s start and 3 GB of memory).

A full save writes `chunks.jsonl` and `documents.jsonl` as before, plus `chunks.columns.npz` (each
line's byte offset, its chunk key and its document) and `documents.columns.npz` (each line's offset
and document id). `ChunkTable` and `DocumentTable` answer from those, parsing a line only when its
record is asked for (a search reads about 30). Changes made after the save (uploads, removals, and
the saved deltas replayed at start) live in memory beside the files. A build saved without the
columns is read whole, as before. This module neither searches nor decides what is saved when.
"""

from __future__ import annotations

import json
import mmap
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, overload

import numpy as np

from rag.stores.base import chunk_key, chunk_keys
from rag.types import Chunk, Document

CHUNK_COLUMNS = "chunks.columns.npz"
DOCUMENT_COLUMNS = "documents.columns.npz"


class JsonLines:
    """The records of a JSON-lines file by line number, parsed on demand from a memory map."""

    def __init__(self, path: Path, offsets: np.ndarray) -> None:
        self.path = path
        self.offsets = offsets  # n + 1 byte offsets: line i is [offsets[i], offsets[i + 1])
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if offsets[-1] else b""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def read(self, i: int) -> dict[str, Any]:
        return json.loads(self._map[int(self.offsets[i]) : int(self.offsets[i + 1])])


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> np.ndarray:
    """Write `records` one per line; returns the byte offsets of the lines (and of the end)."""
    offsets = [0]
    with open(path, "wb") as f:
        for r in records:
            line = (json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            offsets.append(offsets[-1] + len(line))
    return np.asarray(offsets, dtype=np.int64)


class ChunkTable(Sequence[Chunk]):
    """The chunks of one index version, in order: `rows` of a saved file, then `extra` in memory.

    Every column a change needs (chunk keys, documents) is held as arrays, so removing a
    document's chunks or counting them per document parses nothing.
    """

    def __init__(
        self,
        lines: JsonLines | None,
        rows: np.ndarray,
        file_keys: np.ndarray,
        file_docs: np.ndarray,
        doc_names: np.ndarray,
        extra: list[Chunk] | None = None,
    ) -> None:
        self._lines = lines
        self._rows = rows  # positions in the file, in this version's order
        self._file_keys = file_keys  # per file line
        self._file_docs = file_docs  # per file line: index into doc_names
        self._doc_names = doc_names
        self._extra = list(extra or [])

    @classmethod
    def of(cls, chunks: Iterable[Chunk]) -> ChunkTable:
        """A table of chunks held in memory (a fresh build, or a build saved without columns)."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(None, empty, empty, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=object), list(chunks))

    @classmethod
    def open(cls, folder: Path) -> ChunkTable:
        with np.load(folder / CHUNK_COLUMNS, allow_pickle=False) as z:
            offsets, keys, docs, names = z["offsets"], z["keys"], z["docs"], z["doc_names"]
        lines = JsonLines(folder / "chunks.jsonl", offsets)
        return cls(lines, np.arange(len(lines), dtype=np.int64), keys, docs, names.astype(object))

    def save(self, folder: Path) -> None:
        """Write `chunks.jsonl` and its columns into `folder`."""
        offsets = write_jsonl(folder / "chunks.jsonl", (c.to_dict() for c in self))
        doc_ids = self.doc_ids()
        names, codes = np.unique(doc_ids.astype(str), return_inverse=True) if len(doc_ids) else (doc_ids, doc_ids)
        np.savez(
            folder / CHUNK_COLUMNS,
            offsets=offsets,
            keys=self.keys,
            docs=np.asarray(codes, dtype=np.int32),
            doc_names=np.asarray(names, dtype=str),
        )

    def __len__(self) -> int:
        return len(self._rows) + len(self._extra)

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...
    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._rows)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i < n and self._lines is not None:
            return Chunk.from_dict(self._lines.read(int(self._rows[i])))
        return self._extra[i - n]

    def __iter__(self) -> Iterator[Chunk]:
        return (self[i] for i in range(len(self)))

    @property
    def keys(self) -> np.ndarray:
        """`chunk_key` of every chunk, in order."""
        return np.concatenate([self._file_keys[self._rows], chunk_keys(self._extra)])

    def doc_ids(self) -> np.ndarray:
        """The document id of every chunk, in order (an object array)."""
        extra = np.array([c.doc_id for c in self._extra], dtype=object)
        return np.concatenate([self._doc_names[self._file_docs[self._rows]], extra])

    def _file_mask(self, doc_ids: set[str]) -> np.ndarray:
        """Which of `_rows` belong to `doc_ids` (compared as codes, not strings)."""
        names = self._doc_names.tolist()
        codes = [i for i, name in enumerate(names) if name in doc_ids]
        return np.isin(self._file_docs[self._rows], codes) if codes else np.zeros(len(self._rows), dtype=bool)

    def counts(self) -> dict[str, int]:
        """How many chunks each document has."""
        codes, n = np.unique(self._file_docs[self._rows], return_counts=True)
        out = Counter({str(self._doc_names[c]): int(k) for c, k in zip(codes, n, strict=True)})
        out.update(c.doc_id for c in self._extra)
        return dict(out)

    def of_doc(self, doc_id: str) -> list[Chunk]:
        """A document's chunks, in order."""
        mine = np.flatnonzero(self._file_mask({doc_id}))
        return [self[int(i)] for i in mine] + [c for c in self._extra if c.doc_id == doc_id]

    def keys_of(self, doc_ids: set[str]) -> list[int]:
        """The chunk keys of these documents' chunks."""
        rows = self._rows[self._file_mask(doc_ids)]
        return [int(k) for k in self._file_keys[rows]] + [
            chunk_key(c.chunk_id) for c in self._extra if c.doc_id in doc_ids
        ]

    def without(self, doc_ids: set[str]) -> ChunkTable:
        """This table without the chunks of `doc_ids`."""
        if not doc_ids:
            return self
        rows = self._rows[~self._file_mask(doc_ids)]
        extra = [c for c in self._extra if c.doc_id not in doc_ids]
        return ChunkTable(self._lines, rows, self._file_keys, self._file_docs, self._doc_names, extra)

    def plus(self, chunks: list[Chunk]) -> ChunkTable:
        """This table with `chunks` added at the end."""
        return ChunkTable(
            self._lines, self._rows, self._file_keys, self._file_docs, self._doc_names, self._extra + list(chunks)
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkTable | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class DocumentTable(Mapping[str, Document]):
    """The documents of one index version by id: lines of a saved file, minus `removed`, plus `extra`."""

    def __init__(
        self,
        lines: JsonLines | None,
        line_of: dict[str, int],
        extra: dict[str, Document] | None = None,
        removed: frozenset[str] = frozenset(),
    ) -> None:
        self._lines = lines
        self._line_of = line_of
        self._extra = dict(extra or {})
        self._removed = removed - set(self._extra)
        in_file = sum(1 for d in self._removed | set(self._extra) if d in line_of)
        self._len = len(line_of) - in_file + len(self._extra)

    @classmethod
    def of(cls, docs: Iterable[Document]) -> DocumentTable:
        return cls(None, {}, {d.doc_id: d for d in docs})

    @classmethod
    def open(cls, folder: Path) -> DocumentTable:
        with np.load(folder / DOCUMENT_COLUMNS, allow_pickle=False) as z:
            offsets, ids = z["offsets"], z["ids"]
        return cls(JsonLines(folder / "documents.jsonl", offsets), {str(d): i for i, d in enumerate(ids)})

    def save(self, folder: Path) -> None:
        ids = list(self)
        offsets = write_jsonl(folder / "documents.jsonl", (asdict(self[d]) for d in ids))
        np.savez(folder / DOCUMENT_COLUMNS, offsets=offsets, ids=np.asarray(ids, dtype=str))

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id in self._extra:
            return self._extra[doc_id]
        if doc_id in self._removed or doc_id not in self._line_of or self._lines is None:
            raise KeyError(doc_id)
        return Document(**self._lines.read(self._line_of[doc_id]))

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._extra or (doc_id in self._line_of and doc_id not in self._removed)

    def __iter__(self) -> Iterator[str]:
        yield from (d for d in self._line_of if d not in self._removed and d not in self._extra)
        yield from self._extra

    def __len__(self) -> int:
        return self._len

    def without(self, doc_ids: set[str]) -> DocumentTable:
        extra = {d: doc for d, doc in self._extra.items() if d not in doc_ids}
        return DocumentTable(self._lines, self._line_of, extra, self._removed | frozenset(doc_ids))

    def plus(self, docs: Iterable[Document]) -> DocumentTable:
        return DocumentTable(self._lines, self._line_of, {**self._extra, **{d.doc_id: d for d in docs}}, self._removed)


def chunk_table(chunks: Sequence[Chunk]) -> ChunkTable:
    return chunks if isinstance(chunks, ChunkTable) else ChunkTable.of(chunks)


def document_table(docs: Mapping[str, Document]) -> DocumentTable:
    return docs if isinstance(docs, DocumentTable) else DocumentTable.of(docs.values())


__all__ = ["ChunkTable", "DocumentTable", "chunk_table", "document_table"]
