"""FAISS in the app's process: exact search at our size, an approximate index at scale.

The index type comes from `choose_index` (exact `Flat` up to `EXACT_MAX` vectors, IVF-Flat above,
measured in `bench/scale.py`); every type sits under an `IDMap2` so searches answer in chunk
ids. This module does not decide what a chunk is or where the build folder lives.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.stores.base import VectorIndex
from rag.types import Chunk

# Up to this many vectors exact search is fast enough: p50 20 ms at 100k on 2 cores, 157 ms at 1M.
# Above it IVF-Flat: recall@10 0.974 and p50 0.8 ms at 1M, built in 155 s (HNSW: 74 s against 28 s
# at 100k for the same recall, and over 25 min at 1M; IVF-PQ lost too much: 0.55). bench/RESULTS.md.
EXACT_MAX = 100_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
IVF_NPROBE = 32
INDEX_TYPES = ("flat", "hnsw", "ivf_flat", "ivf_pq")
TRAIN_PER_LIST = 64  # IVF trains on this many vectors per list (FAISS warns under 39), at least 100k
# IVF's nprobe (HNSW's efSearch) is the smallest of NPROBES (EF_SEARCHES) reaching this recall@10 at build.
RECALL_TARGET = 0.95
NPROBES = (8, 16, 32, 64, 128, 256)
EF_SEARCHES = (16, 32, 64, 128, 256, 512)
CALIBRATION_QUERIES = 200


def calibration_queries(v: np.ndarray, n: int = CALIBRATION_QUERIES, seed: int = 0) -> np.ndarray:
    """Queries between the indexed vectors: the normalised sum of two of them drawn at random, as a
    question often sits between the passages that answer it. On MiniLM's vectors of 1M passages of
    real text their recall@10 tracked the reference questions' (nprobe 8/16/32: 0.922/0.952/0.974
    against 0.939/0.961/0.978), where an indexed vector plus noise overstated it (0.988 at 8, so
    nprobe 8 was chosen and the questions got 0.939). bench/RESULTS.md, docs/scaling.md."""
    rng = np.random.default_rng(seed)
    k = min(n, len(v) // 2)
    pairs = rng.choice(len(v), 2 * k, replace=False).reshape(2, k)
    q = v[pairs[0]] + v[pairs[1]]
    return (q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def exact_top(v: np.ndarray, q: np.ndarray, k: int = 10, block: int = 200_000) -> np.ndarray:
    """Row numbers of the `k` best of `v` for each query, best first, by brute force in blocks."""
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for a in range(0, len(v), block):
        s = q @ v[a : a + block].T
        top = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + a], 1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def serve_queries_singly() -> None:
    """One OpenMP thread per FAISS call: the app runs each request's search on its own thread, and
    FAISS's own threads then fight over the cores (the scale benchmark measures it so too)."""
    import faiss

    faiss.omp_set_num_threads(1)


def choose_index(n: int) -> str:
    """`choose_index(5_000)` -> `"flat"`; `choose_index(1_000_000)` -> `"ivf_flat"`."""
    return "flat" if n <= EXACT_MAX else "ivf_flat"


