"""Check that the vector stores retrieve alike: index one corpus on FAISS, Milvus Lite and a Milvus
server, score retrieval on the reference set on each (as `rag eval --retrieval-only` does), and
compare each store's hit@5 with FAISS's.

`python -m rag.evaluation.stores` (`make stores-agree`) prints one row per store and writes the
table and each store's results.jsonl into a run folder. Every index is built in a temporary folder,
never `index/`, through `rag.indexing.build_index`, and loaded again as the app loads it. Passages
and questions are embedded once: the Milvus builds and searches reuse the vectors FAISS's build
made (`CachingEmbedder`). The server is `--milvus-uri` (default `RAG_TEST_MILVUS_URI`, token in
`RAG_TEST_MILVUS_TOKEN`), whose collection is dropped afterwards, or else the engine `make
milvus-servers` installs, started for the run. This module does not define metrics (`scoring` does).

Exit status: 0 every store is within the tolerance of FAISS; 1 a store is not; 2 an error (the
message says what to do); 3 the stores that ran agree, but one could not run (no Milvus server).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from rag.embedding import CachingEmbedder, Embedder
from rag.errors import BadInputError, RagError, VectorStoreError
from rag.evaluation.harness import RESULTS, run_eval
from rag.evaluation.qaset import SPLITS, QAItem
from rag.evaluation.records import read_records
from rag.evaluation.report import fmt, table
from rag.settings import Settings

log = logging.getLogger(__name__)

STORES = ("faiss", "milvus-lite", "milvus-server")
REFERENCE = "faiss"
TOLERANCE = 0.01  # the largest hit@5 difference from FAISS that still counts as agreeing
AGREE, DISAGREE, ERROR, INCOMPLETE = 0, 1, 2, 3


@dataclass
class StoreRun:
    """One store's part of the check: its summary (None when it could not run, with the reason)."""

    store: str
    summary: dict[str, Any] | None = None
    skipped: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # the store's `describe()`
    chunks: int = 0
    build_s: float = 0.0
    eval_s: float = 0.0
    hits_at_5: dict[str, float | None] = field(default_factory=dict)  # by item id
    top5: dict[str, list[str]] = field(default_factory=dict)  # retrieved chunk ids by item id


@dataclass
class Agreement:
    """The verdict: the largest |hit@5 - FAISS's hit@5| over the stores that ran (None when only
    FAISS did), the stores past the tolerance, those that could not run, and the exit status."""

    largest: float | None
    disagree: list[str]
    skipped: list[str]
    exit_code: int


def agreement(runs: Sequence[StoreRun], tolerance: float = TOLERANCE) -> Agreement:
    """Compare every store's hit@5 with FAISS's (the first run).

    `agreement([faiss at 0.80, lite at 0.79, server skipped])` -> largest 0.01, disagree [], exit 3.
    """
    ref = runs[0]
    if ref.store != REFERENCE or ref.summary is None:
        raise BadInputError(f"the first store must be {REFERENCE}, which ran; got {ref.store} ({ref.skipped})")
    diffs = {r.store: abs(r.summary["hit_at_5"] - ref.summary["hit_at_5"]) for r in runs[1:] if r.summary}
    disagree = [s for s, d in diffs.items() if d > tolerance + 1e-9]  # 1e-9: 0.81 - 0.80 is 0.01000...009
    skipped = [r.store for r in runs if r.summary is None]
    code = DISAGREE if disagree else INCOMPLETE if skipped or not diffs else AGREE
    return Agreement(max(diffs.values()) if diffs else None, disagree, skipped, code)


