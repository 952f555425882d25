"""Load test: concurrent clients against the app on 127.0.0.1 for a fixed time, through every door
into the model: the browser page's chat (Gradio's own protocol, spoken by `gradio_client`),
`/api/ask` (JSON and streamed) and `/v1/chat/completions`, with `/api/search` beside them.

Each client goes through the doors in turn. Per door it records requests served, the documented
refusals (503 a full answer queue, 429 the rate limit, 504 the time limit; the page says these in
its error bubble or note, and they are counted the same way), other errors (must be 0), answers
matched to the wrong question (must be 0: the page must show its own question, an answer's first
passage must be the one its question's answer was given when asked alone before the load, a
search's the one it found then, and every cited document one of those given to it), lost requests
(sent, never completed; must be 0), p50/p95 latency of the served ones, and the server's RSS at the
start and the end. It waits for `/healthz` to say the app is ready, asks each question once alone
before the load (a minute with the real model), never sends more than `--max-requests` requests,
and only to 127.0.0.1; it exits 1 on any other error, wrong answer or lost request. `--write`
appends a dated section to bench/RESULTS.md.

In CI (tests/test_bench_load.py), the whole app in this process over the test corpus, with the
deterministic echo generator and a small queue so that 503s occur (`--rate-limit` and `--timeout-s`
bring 429s and 504s):

    python bench/load.py --fake --clients 5 --duration 3 --max-queue 3

With the real model (this takes both cores for five minutes; nothing else should run beside it).
Start the server with the limits to be measured (RAG_MAX_QUEUE, RAG_RATE_LIMIT,
RAG_REQUEST_TIMEOUT_S), then the load, which waits while the page says the model is loading:

    python app.py & echo $!             # its pid
    python bench/load.py --url http://127.0.0.1:7860 --pid <pid> --clients 16 --duration 300 --write

Add `--key <key>` (or RAG_LOAD_KEY) when the server has API keys; the page's client sends it as
`Authorization: Bearer <key>`, like the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import html
import itertools
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
ROUTES = ("page", "ask", "ask-stream", "chat", "search")
DOCUMENTED = ("503", "429", "504")  # the refusals the API documents; anything else but 200 is an error
ERROR_CODES = {"busy": "503", "rate_limited": "429", "timeout": "504"}  # an error event inside a stream
# The page's error turn (or note) for each documented refusal (rag.errors' messages).
PAGE_REFUSALS = {
    "answering as many questions as it can": "503",
    "Too many requests": "429",
    "took longer than this server allows": "504",
}


@dataclass
class Reply:
    """What one request came back with, whichever door it went through."""

    status: str  # "200", a documented refusal, another HTTP status, "error" (the page's) or "lost"
    questions: list[str] = field(default_factory=list)  # the question(s) the page shows it answering
    top: str | None = None  # the document of the first passage retrieved
    cited: set[str] = field(default_factory=set)  # the documents its citations point at (by id)
    titles: set[str] = field(default_factory=set)  # the page's source cards: the cited documents' titles
    detail: str = ""


@dataclass
class Expected:
    """What retrieval finds for one question alone, before the load."""

    search_top: str | None  # the document of a search's first passage
    answer_top: str | None  # the document of the first passage its answer is given
    docs: set[str]  # the documents of every passage its answer is given
    titles: set[str]  # their titles, as the page's source cards show them


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def last_event(text: str) -> tuple[str, Any]:
    """The name and JSON data of the last server-sent event before `[DONE]`."""
    name, last = "message", ("message", None)
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:") and line[5:].strip() != "[DONE]":
            last, name = (name, json.loads(line[5:])), "message"
    return last


def docs_of(citations: list[dict[str, Any]]) -> set[str]:
    return {c["doc_id"] for c in citations}


async def one(client: httpx.AsyncClient, route: str, question: str) -> httpx.Response:
    if route == "search":
        return await client.get("/api/search", params={"q": question, "k": 5})
    if route == "chat":
        body = {"model": "rag", "messages": [{"role": "user", "content": question}]}
        return await client.post("/v1/chat/completions", json=body)
    return await client.post("/api/ask", json={"question": question, "stream": route == "ask-stream"})


async def http_reply(client: httpx.AsyncClient, route: str, question: str) -> Reply:
    """Ask through one of the API's routes."""
    try:
        resp = await one(client, route, question)
    except httpx.HTTPError as e:  # no response: a timeout, or the connection was dropped
        return Reply("lost", detail=f"{type(e).__name__}: {e!r}")
    if resp.status_code != 200:
        return Reply(str(resp.status_code), detail=resp.text[:200])
    if route == "search":
        results = resp.json()["results"]
        return Reply("200", top=results[0]["doc_id"] if results else None)
    if route == "chat":  # the OpenAI format carries sources (cited), not what was retrieved
        return Reply("200", cited=docs_of(resp.json()["sources"]))
    if route == "ask-stream":
        name, body = last_event(resp.text)
        if name == "error":  # the status line was sent before the answer failed
            return Reply(ERROR_CODES.get(body["error"]["code"], "error"), detail=json.dumps(body)[:200])
    else:
        body = resp.json()
    retrieved = body["retrieved"]
    return Reply("200", top=retrieved[0]["doc_id"] if retrieved else None, cited=docs_of(body["citations"]))


