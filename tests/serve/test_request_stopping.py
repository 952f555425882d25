"""A request that timed out or lost its client stops using the model: one still waiting for it never
starts generating, and one generating stops within the piece it is making.

The model is `PacedGenerator`, which takes its time over each piece and logs when each generation
starts (its prefill) and each piece begins, so the tests can count what ran after the clients went.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from rag.library import DocumentLibrary
from rag.serve.http_api import create_app
from tests.fakes import PacedGenerator
from tests.live import serve

QUESTION = "Which sectors could OpenAI work with?"


def new_workers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name == "rag-generate"]


def wait_for(threads: list[threading.Thread], limit_s: float = 120.0) -> None:
    """Join `threads`; the limit only keeps a broken build from hanging the suite."""
    end = time.monotonic() + limit_s
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "the answer workers never finished"


def paced_app(make_pipeline, settings, gen: PacedGenerator, **limits):
    pipe, _ = make_pipeline()
    pipe.generator = gen
    s = settings.model_copy(update=limits)
    return create_app(pipe, DocumentLibrary(pipe.retriever, s), s)


def test_requests_that_time_out_while_queued_never_reach_the_model(make_pipeline, settings):
    # Each piece takes twice the limit, so every deadline passes while the first answer makes its first.
    gen = PacedGenerator(per_piece_s=1.0, pieces=20)
    app = paced_app(make_pipeline, settings, gen, request_timeout_s=0.5, max_queue=16)
    before = set(threading.enumerate())
    workers: list[threading.Thread] = []

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            asks = [client.post("/api/ask", json={"question": QUESTION}) for _ in range(10)]
            replies = await asyncio.gather(*asks)
            workers.extend(new_workers(before))
            return replies

    replies = asyncio.run(main())
    all_gone = time.monotonic()  # every client has had its 504, so every deadline has passed
    assert [r.status_code for r in replies] == [504] * 10
    wait_for(workers)
    # Only the answer already generating when its deadline passed ever started...
    assert len(gen.events("start")) <= 1
    assert gen.events("start", after=all_gone) == []
    # ...and it began no piece after its deadline: it stopped with the one it was making.
    assert gen.events("piece", after=all_gone) == [] and gen.events("piece") == [0]


def test_a_client_that_hangs_up_releases_the_model_before_the_next_piece(make_pipeline, settings):
    gen = PacedGenerator(per_piece_s=0.3, pieces=6)
    app = paced_app(make_pipeline, settings, gen)
    before = set(threading.enumerate())
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as first, httpx.Client(base_url=url) as second:
        received = 0
        with first.stream("POST", "/api/ask", json={"question": QUESTION, "stream": True}) as events:
            for line in events.iter_lines():
                if line.startswith("event: writing"):
                    received += 1
                    break
            # A second question arrives and waits for the model the first one holds.
            queued: list[httpx.Response] = []
            asker = threading.Thread(target=lambda: queued.append(second.post("/api/ask", json={"question": QUESTION})))
            asker.start()
            time.sleep(0.1)
        # The first client has hung up (the stream was closed before its end).
        asker.join(30)
        assert queued and queued[0].status_code == 200
        wait_for(new_workers(before))
    first_pieces = [n for n in gen.events("piece") if n == 0]
    assert received == 1 and len(first_pieces) <= received + 1  # at most the piece under way when it went
    second_start = next(t for k, n, t in gen.log if k == "start" and n == 1)
    assert not [t for k, n, t in gen.log if k == "piece" and n == 0 and t > second_start]