def store_settings(base: Settings, store: str, folder: Path, uri: str = "", token: str = "") -> Settings:
    """`base` with its index, uploads and (for Milvus) database under `folder`, on `store`; the
    server's collection gets a name of its own, so the check never touches another one."""
    update: dict[str, Any] = {"index_dir": folder / "index", "data_dir": folder / "data"}
    if store == "faiss":
        update["vector_store"] = "faiss"
    elif store == "milvus-lite":
        update.update(vector_store="milvus", milvus_uri=str(folder / "index" / "milvus.db"), milvus_db_name="")
        update.update(milvus_token=SecretStr(""), milvus_collection="")
    elif store == "milvus-server":
        name = f"rag_stores_agree_{uuid.uuid4().hex[:8]}"
        update.update(vector_store="milvus", milvus_uri=uri, milvus_token=SecretStr(token), milvus_collection=name)
    else:
        raise BadInputError(f"unknown store {store!r}: choose from {', '.join(STORES)}")
    return base.model_copy(update=update)


def _drop_collection(vectors) -> None:
    """Drop a server's collection and the alias naming it (the check's own, by `store_settings`)."""
    from rag.stores.factory import error_reason, quiet_pymilvus

    try:
        with quiet_pymilvus():
            if vectors.target != vectors.collection:
                vectors.client.drop_alias(vectors.collection)
            vectors.client.drop_collection(vectors.target)
    except Exception as e:  # the figures stand; a leftover costs space
        log.warning("could not drop %s at %s (%s): drop it by hand", vectors.target, vectors.uri, error_reason(e))


def check_fresh(out_dir: Path) -> None:
    """Raises BadInputError when `out_dir` holds files: a run's results would be resumed, not redone."""
    if Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        raise BadInputError(f"{out_dir} holds an earlier run; give a new --out folder, or delete that one")


def run_store(
    store: str,
    settings: Settings,
    embedder: Embedder,
    items: list[QAItem],
    out_dir: Path,
    *,
    progress: bool = False,
    drop: bool = False,
) -> StoreRun:
    """Build `settings`' index, load it as the app does, and score retrieval on `items` into `out_dir`.

    Args:
        drop: drop the Milvus collection afterwards (a server the user named).

    Raises:
        RagError: the build or a search failed (VectorStoreError: the Milvus store could not be reached).
    """
    from rag.generation import NoGenerator
    from rag.indexing import build_index
    from rag.pipeline import RagPipeline

    t0 = time.perf_counter()
    built = build_index(settings, embedder, progress=progress)
    build_s = time.perf_counter() - t0
    pipe = None
    try:
        pipe = RagPipeline.from_settings(settings, generator=NoGenerator(), embedder=embedder)
        t1 = time.perf_counter()
        summary = run_eval(pipe, items, out_dir, retrieval_only=True, progress=progress, report=False)
        eval_s = time.perf_counter() - t1
        detail = pipe.retriever.data.vectors.describe()
    finally:
        if drop:  # before closing: pymilvus shares one connection per URI, so a close ends both clients'
            _drop_collection(built.vectors)
        if pipe is not None:
            pipe.retriever.data.vectors.close()
        built.vectors.close()
    records = read_records(out_dir / RESULTS)
    return StoreRun(
        store,
        summary,
        detail={k: v for k, v in detail.items() if k != "search_params"},
        chunks=len(built.chunks),
        build_s=build_s,
        eval_s=eval_s,
        hits_at_5={r["id"]: r["scores"]["hit_at_5"] for r in records},
        top5={r["id"]: [h["chunk_id"] for h in r["retrieved"][:5]] for r in records},
    )


