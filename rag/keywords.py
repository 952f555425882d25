"""The keyword (BM25) index, kept on disk in segments: built once, opened without rebuilding.

A segment is an immutable set of passages with its postings in compressed-row form (for each word,
the passages holding it and how often), saved as `.npy` files that are memory-mapped when opened,
so starting the app reads a word list, not the passages. An upload adds a small segment; removing
a passage marks it dead in its segment. Scores are exactly rank-bm25's `BM25Okapi` over the live
passages (its idf, and its floor for words in more than half of them), whatever the segments: the
word counts that make the idf are kept across segments and corrected for dead passages. When there
are more than `MAX_SEGMENTS`, all but the largest are merged into one (dead passages dropped); a
full `rag index` writes one segment again.

Saved into a build folder as `keywords/segments.json` and one folder per segment. A segment read
from an earlier build is hard-linked into the next one (its files never change), so a save writes
only the new segments and the dead lists.
"""

from __future__ import annotations

import json
import math
import threading
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import embedding_text
from rag.index import file_sha256, link_or_copy
from rag.lexical import tokenize
from rag.stores.base import chunk_keys
from rag.types import Chunk

MAX_SEGMENTS = 8
FOLDER = "keywords"
_ARRAYS = ("keys", "lens", "offsets", "slots", "tfs")


@dataclass(frozen=True)
class Segment:
    """Passages `keys[slot]` of lengths `lens[slot]`; word `terms[r]` is held by the passages
    `slots[offsets[r]:offsets[r + 1]]`, `tfs[...]` times each. `dead` marks removed slots."""

    name: str
    keys: np.ndarray
    lens: np.ndarray
    terms: tuple[str, ...]
    offsets: np.ndarray
    slots: np.ndarray
    tfs: np.ndarray
    dead: np.ndarray | None = None
    source: Path | None = None  # the folder its (immutable) files were read from or written to
    hashes: dict[str, str] = field(default_factory=dict)  # file name -> sha256, once on disk
    vocab: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", {t: r for r, t in enumerate(self.terms)})

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def live(self) -> int:
        return self.size - (int(self.dead.sum()) if self.dead is not None else 0)

    def live_length(self) -> int:
        lens = self.lens if self.dead is None else self.lens[~self.dead]
        return int(lens.sum())

    def doc_freq(self) -> dict[str, int]:
        """How many live passages of this segment hold each word (words none holds left out)."""
        df = np.diff(self.offsets)
        if self.dead is not None and self.dead.any():
            df = df - self._rows_counts(self.dead)
        return {t: int(n) for t, n in zip(self.terms, df.tolist(), strict=True) if n}

    def words_of(self, mask: np.ndarray) -> dict[str, int]:
        """How many of the passages `mask` marks hold each word."""
        counts = self._rows_counts(mask)
        return {self.terms[r]: int(counts[r]) for r in np.flatnonzero(counts).tolist()}

    def _rows_counts(self, mask: np.ndarray) -> np.ndarray:
        postings = np.flatnonzero(mask[self.slots])
        rows = np.searchsorted(self.offsets, postings, side="right") - 1
        return np.bincount(rows, minlength=len(self.terms))

    @classmethod
    def build(cls, name: str, keys: Iterable[int], token_lists: Iterable[list[str]]) -> Segment:
        vocab: dict[str, int] = {}
        rows, slots, tfs, lens = array("q"), array("i"), array("i"), array("i")
        keys_ = np.fromiter((int(k) for k in keys), dtype=np.int64)
        for slot, toks in enumerate(token_lists):
            lens.append(len(toks))
            for term, tf in Counter(toks).items():
                rows.append(vocab.setdefault(term, len(vocab)))
                slots.append(slot)
                tfs.append(tf)
        if len(lens) != len(keys_):
            raise ValueError(f"{len(keys_)} keys for {len(lens)} passages")
        return cls._from_postings(
            name,
            keys_,
            np.frombuffer(lens, np.int32),
            list(vocab),
            np.frombuffer(rows, np.int64),
            np.frombuffer(slots, np.int32),
            np.frombuffer(tfs, np.int32),
        )

    @classmethod
    def _from_postings(cls, name, keys, lens, terms, rows, slots, tfs) -> Segment:
        """From unordered postings: word `terms[rows[i]]` is in passage `slots[i]`, `tfs[i]` times."""
        order = np.lexsort((slots, rows))
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(terms)))]).astype(np.int64)
        return cls(
            name=name,
            keys=np.asarray(keys, np.int64),
            lens=np.asarray(lens, np.int32),
            terms=tuple(terms),
            offsets=offsets,
            slots=slots[order],
            tfs=tfs[order],
        )

    def write(self, folder: Path) -> dict[str, str]:
        """Save into `folder/<name>/`, hard-linking the files already on disk (they never change);
        returns `{file name: sha256}` of what is there."""
        dest = folder / self.name
        dest.mkdir(parents=True, exist_ok=True)
        hashes = {}
        for name in (*(f"{a}.npy" for a in _ARRAYS), "terms.json"):
            if self.source is not None and name in self.hashes and (self.source / name).is_file():
                link_or_copy(self.source / name, dest / name)
                hashes[name] = self.hashes[name]
                continue
            # Not on disk (new), or its build was dropped by another writer's save: written from
            # memory (a memory-mapped array stays readable after its file is deleted).
            if name == "terms.json":
                (dest / name).write_text(json.dumps(list(self.terms), ensure_ascii=False), encoding="utf-8")
            else:
                np.save(dest / name, getattr(self, name[:-4]), allow_pickle=False)
            hashes[name] = file_sha256(dest / name)
        if self.dead is not None and self.dead.any():  # changes with every removal: always written
            np.save(dest / "dead.npy", np.flatnonzero(self.dead).astype(np.int64), allow_pickle=False)
            hashes["dead.npy"] = file_sha256(dest / "dead.npy")
        return hashes

    @classmethod
    def read(cls, folder: Path, hashes: dict[str, str] | None = None) -> Segment:
        arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r", allow_pickle=False) for a in _ARRAYS}
        terms = tuple(json.loads((folder / "terms.json").read_text(encoding="utf-8")))
        if len(arrays["offsets"]) != len(terms) + 1 or len(arrays["lens"]) != len(arrays["keys"]):
            raise ValueError(f"keyword segment {folder.name} is inconsistent")
        dead = None
        if (folder / "dead.npy").exists():
            dead = np.zeros(len(arrays["keys"]), dtype=bool)
            dead[np.load(folder / "dead.npy", allow_pickle=False)] = True
        return cls(name=folder.name, terms=terms, dead=dead, source=folder, hashes=dict(hashes or {}), **arrays)


