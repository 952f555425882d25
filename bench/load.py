"""Load test: concurrent clients against the app on 127.0.0.1 for a fixed time, mixing
`/api/ask` (JSON and streamed), `/v1/chat/completions` and `/api/search`.

It records requests served, 503s and 429s (documented refusals), other errors (must be 0),
p50/p95 latency per route, whether every answer belongs to its own question (the top retrieved
passage matches the one found for that question alone, before the load), and the server's RSS at
the start and the end. Usage:

    python bench/load.py --url http://127.0.0.1:7860 --pid <server pid>   # a running `python app.py`
    python bench/load.py --fake                                             # in-process app, scripted model

It appends a dated section to bench/RESULTS.md with `--write`. It never sends more than
`--max-requests` requests, and only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "Which sectors could OpenAI work with under the agreement?",
    "Is the UK's agreement with OpenAI legally binding?",
    "How many staff does OpenAI employ in London?",
    "What is an AI Growth Zone?",
    "How much time did the Copilot experiment save civil servants each day?",
    "Will Cohere explore data centres in the United Kingdom?",
    "How many workers does the skills plan aim to train?",
]
FAKE_QUESTIONS = [
    "Which sectors could OpenAI work with?",
    "How many staff does OpenAI employ in London?",
    "Will Cohere explore data centres in Canada?",
    "Is the Cohere memorandum legally binding?",
    "How many workers will the skills plan train in AI?",
]
ROUTES = ("ask", "ask-stream", "chat", "search")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def top_doc(route: str, resp: httpx.Response) -> str | None:
    """The document of the first passage the answer was built on, from any route's reply."""
    if route == "search":
        results = resp.json()["results"]
        return results[0]["doc_id"] if results else None
    if route == "ask":
        retrieved = resp.json()["retrieved"]
        return retrieved[0]["doc_id"] if retrieved else None
    if route == "ask-stream":
        last = [ln for ln in resp.text.splitlines() if ln.startswith("data:")][-1]
        retrieved = json.loads(last[5:])["retrieved"]
        return retrieved[0]["doc_id"] if retrieved else None
    return None  # the OpenAI format carries sources (cited), not what was retrieved


async def one(client: httpx.AsyncClient, route: str, question: str) -> httpx.Response:
    if route == "search":
        return await client.get("/api/search", params={"q": question, "k": 5})
    if route == "chat":
        body = {"model": "rag", "messages": [{"role": "user", "content": question}]}
        return await client.post("/v1/chat/completions", json=body)
    return await client.post("/api/ask", json={"question": question, "stream": route == "ask-stream"})