def compare_stores(
    base: Settings,
    embedder: Embedder,
    items: list[QAItem],
    out_dir: Path,
    *,
    stores: Sequence[str] = STORES,
    server_uri: str = "",
    server_token: str = "",
    progress: bool = False,
) -> list[StoreRun]:
    """Run `run_store` on each store in turn, FAISS first, each into `out_dir/<store>/`.

    A Milvus store that cannot run (no pymilvus, no server installed or reachable) is skipped with
    the reason. Without `server_uri` the server is the engine `make milvus-servers` installs,
    started on a free port for the run and stopped after it.

    Raises:
        BadInputError: `out_dir` holds an earlier run.
        RagError: FAISS's build or a search failed.
    """
    from rag.evaluation.milvus_server import lite_server

    out_dir = Path(out_dir)
    check_fresh(out_dir)
    order = [REFERENCE, *(s for s in stores if s != REFERENCE)]
    cached = embedder if isinstance(embedder, CachingEmbedder) else CachingEmbedder(embedder)
    runs: list[StoreRun] = []
    with tempfile.TemporaryDirectory(prefix="rag-stores-") as tmp, ExitStack() as servers:
        for store in order:
            folder = Path(tmp) / store
            uri = server_uri
            if store == "milvus-server" and not uri:
                try:
                    uri = servers.enter_context(lite_server(folder / "engine"))
                except (FileNotFoundError, RuntimeError, TimeoutError) as e:
                    runs.append(StoreRun(store, skipped=f"{e}{_log_tail(folder / 'engine' / 'server.log')}"))
                    continue
            _say(progress, f"{store}: building the index and scoring {len(items)} items")
            settings = store_settings(base, store, folder, uri, server_token)
            try:
                run = run_store(
                    store,
                    settings,
                    cached,
                    items,
                    out_dir / store,
                    progress=progress,
                    drop=store == "milvus-server" and bool(server_uri),
                )
            except VectorStoreError as e:
                if store == REFERENCE:
                    raise
                run = StoreRun(store, skipped=str(e))
            runs.append(run)
    return runs


def _log_tail(path: Path, lines: int = 5) -> str:
    if not path.is_file():
        return ""
    tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    return (" (its log ends: " + " | ".join(tail) + ")") if tail else ""


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def render(runs: Sequence[StoreRun], verdict: Agreement, tolerance: float = TOLERANCE) -> str:
    """The Markdown table, the largest difference and the verdict, with the items whose hit@5 differs."""
    ref = runs[0]
    rows = []
    for r in runs:
        if r.summary is None:
            rows.append([r.store, None, None, None, None, None, None, None, None, None])
            continue
        same = sum(r.top5.get(i) == ids for i, ids in ref.top5.items()) / len(ref.top5) if ref.top5 else None
        where = f"{r.detail.get('index', '?')}, {r.detail.get('keyword_search', '?')}"
        delta = r.summary["hit_at_5"] - ref.summary["hit_at_5"] if ref.summary else None
        rows.append(
            [r.store, r.summary["n"], r.summary["hit_at_1"], r.summary["hit_at_5"], r.summary["mrr"], delta]
            + [same, f"{r.build_s:.1f}", f"{r.eval_s:.1f}", where]
        )
    header = ["store", "items", "hit@1", "hit@5", "MRR", "hit@5 − FAISS", "same top 5", "build s", "eval s", "index"]
    # FAISS runs first, so its times include embedding the passages and the questions; the others reuse them.
    lines = [
        table(header, rows),
        "",
        "FAISS's build and eval times include embedding; the other stores reuse its vectors.",
    ]
    lines.append(
        f"Largest hit@5 difference from FAISS: {fmt(verdict.largest)} (tolerance {tolerance})."
        if verdict.largest is not None
        else "Largest hit@5 difference from FAISS: – (no other store ran)."
    )
    for r in runs[1:]:
        if r.summary is None:
            lines.append(f"- {r.store} did not run: {r.skipped}")
            continue
        differ = [
            f"{i} {h:.0f}→{r.hits_at_5.get(i) or 0:.0f}" for i, h in ref.hits_at_5.items() if r.hits_at_5.get(i) != h
        ]
        if differ:
            shown = ", ".join(differ[:10]) + (", ..." if len(differ) > 10 else "")
            lines.append(f"- {r.store}: hit@5 differs from FAISS on {len(differ)} items ({shown})")
    verdicts = {
        AGREE: "AGREE: every store's hit@5 is within the tolerance of FAISS's.",
        DISAGREE: f"DISAGREE: {', '.join(verdict.disagree)} differ from FAISS by more than {tolerance}.",
        INCOMPLETE: f"INCOMPLETE: the stores that ran agree, but {', '.join(verdict.skipped) or 'no other store'} "
        "did not run.",
    }
    lines.append(verdicts[verdict.exit_code])
    return "\n".join(lines)