def factory_string(index_type: str, n: int, dim: int) -> str:
    """The `faiss.index_factory` description, e.g. `factory_string("ivf_flat", 10**6, 384)` -> `"IDMap2,IVF4000,Flat"`."""
    nlist = max(1, min(4 * int(math.sqrt(max(n, 1))), n // 39 or 1))  # faiss wants >= 39 points per list
    return {
        "flat": "IDMap2,Flat",
        "hnsw": f"IDMap2,HNSW{HNSW_M},Flat",
        "ivf_flat": f"IDMap2,IVF{nlist},Flat",
        "ivf_pq": f"IDMap2,IVF{nlist},PQ{dim // 8}x8",
    }[index_type]


class FaissIndex(VectorIndex):
    """A FAISS index keyed by chunk id. Searches and changes take one lock (FAISS is not
    thread-safe while it changes); HNSW cannot delete, so its deleted ids are filtered out."""

    kind = "faiss"

    def __init__(self, dim: int, index_type: str = "auto") -> None:
        import faiss

        if index_type != "auto" and index_type not in INDEX_TYPES:
            raise ValueError(f"unknown FAISS index type {index_type!r}")
        self._faiss = faiss
        self.dim = dim
        self.requested = index_type
        self.index_type = "flat" if index_type == "auto" else index_type
        self.nprobe = IVF_NPROBE
        self.ef_search = HNSW_EF_SEARCH
        self.calibrated_recall: float | None = None  # recall@10 of `nprobe`/`ef_search` on the build's calibration
        self._index = self._new_index(self.index_type, 0)
        self._deleted: set[int] = set()
        self._lock = threading.Lock()

    def _new_index(self, index_type: str, n: int):
        faiss = self._faiss
        index = faiss.index_factory(self.dim, factory_string(index_type, n, self.dim), faiss.METRIC_INNER_PRODUCT)
        self._tune(index, index_type)
        return index

    def _tune(self, index, index_type: str) -> None:
        inner = self._faiss.downcast_index(index.index) if hasattr(index, "index") else index
        if index_type == "hnsw":
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = self.ef_search
        elif index_type.startswith("ivf"):
            inner.nprobe = self.nprobe

    def _calibrate(self, index, index_type: str, ids: np.ndarray, v: np.ndarray) -> None:
        """Set IVF's nprobe (HNSW's efSearch) to the smallest of `NPROBES` (`EF_SEARCHES`) whose
        recall@10 against exact search reaches `RECALL_TARGET` on `calibration_queries` of `v`
        (the largest tried when none does)."""
        q = calibration_queries(v)
        exact = ids[exact_top(v, q)]
        knob, values = ("ef_search", EF_SEARCHES) if index_type == "hnsw" else ("nprobe", NPROBES)
        for value in values:
            setattr(self, knob, value)
            self._tune(index, index_type)
            _, got = index.search(q, 10)
            recall = float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)]))
            if recall >= RECALL_TARGET or value == values[-1]:
                self.calibrated_recall = round(recall, 4)
                return

    def build(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk] | None = None) -> None:
        v = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        index_type = choose_index(len(v)) if self.requested == "auto" else self.requested
        if index_type.startswith("ivf") and len(v) < 39:
            index_type = "flat"  # too few points to train the coarse quantizer
        index = self._new_index(index_type, len(v))
        if not index.is_trained:
            rng = np.random.default_rng(0)
            nlist = self._faiss.extract_index_ivf(index).nlist if index_type.startswith("ivf") else 0
            size = max(100_000, TRAIN_PER_LIST * nlist)
            sample = v if len(v) <= size else v[np.sort(rng.choice(len(v), size, replace=False))]
            index.train(sample)
        if len(v):
            index.add_with_ids(v, np.asarray(ids, dtype=np.int64))
        if index_type != "flat" and len(v) >= 10 * 10:
            self._calibrate(index, index_type, np.asarray(ids, dtype=np.int64), v)
        with self._lock:
            self._index, self.index_type, self._deleted = index, index_type, set()

    def add(self, ids: np.ndarray, vectors: np.ndarray, chunks: list[Chunk] | None = None) -> None:
        v = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(v):
            with self._lock:
                self._index.add_with_ids(v, np.asarray(ids, dtype=np.int64))
                self._deleted -= {int(i) for i in ids}

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            if self.index_type == "hnsw":
                self._deleted |= {int(i) for i in ids}
            else:
                self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-`k` ids by inner product: `[(id, score), ...]`, best first."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        with self._lock:
            n = self._index.ntotal
            if n == 0:
                return []
            scores, ids = self._index.search(q, min(k + len(self._deleted), n))
            deleted = self._deleted
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0 and i not in deleted]
        return hits[:k]

    def count(self) -> int:
        return int(self._index.ntotal) - len(self._deleted)

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the index into `folder`; an `auto` index that has grown (or shrunk) past `EXACT_MAX`
        by uploads is rebuilt as the type its size calls for first (a save that writes everything
        is the index's compaction)."""
        if self.requested == "auto" and self.index_type != choose_index(self.count()):
            self._retype()
        with self._lock:
            self._faiss.write_index(self._index, str(folder / "vectors.faiss"))
            deleted = sorted(self._deleted)
        if deleted:
            np.save(folder / "deleted.npy", np.asarray(deleted, dtype=np.int64))
        info = {"kind": self.kind, "index": self.index_type, "requested": self.requested, "vectors": self.count()}
        if self.index_type.startswith("ivf"):
            info |= {"nprobe": self.nprobe, "calibrated_recall_at_10": self.calibrated_recall}
        elif self.index_type == "hnsw":
            info |= {"ef_search": self.ef_search, "calibrated_recall_at_10": self.calibrated_recall}
        return info

    def _retype(self) -> None:
        """Rebuild the index from its own vectors, as the type `choose_index` picks for its size."""
        with self._lock:
            ids = self._faiss.vector_to_array(self._index.id_map).astype(np.int64)
            inner = self._faiss.downcast_index(self._index.index)
            if self.index_type.startswith("ivf"):
                inner.make_direct_map()
            vectors = inner.reconstruct_n(0, len(ids)) if len(ids) else np.zeros((0, self.dim), dtype=np.float32)
            keep = np.array([int(i) not in self._deleted for i in ids], dtype=bool)
        self.build(ids[keep], vectors[keep])

    @classmethod
    def load(cls, folder: Path, info: dict[str, Any]) -> FaissIndex:
        import faiss

        index = faiss.read_index(str(folder / "vectors.faiss"))
        store = cls(index.d, info.get("requested", info.get("index", "flat")))
        store.index_type = info.get("index", "flat")
        store.nprobe = int(info.get("nprobe", IVF_NPROBE))
        store.ef_search = int(info.get("ef_search", HNSW_EF_SEARCH))
        store.calibrated_recall = info.get("calibrated_recall_at_10")
        store._tune(index, store.index_type)
        store._index = index
        if (folder / "deleted.npy").is_file():
            store._deleted = {int(i) for i in np.load(folder / "deleted.npy")}
        return store

    def describe(self) -> dict[str, Any]:
        extra = {"nprobe": self.nprobe} if self.index_type.startswith("ivf") else {}
        extra |= {"ef_search": self.ef_search} if self.index_type == "hnsw" else {}
        return {**super().describe(), "index": self.index_type, "vectors": self.count(), **extra}