async def run(url: str, questions: list[str], clients: int, seconds: float, max_requests: int, key: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a request is never
    # sent on a connection the server is closing at that moment (a client-side race, not an error).
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=float(os.environ.get("RAG_LOAD_KEEPALIVE", "2")))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as client:
        expected = {}
        for q in questions:  # alone, before the load: what retrieval finds for each question
            expected[q] = top_doc("search", await client.get("/api/search", params={"q": q, "k": 5}))
        statuses: Counter[str] = Counter()
        latency: dict[str, list[float]] = defaultdict(list)
        problems: list[str] = []
        sent = 0
        deadline = time.monotonic() + seconds
        rng = random.Random(0)

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                route, question = rng.choice(ROUTES), rng.choice(questions)
                t0 = time.perf_counter()
                try:
                    resp = await one(client, route, question)
                except httpx.HTTPError as e:
                    statuses["transport error"] += 1
                    problems.append(f"{route}: {type(e).__name__} after {time.perf_counter() - t0:.2f} s: {e!r}")
                    continue
                statuses[str(resp.status_code)] += 1
                if resp.status_code == 200:
                    latency[route].append(time.perf_counter() - t0)
                    got = top_doc(route, resp)
                    if got is not None and got != expected[question]:
                        problems.append(f"{route}: {question!r} got {got}, expected {expected[question]}")
                elif resp.status_code not in (429, 503):
                    problems.append(f"{route}: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    return {"statuses": statuses, "latency": latency, "problems": problems, "sent": sent}


def fake_server(max_queue: int) -> tuple[str, object]:
    """The app over the test corpus with the echo generator, served on a free 127.0.0.1 port."""
    from rag.citations import CitationChecker
    from rag.indexing import build_index
    from rag.library import DocumentLibrary
    from rag.pipeline import RagPipeline
    from rag.retrieval import HybridRetriever
    from rag.serve.http_api import create_app
    from rag.settings import Settings
    from tests.fakes import HashEmbedder, write_corpus
    from tests.live import EchoGenerator, serve

    tmp = Path(tempfile.mkdtemp(prefix="rag-load-"))
    s = Settings(
        corpus_dir=write_corpus(tmp / "corpus"),
        index_dir=tmp / "index",
        data_dir=tmp / "data",
        chunk_size=300,
        chunk_overlap=40,
        min_relevance=0.05,
        max_queue=max_queue,
    )
    embedder = HashEmbedder()
    data = build_index(s, embedder, progress=False)
    pipe = RagPipeline(
        HybridRetriever(data, embedder, candidates=10), EchoGenerator(delay=0.01), CitationChecker(embedder)
    )
    ctx = serve(create_app(pipe, DocumentLibrary(pipe.retriever, s), s))
    return ctx.__enter__(), ctx


def report(result: dict, args: argparse.Namespace, rss: tuple[float, float], seconds: float) -> str:
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — load test, "
        f"{'fake (echo) generator' if args.fake else args.url}, {args.clients} clients, {seconds:.0f} s",
        "",
        f"{result['sent']} requests sent; by status: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items())),
        "",
        "| route | served | p50 | p95 |",
        "| --- | --- | --- | --- |",
    ]
    for route in ROUTES:
        xs = sorted(result["latency"].get(route, []))
        if xs:
            p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
            lines.append(f"| {route} | {len(xs)} | {statistics.median(xs):.2f} s | {p95:.2f} s |")
    lines += [
        "",
        f"Errors other than the documented 503/429: {len(result['problems'])}; "
        f"answers matched to their own question: {'all' if not result['problems'] else 'see errors'}. "
        f"Server RSS {rss[0]:.0f} MB at the start, {rss[1]:.0f} MB at the end. CPUs: {os.cpu_count()}.",
        "",
    ]
    lines += [f"- {p}" for p in result["problems"][:20]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860")
    ap.add_argument("--pid", type=int, help="the server's process id, for its RSS")
    ap.add_argument("--key", default=os.environ.get("RAG_LOAD_KEY", ""), help="an API key, if the server needs one")
    ap.add_argument("--fake", action="store_true", help="serve the app in-process with a scripted generator")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-requests", type=int, default=5000)
    ap.add_argument("--max-queue", type=int, default=16, help="RAG_MAX_QUEUE of the --fake server")
    ap.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = ap.parse_args()

    ctx = None
    if args.fake:
        args.url, ctx = fake_server(args.max_queue)
        pid, questions = os.getpid(), FAKE_QUESTIONS
    else:
        if not args.url.startswith("http://127.0.0.1"):
            raise SystemExit("load tests run against 127.0.0.1 only")
        pid, questions = args.pid or 0, QUESTIONS
    start_rss = rss_mb(pid) if pid else float("nan")
    t0 = time.monotonic()
    result = asyncio.run(run(args.url, questions, args.clients, args.seconds, args.max_requests, args.key))
    elapsed = time.monotonic() - t0
    end_rss = rss_mb(pid) if pid else float("nan")
    if ctx is not None:
        ctx.__exit__(None, None, None)
    text = report(result, args, (start_rss, end_rss), elapsed)
    print(text)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n" + text)
    if result["problems"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