def write_run(out_dir: Path, text: str, runs: Sequence[StoreRun], verdict: Agreement, about: dict[str, Any]) -> None:
    """`stores.md` (what was run, then the table) and `stores.json` (the figures) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    head = "\n".join(f"- {k}: {v}" for k, v in about.items())
    (out_dir / "stores.md").write_text(f"# Do the vector stores agree?\n\n{head}\n\n{text}\n", encoding="utf-8")
    figures = [{k: v for k, v in asdict(r).items() if k not in ("hits_at_5", "top5")} for r in runs]
    payload = {**about, "verdict": asdict(verdict), "runs": figures}
    (out_dir / "stores.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(
        description="Index the corpus on FAISS, Milvus Lite and a Milvus server (temporary folders), score "
        "retrieval on the reference set on each, and compare their hit@5 with FAISS's.",
        epilog="exit status: 0 all agree; 1 a store differs by more than the tolerance; 2 an error; "
        "3 the stores that ran agree but one could not run",
    )
    ap.add_argument("--questions", type=Path, default=Path("evals/qa.jsonl"), help="reference set")
    ap.add_argument("--split", choices=list(SPLITS), help="only this split (default: dev and test)")
    ap.add_argument("--limit", type=int, help="only the first N items")
    ap.add_argument("--out", type=Path, help="run folder (default evals/runs/stores-<UTC time>)")
    ap.add_argument(
        "--milvus-uri",
        default=os.environ.get("RAG_TEST_MILVUS_URI", "").strip(),
        help="a Milvus server to check (default RAG_TEST_MILVUS_URI; else the engine `make milvus-servers` installs)",
    )
    ap.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES), help="FAISS is always included")
    ap.add_argument(
        "--tolerance", type=float, default=TOLERANCE, help=f"largest hit@5 difference (default {TOLERANCE})"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    out = args.out or Path("evals/runs") / f"stores-{started:%Y%m%d-%H%M%S}"
    try:
        from rag.embedding import SentenceTransformerEmbedder
        from rag.evaluation.qaset import load_qaset, select_items

        check_fresh(out)
        base = Settings.load()
        items = select_items(load_qaset(args.questions, base.corpus_dir), args.split, args.limit)
        if not items:
            raise BadInputError(f"{args.questions}: no items in split {args.split!r}")
        embedder = CachingEmbedder(SentenceTransformerEmbedder())
        runs = compare_stores(
            base,
            embedder,
            items,
            out,
            stores=args.stores,
            server_uri=args.milvus_uri,
            server_token=os.environ.get("RAG_TEST_MILVUS_TOKEN", ""),
            progress=not args.quiet,
        )
        verdict = agreement(runs, args.tolerance)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return ERROR
    text = render(runs, verdict, args.tolerance)
    about = {
        "started": f"{started:%Y-%m-%d %H:%M} UTC",
        "corpus": f"{base.corpus_dir} ({runs[0].chunks} passages; {embedder.embedded} distinct texts embedded, once)",
        "questions": f"{args.questions}, split {args.split or 'dev and test'}, {len(items)} items",
        "server": args.milvus_uri or "the milvus-lite 2.5.1 engine, started for the run",
        "retrieval": f"{base.retrieval_mode}, top_k {base.top_k}, candidates {base.candidates}",
    }
    write_run(out, text, runs, verdict, about)
    print(text)
    print(f"written to {out / 'stores.md'}", file=sys.stderr)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
