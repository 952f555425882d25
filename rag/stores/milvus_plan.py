"""Which index a Milvus collection gets, with what build and search parameters, and why.

Pure functions of the collection's size and the requested type (`RAG_MILVUS_INDEX`), so they are
tested without an engine. `rag.stores.milvus` creates the index and, when an engine refuses a type
(Milvus Lite builds only FLAT, IVF_FLAT and AUTOINDEX), asks `fallback` for the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Exact search up to here, as for FAISS: Milvus Lite's FLAT answered in 18.4 ms p50 at 100k and
# 150 ms at 1M on 2 cores; its IVF_FLAT in 6.5 ms at 100k with recall@10 0.963 (bench/RESULTS.md).
EXACT_MAX = 100_000
IVF_NPROBE = 32  # lists probed per query: FAISS's 32 of 4000 gave recall@10 0.974 at 1M
NLIST_MAX = 65_536  # Milvus accepts nlist in [1, 65536]
# HNSW is not measured on Milvus here; these are the FAISS values (M 32 reached recall 1.0 at 100k)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 32, 80, 128
SETTING_TO_TYPE = {"flat": "FLAT", "ivf_flat": "IVF_FLAT", "hnsw": "HNSW", "autoindex": "AUTOINDEX"}


@dataclass(frozen=True)
class IndexPlan:
    """One dense index: Milvus' type name, its build parameters, its base search parameters, why.

    `fallback` says why the requested type was not used ("" when it was).
    """

    index_type: str
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    requested: str = "auto"
    fallback: str = ""

    def search_params(self, k: int) -> dict[str, Any]:
        """What every dense search passes: `{"metric_type": "IP", "params": {...}}`; HNSW's `ef` is at least `k`.

        `IndexPlan("HNSW", search={"ef": 128}).search_params(200)` -> `{"metric_type": "IP", "params": {"ef": 200}}`.
        """
        params = dict(self.search)
        if "ef" in params:
            params["ef"] = max(int(params["ef"]), k)
        return {"metric_type": "IP", "params": params}

    def record(self) -> dict[str, Any]:
        """What the manifest records under `vector_store` (read back by `from_record`)."""
        out = {
            "index": self.index_type,
            "index_params": self.params,
            "search_params": self.search,
            "index_reason": self.reason,
            "index_requested": self.requested,
        }
        if self.fallback:
            out["index_fallback"] = self.fallback
        return out

    @classmethod
    def from_record(cls, info: dict[str, Any]) -> IndexPlan:
        """The plan a manifest recorded; a manifest from before plans were recorded names only FLAT."""
        return cls(
            index_type=info.get("index", "FLAT"),
            params=dict(info.get("index_params", {})),
            search=dict(info.get("search_params", {})),
            reason=info.get("index_reason", "recorded by an earlier version"),
            requested=info.get("index_requested", "auto"),
            fallback=info.get("index_fallback", ""),
        )


def nlist_for(n: int) -> int:
    """IVF lists for `n` vectors, about 4·√n, no more than `n`, within Milvus' range:
    `nlist_for(1_000_000)` -> 4000, `nlist_for(10)` -> 10."""
    return max(1, min(NLIST_MAX, 4 * math.isqrt(n), n))


def _typed(index_type: str, n: int, reason: str, requested: str) -> IndexPlan:
    if index_type == "IVF_FLAT":
        nlist = nlist_for(n)
        return IndexPlan("IVF_FLAT", {"nlist": nlist}, {"nprobe": min(IVF_NPROBE, nlist)}, reason, requested)
    if index_type == "HNSW":
        return IndexPlan(
            "HNSW", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}, {"ef": HNSW_EF}, reason, requested
        )
    return IndexPlan(index_type, {}, {}, reason, requested)  # FLAT; AUTOINDEX: the engine picks


def plan_index(n: int, requested: str = "auto") -> IndexPlan:
    """The index for a collection built with `n` vectors.

    `plan_index(5_000)` -> FLAT; `plan_index(1_000_000)` -> IVF_FLAT, nlist 4000, nprobe 32;
    `plan_index(10, "hnsw")` -> HNSW (a requested type is used at any size).

    Raises:
        ValueError: `requested` is not one of `RAG_MILVUS_INDEX`'s values.
    """
    if requested == "auto":
        if n <= EXACT_MAX:
            return _typed("FLAT", n, f"auto: {n} vectors <= {EXACT_MAX:,}, exact search", requested)
        return _typed("IVF_FLAT", n, f"auto: {n} vectors > {EXACT_MAX:,}, IVF with about 4·sqrt(n) lists", requested)
    if requested not in SETTING_TO_TYPE:
        raise ValueError(f"unknown Milvus index type {requested!r}: use one of auto, {', '.join(SETTING_TO_TYPE)}")
    return _typed(SETTING_TO_TYPE[requested], n, f"RAG_MILVUS_INDEX={requested}", requested)


def fallback(refused: IndexPlan, n: int, why: str) -> IndexPlan | None:
    """The next plan after an engine refused `refused`, or None when even FLAT was refused.

    HNSW or AUTOINDEX fall back to the size rule (FLAT or IVF_FLAT), IVF_FLAT to FLAT:
    `fallback(plan_index(10, "hnsw"), 10, "local mode only support FLAT IVF_FLAT AUTOINDEX")` -> FLAT.
    """
    if refused.index_type == "FLAT":
        return None
    nxt = plan_index(n) if refused.index_type in ("HNSW", "AUTOINDEX") else _typed("FLAT", n, "", refused.requested)
    if nxt.index_type == refused.index_type:  # the size rule chose IVF_FLAT, which was refused
        nxt = _typed("FLAT", n, "", refused.requested)
    note = f"the engine refused {refused.index_type} ({why})"
    return IndexPlan(
        nxt.index_type,
        nxt.params,
        nxt.search,
        f"{note}; {nxt.index_type} instead",
        refused.requested,
        note if not refused.fallback else f"{refused.fallback}; {note}",
    )