def merge(name: str, segments: list[Segment]) -> Segment:
    """One segment holding the live passages of `segments`, in their order."""
    terms: dict[str, int] = {}
    keys, lens, rows, slots, tfs = [], [], [], [], []
    base = 0
    for seg in segments:
        alive = np.ones(seg.size, bool) if seg.dead is None else ~seg.dead
        new_slot = np.cumsum(alive) - 1 + base
        term_ids = np.fromiter((terms.setdefault(t, len(terms)) for t in seg.terms), np.int64, len(seg.terms))
        seg_rows = np.repeat(term_ids, np.diff(seg.offsets))
        keep = alive[seg.slots]
        rows.append(seg_rows[keep])
        slots.append(new_slot[seg.slots[keep]])
        tfs.append(np.asarray(seg.tfs)[keep])
        keys.append(np.asarray(seg.keys)[alive])
        lens.append(np.asarray(seg.lens)[alive])
        base += int(alive.sum())

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return Segment._from_postings(
        name,
        cat(keys, np.int64),
        cat(lens, np.int32),
        list(terms),
        cat(rows, np.int64),
        cat(slots, np.int32),
        cat(tfs, np.int32),
    )


def _segment_hashes(files: dict[str, str], name: str) -> dict[str, str]:
    """A segment's immutable files and their hashes, from a manifest's `files` (its dead list left
    out: that is written again with every save)."""
    prefix = f"{FOLDER}/{name}/"
    return {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix) and k != prefix + "dead.npy"}


@dataclass(frozen=True)
class _State:
    """What a search reads, swapped whole on every change (searches never take the writer's lock)."""

    segments: tuple[Segment, ...] = ()
    idf: dict[str, float] = field(default_factory=dict)
    n: int = 0
    total: int = 0