def _plain(fragment: str) -> str:
    """The text of an HTML fragment, without the "uploaded" badge."""
    fragment = re.sub(r'<span class="rag-badge">.*?</span>', "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # Gradio 6 sends a message as parts
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return str(content or "")


def page_reply(outputs: Any) -> Reply:
    """Read what the page shows after its last step: the conversation, the sources panel and the
    note (the conversation's state stays on the server; Gradio's client is never sent it).

    A served answer's last two messages are the question and the answer (or the not-found notice),
    and the sources panel names the question and the cited documents' titles. A documented refusal
    is an error bubble, or only the note when the page refused before starting a turn (rate limit).
    """
    _, messages, sources, note = outputs
    if isinstance(messages, list) and len(messages) >= 2:
        asked = [html.unescape(_message_text(messages[-2]))]
        said = _message_text(messages[-1])
        if 'class="rag-error"' not in said:
            sources = sources if isinstance(sources, str) else ""
            asked += [html.unescape(q) for q in re.findall(r'<p class="rag-for">Answer \d+: (.*?)</p>', sources)]
            titles = {_plain(t) for t in re.findall(r'<span class="rag-num">\[\d+\]</span> (.*?)</div>', sources)}
            return Reply("200", questions=asked, titles=titles)
        text = _plain(said)
    else:
        asked, text = [], _plain(note if isinstance(note, str) else "")
    status = next((s for words, s in PAGE_REFUSALS.items() if words in text), "error")
    return Reply(status, questions=asked, detail=text[:200] or f"no turn and no note: {str(outputs)[:200]}")


class PageDoor:
    """The browser page's chat, called as Gradio's Python client calls it (`/ask`, the question
    box's event): one client (one browser tab) per load worker, a new conversation every question.
    Synchronous: run it in a thread."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url, self.headers, self.timeout = url, headers, timeout
        self.client: Any = None

    def connect(self) -> PageDoor:
        from gradio_client import Client

        # token=False: no Hugging Face token from this machine goes along. Its telemetry is off only
        # when GRADIO_ANALYTICS_ENABLED says so (`measure` sees to it); `analytics_enabled=False` alone
        # does not turn it off.
        self.client = Client(
            self.url,
            token=False,  # type: ignore[arg-type]
            headers=self.headers,
            verbose=False,
            analytics_enabled=False,
            download_files=False,
            max_workers=2,
        )
        return self

    def ask(self, question: str) -> Reply:
        if self.client is None:
            self.connect()
        self.client.reset_session()  # a fresh conversation: the state lives in the session
        job = self.client.submit(question, api_name="/ask")  # the client fills in the state input
        try:
            outputs = job.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            job.cancel()
            self.close()  # its threads may still wait on the old event; start again with a new one
            return Reply("lost", detail=f"no reply from the page within {self.timeout:g} s")
        except Exception as e:  # the event failed (AppError), or the connection did
            return Reply("error", detail=f"{type(e).__name__}: {e}"[:200])
        return page_reply(outputs)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 900) -> str:
    """Wait until `/healthz` says the app is ready (`python app.py` serves a loading page while it
    builds the index and loads the model); the model's name.

    Raises:
        SystemExit: the app reported that it could not start, or was not ready in `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            health = (await client.get("/healthz")).json()
        except (httpx.HTTPError, ValueError):
            health = {"status": "unreachable"}
        if health.get("status") == "ok":
            return str(health.get("model", ""))
        if health.get("status") == "error":
            raise SystemExit(f"the app could not start: {health.get('message')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the app was not ready after {timeout_s:.0f} s ({health.get('status')})")
        await asyncio.sleep(2)


async def alone(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request before the load, repeated while the server is busy or over its rate limit."""
    for _ in range(30):
        resp = await client.request(method, path, **kwargs)
        if resp.status_code not in (429, 503):
            break
        await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
    if resp.status_code not in (200, 504):
        resp.raise_for_status()
    return resp


async def expect(client: httpx.AsyncClient, question: str, titles: dict[str, str]) -> Expected:
    """What `question` finds alone: a search's top document, and the passages its answer is given
    (ranked by the answer's own retrieval, which can differ from a plain search's), which every
    answer to it must have retrieved and cited from. When even this answer is over the time limit,
    the cited documents are checked against a wider search's, and the first passage not at all."""
    search = await alone(client, "GET", "/api/search", params={"q": question, "k": 20})
    results = search.json()["results"]  # ranked as with k=5: the first k are kept in fused order
    asked = await alone(client, "POST", "/api/ask", json={"question": question})
    if asked.status_code == 200:
        retrieved = asked.json()["retrieved"]
        answer_top = retrieved[0]["doc_id"] if retrieved else None
        docs = {r["doc_id"] for r in retrieved}
    else:
        answer_top, docs = None, {r["doc_id"] for r in results}
    search_top = results[0]["doc_id"] if results else None
    return Expected(search_top, answer_top, docs, {titles.get(d, d) for d in docs})


def mismatch(route: str, reply: Reply, question: str, expected: Expected) -> str | None:
    """Why `reply` (from `route`) looks like another question's answer, or None."""
    if any(q != question for q in reply.questions):
        return f"the page shows it answering {reply.questions!r}"
    want = expected.search_top if route == "search" else expected.answer_top
    if reply.top is not None and want is not None and reply.top != want:
        return f"retrieved {reply.top} first, expected {want}"
    if not reply.cited <= expected.docs:
        return f"cites {sorted(reply.cited - expected.docs)}, which its question does not retrieve"
    if not reply.titles <= expected.titles:
        return f"cites {sorted(reply.titles - expected.titles)}, which its question does not retrieve"
    return None


async def run(
    url: str, questions: list[str], clients: int, seconds: float, max_requests: int, key: str, timeout: float = 600
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a request is never
    # sent on a connection the server is closing at that moment (a client-side race, not an error).
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=float(os.environ.get("RAG_LOAD_KEEPALIVE", "2")))
    loop = asyncio.get_running_loop()
    # A thread per worker for the page's (synchronous) client: asyncio's default pool has only a
    # few, which would queue page questions in this process instead of the server.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=clients, thread_name_prefix="page")
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    latency: dict[str, list[float]] = defaultdict(list)
    wrong: Counter[str] = Counter()
    problems: list[str] = []
    sent = 0
    deadline = 0.0
    rng = random.Random(0)

    async def worker(i: int, client: httpx.AsyncClient, page: PageDoor, expected: dict[str, Expected]) -> None:
        nonlocal sent
        for n in itertools.count(i):  # each worker goes through the doors in turn
            if time.monotonic() >= deadline or sent >= max_requests:
                return
            sent += 1
            route, question = ROUTES[n % len(ROUTES)], rng.choice(questions)
            t0 = time.perf_counter()
            if route == "page":
                reply = await loop.run_in_executor(pool, page.ask, question)
            else:
                reply = await http_reply(client, route, question)
            took = time.perf_counter() - t0
            statuses[route][reply.status] += 1
            if reply.status not in ("200", *DOCUMENTED):
                problems.append(f"{route}: {reply.status} after {took:.2f} s: {reply.detail}")
            why = mismatch(route, reply, question, expected[question])
            if why:
                wrong[route] += 1
                problems.append(f"{route}: {question!r}: {why}")
            if reply.status == "200":
                latency[route].append(took)

    pages = [PageDoor(url, headers, timeout) for _ in range(clients)]
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as client:
        try:
            model = await wait_ready(client)
            listed = (await alone(client, "GET", "/api/documents")).json()["documents"]
            titles = {d["doc_id"]: d["title"] for d in listed}
            expected = {q: await expect(client, q, titles) for q in questions}  # alone, before the load
            await asyncio.gather(*(loop.run_in_executor(pool, p.connect) for p in pages))  # each reads /config
            warm = await loop.run_in_executor(pool, pages[0].ask, questions[0])  # Gradio's first event is slow
            if warm.status not in ("200", *DOCUMENTED):
                raise SystemExit(f"the page's /ask does not answer: {warm.status} {warm.detail}")
            started = time.monotonic()
            deadline = started + seconds
            await asyncio.gather(*(worker(i, client, p, expected) for i, p in enumerate(pages)))
            load_s = time.monotonic() - started  # the load, until its last reply
        finally:
            await asyncio.gather(*(loop.run_in_executor(pool, p.close) for p in pages))
            pool.shutdown()
    return {
        "statuses": statuses,
        "latency": latency,
        "wrong": wrong,
        "problems": problems,
        "sent": sent,
        "seconds": load_s,
        "model": model,
    }


def other_errors(counts: Counter[str]) -> int:
    return sum(n for s, n in counts.items() if s not in ("200", "lost", *DOCUMENTED))


def failed(result: dict[str, Any]) -> bool:
    """Whether the run found an error other than the documented ones, a wrong answer or a lost request."""
    return bool(result["problems"])


@contextlib.contextmanager
def fake_server(
    max_queue: int, rate_limit: str = "", timeout_s: float = 120.0, delay: float = 0.01, key: str = ""
) -> Iterator[str]:
    """The whole app as `python app.py` serves it (API and page, `build_app` behind `WarmupApp`,
    uvicorn with the app's options) over the test corpus, the echo generator (`tests/live.py`:
    deterministic, its answers pass the citation check) answering `delay` s a word, on a free
    127.0.0.1 port. Yields its URL."""
    from pydantic import SecretStr

    from rag.citations import CitationChecker
    from rag.indexing import build_index
    from rag.pipeline import RagPipeline
    from rag.retrieval import HybridRetriever
    from rag.serve.server import WarmupApp, build_app, uvicorn_options
    from rag.settings import Settings
    from tests.fakes import HashEmbedder, write_corpus
    from tests.live import EchoGenerator, serve

    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp_dir:
        tmp = Path(tmp_dir)
        s = Settings(
            corpus_dir=write_corpus(tmp / "corpus"),
            index_dir=tmp / "index",
            data_dir=tmp / "data",
            cache_dir=tmp / "cache",
            chunk_size=300,
            chunk_overlap=40,
            min_relevance=0.05,
            max_queue=max_queue,
            rate_limit=rate_limit,
            request_timeout_s=timeout_s,
            api_keys=SecretStr(key),
        )
        embedder = HashEmbedder()
        data = build_index(s, embedder, progress=False)
        pipe = RagPipeline(
            HybridRetriever(data, embedder, candidates=10), EchoGenerator(delay=delay), CitationChecker(embedder)
        )
        server = WarmupApp()
        options = {k: v for k, v in uvicorn_options(s).items() if k not in ("host", "port")}
        # Each page client holds a heartbeat stream open, which ends (and lets the server stop) only
        # at its next beat: every second here instead of Gradio's 15 s.
        beat = os.environ.get("GRADIO_HEARTBEAT_INTERVAL")
        os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "1"
        try:
            with serve(server, timeout_graceful_shutdown=10, **options) as url:
                server.ready(build_app(pipe, s))
                yield url
        finally:
            if beat is None:
                os.environ.pop("GRADIO_HEARTBEAT_INTERVAL", None)
            else:
                os.environ["GRADIO_HEARTBEAT_INTERVAL"] = beat


def report(result: dict[str, Any], args: argparse.Namespace, rss: tuple[float, float], seconds: float) -> str:
    if args.fake:
        where = (
            f"fake (echo) generator, {args.fake_delay:g} s a word, RAG_MAX_QUEUE={args.max_queue}, "
            f"RAG_RATE_LIMIT={args.rate_limit or 'none'}, RAG_REQUEST_TIMEOUT_S={args.timeout_s:g}"
        )
    else:
        where = f"{result['model']} served by `python app.py` at {args.url}"
    total: Counter[str] = sum(result["statuses"].values(), Counter())
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — load test (`bench/load.py`), "
        f"{where}, {args.clients} clients, {seconds:.0f} s",
        "",
        f"{result['sent']} requests sent; by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(total.items())),
        "",
        "| door | served | 503 | 429 | 504 | other errors | wrong question | lost | p50 | p95 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for route in ROUTES:
        counts = result["statuses"].get(route, Counter())
        xs = sorted(result["latency"].get(route, []))
        p50 = f"{statistics.median(xs):.2f} s" if xs else "-"
        p95 = f"{xs[min(len(xs) - 1, int(0.95 * len(xs)))]:.2f} s" if xs else "-"
        lines.append(
            f"| {route} | {counts['200']} | {counts['503']} | {counts['429']} | {counts['504']} | "
            f"{other_errors(counts)} | {result['wrong'][route]} | {counts['lost']} | {p50} | {p95} |"
        )
    lines += [
        "",
        f"Doors: page = the browser chat through `gradio_client` (`/ask`), ask = `/api/ask` JSON, ask-stream = "
        f"`/api/ask` streamed, chat = `/v1/chat/completions`, search = `/api/search`. "
        f"Server RSS {rss[0]:.0f} MB at the start, {rss[1]:.0f} MB at the end"
        f"{' (this process: server and clients)' if args.fake else ''}. CPUs: {os.cpu_count()}.",
        "",
    ]
    lines += [f"- {p}" for p in result["problems"][:20]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860")
    ap.add_argument("--pid", type=int, help="the server's process id, for its RSS")
    ap.add_argument("--key", default=os.environ.get("RAG_LOAD_KEY", ""), help="an API key, if the server needs one")
    ap.add_argument("--fake", action="store_true", help="serve the app in-process with the echo generator")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", "--seconds", dest="seconds", type=float, default=60, help="seconds of load")
    ap.add_argument("--max-requests", type=int, default=5000)
    ap.add_argument("--request-timeout", type=float, default=600, help="a request with no reply by then is lost")
    fake = ap.add_argument_group("the --fake server's settings")
    fake.add_argument("--max-queue", type=int, default=16, help="RAG_MAX_QUEUE")
    fake.add_argument("--rate-limit", default="", help='RAG_RATE_LIMIT, e.g. "50/second" (default: none)')
    fake.add_argument("--timeout-s", type=float, default=120.0, help="RAG_REQUEST_TIMEOUT_S")
    fake.add_argument("--fake-delay", type=float, default=0.01, help="the echo generator's seconds a word")
    ap.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    return ap.parse_args(argv)


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run the load as `args` say; the result (per door: `statuses`, `latency`, `wrong`; `problems`,
    `sent`, `seconds`) and its report."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, from the app or the page's client
    with contextlib.ExitStack() as stack:
        if args.fake:
            args.url = stack.enter_context(
                fake_server(args.max_queue, args.rate_limit, args.timeout_s, args.fake_delay, args.key)
            )
            pid, questions = os.getpid(), FAKE_QUESTIONS
        else:
            if not args.url.startswith("http://127.0.0.1"):
                raise SystemExit("load tests run against 127.0.0.1 only")
            pid, questions = args.pid or 0, QUESTIONS
        start_rss = rss_mb(pid) if pid else float("nan")
        result = asyncio.run(
            run(args.url, questions, args.clients, args.seconds, args.max_requests, args.key, args.request_timeout)
        )
        end_rss = rss_mb(pid) if pid else float("nan")
    return result, report(result, args, (start_rss, end_rss), result["seconds"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result, text = measure(args)
    print(text)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n" + text)
    if failed(result):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
