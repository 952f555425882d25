"""Keyword index on disk: our segments (`rag.keywords`) against SQLite FTS5, on the same passages.

Both index the same real-text passages (corpus sentences recombined, `bench/scale.py`'s
`real_texts`) as our tokeniser leaves them, and answer the reference questions for 30 candidates.
Measured per engine, each in a fresh process: build (index time), open (what a start pays),
resident memory after opening, query p50/p95, adding 3 passages, and the top-10 overlap with
rank-bm25's ranking (ours is exact by construction; FTS5 uses its own BM25 constants).
Usage: `python bench/keyword_engines.py [--sizes 100000] [--queries 200]`; prints a JSON row per engine.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scale import questions, real_texts, rss_mb  # noqa: E402
from rag.lexical import tokenize  # noqa: E402


def fts5_build(path: Path, texts: list[str]) -> None:
    con = sqlite3.connect(path)
    # Our tokens joined by spaces; "1.5" and "2,000" stay one token.
    con.execute("CREATE VIRTUAL TABLE p USING fts5(lex, tokenize=\"unicode61 tokenchars '.,'\")")
    con.executemany(
        "INSERT INTO p(rowid, lex) VALUES (?, ?)", ((i, " ".join(tokenize(t))) for i, t in enumerate(texts))
    )
    con.commit()
    con.close()


def fts5_search(con: sqlite3.Connection, query: str, k: int) -> list[int]:
    terms = list(dict.fromkeys(tokenize(query)))
    if not terms:
        return []
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    rows = con.execute("SELECT rowid FROM p WHERE p MATCH ? ORDER BY rank LIMIT ?", (match, k)).fetchall()
    return [r[0] for r in rows]


def child(engine: str, n: int, nq: int, folder: Path) -> dict:
    texts = real_texts(n)
    built = folder / f"{engine}-{n}"
    t0 = time.perf_counter()
    if engine == "segments":
        from rag.keywords import KeywordIndex

        idx = KeywordIndex()
        idx.add(list(range(n)), texts)
        idx.save(built)
    else:
        built.mkdir(parents=True, exist_ok=True)
        fts5_build(built / "fts.db", texts)
    build_s = time.perf_counter() - t0
    del texts
    out = subprocess.run(
        [sys.executable, __file__, "--open", engine, str(n), str(nq), str(built)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"engine": engine, "n": n, "build_s": round(build_s, 1), **json.loads(out.strip().splitlines()[-1])}


def opened(engine: str, n: int, nq: int, built: Path) -> dict:
    """In a fresh process: open, query, add; with the rank-bm25 overlap at 100k and below."""
    qs = questions()[:nq]
    base = rss_mb()
    t0 = time.perf_counter()
    if engine == "segments":
        from rag.keywords import FOLDER, KeywordIndex

        idx = KeywordIndex.open(built / FOLDER)
        search = lambda q: [k for k, _ in idx.search(q, 30)]  # noqa: E731
    else:
        con = sqlite3.connect(built / "fts.db")
        search = lambda q: fts5_search(con, q, 30)  # noqa: E731
    open_s = time.perf_counter() - t0
    search(qs[0])
    times, results = [], []
    for q in qs:
        t0 = time.perf_counter()
        results.append(search(q))
        times.append((time.perf_counter() - t0) * 1000)
    memory = rss_mb() - base
    new = real_texts(3, seed=9)
    t0 = time.perf_counter()
    if engine == "segments":
        idx.add([n, n + 1, n + 2], new)
        idx.save(built.parent / f"{built.name}-next")
    else:
        con.executemany(
            "INSERT INTO p(rowid, lex) VALUES (?, ?)", ((n + i, " ".join(tokenize(t))) for i, t in enumerate(new))
        )
        con.commit()
    add_s = time.perf_counter() - t0
    overlap = None
    if n <= 100_000:
        from rag.lexical import BM25Index

        ref = BM25Index(real_texts(n))
        overlap = statistics.mean(
            len(set(got[:10]) & {i for i, _ in ref.search(q, 10)}) / max(1, min(10, len(ref.search(q, 10))))
            for q, got in zip(qs, results, strict=True)
        )
    times.sort()
    return {
        "open_s": round(open_s, 3),
        "memory_mb": round(memory),
        "query_p50_ms": round(statistics.median(times), 2),
        "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "add_3_s": round(add_s, 3),
        "top10_overlap_with_rank_bm25": None if overlap is None else round(overlap, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--engines", nargs="+", default=["segments", "fts5"])
    ap.add_argument("--open", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.open:
        engine, n, nq, built = args.open
        print(json.dumps(opened(engine, int(n), int(nq), Path(built))))
        return 0
    with tempfile.TemporaryDirectory(prefix="keyword-engines-") as tmp:
        for n in args.sizes:
            for engine in args.engines:
                print(json.dumps(child(engine, n, args.queries, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