class KeywordIndex:
    """BM25 (Okapi, rank-bm25's formula and idf floor) over passages keyed by chunk key, in segments.

    `search` returns `[(key, score)]` best first, zero scores dropped, ties in the order passages
    were added. `add` replaces a key already present. Changes take a lock; searches read a snapshot.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._lock = threading.Lock()
        self._state = _State()
        self._df: Counter[str] = Counter()
        self._next = 0  # the number in the next segment's name

    @classmethod
    def open(cls, folder: Path, hashes: dict[str, str] | None = None) -> KeywordIndex:
        """Open the index saved in `folder` (a build folder's `keywords/`), memory-mapping its postings.

        Args:
            hashes: `{path relative to folder's parent: sha256}` (the manifest's `files`): kept so the
                next save need not hash the files it links.

        Raises:
            ValueError, OSError: a file is missing or unreadable.
        """
        meta = json.loads((folder / "segments.json").read_text())
        idx = cls(**meta["bm25"])
        segments = [Segment.read(folder / name, _segment_hashes(hashes or {}, name)) for name in meta["segments"]]
        idx._next = meta["next"]
        idx._install(tuple(segments), recount=True)
        return idx

    def __len__(self) -> int:
        return self._state.n

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._state.segments

    @property
    def doc_freq(self) -> dict[str, int]:
        """How many live passages hold each word (a copy)."""
        return {t: n for t, n in self._df.items() if n}

    def add(self, keys: list[int], texts: list[str]) -> None:
        """Index passages as a new segment (a key already present is replaced)."""
        tokens = [tokenize(t) for t in texts]  # outside the lock: the slow part
        with self._lock:
            segments = self._without(set(map(int, keys)))
            if keys:
                segments = (*segments, Segment.build(self._name(), keys, tokens))
                for toks in tokens:
                    self._df.update(set(toks))
            if len(segments) > MAX_SEGMENTS:
                largest = max(range(len(segments)), key=lambda i: segments[i].size)
                small = [s for i, s in enumerate(segments) if i != largest]
                segments = (segments[largest], merge(self._name(), small))
            self._install(segments)

    def add_chunks(self, chunks: list[Chunk]) -> None:
        """Index chunks as retrieval searches them: keyed by chunk id, with their title and headings."""
        self.add(chunk_keys(chunks).tolist(), [embedding_text(c) for c in chunks])

    def remove(self, keys: list[int]) -> None:
        with self._lock:
            self._install(self._without(set(map(int, keys))))

    def save(self, folder: Path) -> dict[str, Any]:
        """Write into `folder/keywords/`, linking segments already on disk; returns what the manifest
        records, `files` being `{path relative to folder: sha256}` of every file written or linked.
        Call `saved` once `folder` has its final name."""
        root = folder / FOLDER
        root.mkdir(parents=True, exist_ok=True)
        state = self._state
        files = {f"{FOLDER}/{s.name}/{n}": h for s in state.segments for n, h in s.write(root).items()}
        meta = {
            "segments": [s.name for s in state.segments],
            "next": self._next,
            "bm25": {"k1": self.k1, "b": self.b, "epsilon": self.epsilon},
        }
        (root / "segments.json").write_text(json.dumps(meta, indent=1))
        files[f"{FOLDER}/segments.json"] = file_sha256(root / "segments.json")
        return {"passages": state.n, "segments": len(state.segments), "files": files}

    def saved(self, folder: Path, files: dict[str, str]) -> None:
        """The build saved by `save` now lives in `folder` (with these `files`): later saves link its
        segment files from there instead of writing them again."""
        with self._lock:
            segments = []
            for seg in self._state.segments:
                hashes = _segment_hashes(files, seg.name)
                if hashes and (folder / FOLDER / seg.name).is_dir():
                    seg = replace(seg, source=folder / FOLDER / seg.name, hashes=hashes)
                segments.append(seg)
            self._state = replace(self._state, segments=tuple(segments))

    def _name(self) -> str:
        self._next += 1
        return f"seg-{self._next:06d}"

    def _without(self, keys: set[int]) -> tuple[Segment, ...]:
        """The segments with `keys` marked dead (and their words uncounted); holds the lock."""
        if not keys:
            return self._state.segments
        wanted = np.fromiter(keys, np.int64, len(keys))
        out = []
        for seg in self._state.segments:
            hit = np.isin(seg.keys, wanted)
            if seg.dead is not None:
                hit &= ~seg.dead
            if not hit.any():
                out.append(seg)
                continue
            self._df.subtract(seg.words_of(hit))
            dead = hit if seg.dead is None else seg.dead | hit
            out.append(replace(seg, dead=dead))
        return tuple(out)

    def _install(self, segments: tuple[Segment, ...], recount: bool = False) -> None:
        """Make `segments` what searches read, with the idf of the live passages."""
        if recount:
            self._df = Counter()
            for seg in segments:
                self._df.update(seg.doc_freq())
        n = sum(s.live for s in segments)
        total = sum(s.live_length() for s in segments)
        # As rank-bm25: idf = ln((N - n + 0.5) / (n + 0.5)); negative ones floored at epsilon * mean idf.
        terms = [t for t, c in self._df.items() if c > 0]
        df = np.fromiter((self._df[t] for t in terms), np.float64, len(terms))
        values = np.log(n - df + 0.5) - np.log(df + 0.5)
        if len(values):
            values[values < 0] = self.epsilon * (math.fsum(values.tolist()) / len(values))
        self._state = _State(segments, dict(zip(terms, values.tolist(), strict=True)), n, total)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        q = tokenize(query)
        state = self._state
        if not q or state.n == 0 or k <= 0:
            return []
        avgdl = state.total / state.n
        found: list[tuple[float, int, int, int]] = []  # (-score, segment, slot, key)
        for s, seg in enumerate(state.segments):
            scores = None
            for term in q:
                idf = state.idf.get(term)
                row = seg.vocab.get(term)
                if not idf or row is None:
                    continue
                a, e = int(seg.offsets[row]), int(seg.offsets[row + 1])
                slots = seg.slots[a:e]
                tf = seg.tfs[a:e].astype(np.float64)
                norm = self.k1 * (1 - self.b + self.b * seg.lens[slots] / avgdl)
                if scores is None:
                    scores = np.zeros(seg.size)
                scores[slots] += idf * (tf * (self.k1 + 1) / (tf + norm))
            if scores is None:
                continue
            if seg.dead is not None:
                scores[seg.dead] = 0
            hit = np.flatnonzero(scores > 0)
            if len(hit) > k:  # keep every slot tied with the k-th best, so ties still go by slot
                kth = -np.partition(-scores[hit], k - 1)[k - 1]
                hit = hit[scores[hit] >= kth]
            found += [(-scores[i], s, int(i), int(seg.keys[i])) for i in hit.tolist()]
        found.sort()
        return [(key, float(-neg)) for neg, _, _, key in found[:k]]
