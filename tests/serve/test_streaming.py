"""AnswerStream: bad input raises before any reply, a drained stream gives its Answer, an error
mid-stream becomes the route's error frames, and a client that goes stops the generation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rag.errors import EmptyQuestionError, GenerationError
from rag.pipeline import Finished, Rewritten, Token
from rag.serve.streaming import AnswerStream
from rag.types import Answer, Timings

ANSWER = Answer("q", "Yes [1].", False, [], [], Timings(), "fake")


class FakePipeline:
    """`stream` yields a rewrite, `tokens` pieces (slowly), then the answer; records when it is closed."""

    def __init__(self, tokens: int = 3, fail_at: int | None = None) -> None:
        self.tokens = tokens
        self.fail_at = fail_at
        self.closed = threading.Event()
        self.produced = 0

    def stream(self, question, history=None, top_k=None, stop=None):
        if not question.strip():
            raise EmptyQuestionError()
        try:
            yield Rewritten(question)
            for i in range(self.tokens):
                if i == self.fail_at:
                    raise GenerationError("the model server did not answer")
                self.produced += 1
                time.sleep(0.001)
                yield Token(f"t{i} ")
            yield Finished(ANSWER)
        finally:
            self.closed.set()


def run(coro):
    return asyncio.run(coro)


def test_bad_input_raises_at_start():
    async def main():
        await AnswerStream.start(FakePipeline(), "   ")

    with pytest.raises(EmptyQuestionError):
        run(main())


def test_answer_drains_to_the_final_answer_and_closes():
    pipe = FakePipeline()

    async def main():
        stream = await AnswerStream.start(pipe, "q")
        assert stream.first == Rewritten("q")
        return await stream.answer()

    assert run(main()) is ANSWER
    assert pipe.closed.wait(5) and pipe.produced == 3


def frames(events):
    async def gen():
        async for ev in events:
            yield {"event": ev.kind, "data": str(ev.data if ev.kind != "answer" else ev.data.answer)}

    return gen()


def on_error(e):
    return [{"event": "error", "data": e.code}]


def test_sse_sends_every_event_then_the_error_frames_when_generation_fails():
    async def main(pipe):
        stream = await AnswerStream.start(pipe, "q")
        response = stream.sse(frames, on_error)
        return [f async for f in response.body_iterator]

    ok = run(main(FakePipeline()))
    assert [f["event"] for f in ok] == ["rewritten", "token", "token", "token", "answer"]
    failed = run(main(FakePipeline(fail_at=1)))
    assert failed == [
        {"event": "rewritten", "data": "q"},
        {"event": "token", "data": "t0 "},
        {"event": "error", "data": "generation_failed"},
    ]


def test_a_client_that_goes_stops_the_generation():
    pipe = FakePipeline(tokens=10_000)

    async def main():
        stream = await AnswerStream.start(pipe, "q")
        body = stream.sse(frames, on_error).body_iterator
        first = await anext(body)
        await body.aclose()  # what the server does when the client hangs up
        return first

    assert run(main()) == {"event": "rewritten", "data": "q"}
    assert pipe.closed.wait(5)
    assert pipe.produced < 10_000


def test_the_gate_bounds_answers_in_flight_and_gives_places_back():
    from rag.errors import ServerBusyError
    from rag.serve.streaming import AnswerGate

    gate = AnswerGate(max_queue=2, timeout_s=30)

    async def main():
        a = await AnswerStream.start(FakePipeline(), "a", gate=gate)
        with pytest.raises(EmptyQuestionError):  # a refused question does not keep its place
            await AnswerStream.start(FakePipeline(), " ", gate=gate)
        b = await AnswerStream.start(FakePipeline(), "b", gate=gate)
        with pytest.raises(ServerBusyError):
            await AnswerStream.start(FakePipeline(), "c", gate=gate)
        assert gate.taken == 2
        await a.answer()
        body = b.sse(frames, on_error).body_iterator
        await anext(body)
        await body.aclose()  # the client went
        assert gate.taken == 0
        c = await AnswerStream.start(FakePipeline(), "c", gate=gate)
        return await c.answer()

    assert run(main()) is ANSWER and gate.taken == 0


def test_an_answer_over_the_time_limit_ends_with_a_timeout_and_stops():
    from rag.errors import RequestTimeoutError
    from rag.serve.streaming import AnswerGate

    gate = AnswerGate(max_queue=4, timeout_s=0.3)
    slow = FakePipeline(tokens=10_000)

    async def main():
        stream = await AnswerStream.start(slow, "q", gate=gate)
        with pytest.raises(RequestTimeoutError):
            await stream.answer()
        streamed = await AnswerStream.start(FakePipeline(tokens=10_000), "q", gate=gate)
        return [f async for f in streamed.sse(frames, on_error).body_iterator][-1]

    assert run(main()) == {"event": "error", "data": "timeout"}
    assert slow.closed.wait(5) and slow.produced < 10_000 and gate.taken == 0


class GoneAfter:
    """A request whose client disconnects after `s` seconds."""

    def __init__(self, s: float) -> None:
        self.at = time.monotonic() + s

    async def is_disconnected(self) -> bool:
        return time.monotonic() >= self.at


def test_a_client_that_goes_stops_a_non_streamed_answer_too():
    from rag.serve.streaming import AnswerGate, ClientGone

    pipe, gate = FakePipeline(tokens=10_000), AnswerGate(max_queue=1, timeout_s=60)

    async def main():
        stream = await AnswerStream.start(pipe, "q", gate=gate)
        with pytest.raises(ClientGone):
            await stream.answer(GoneAfter(0.3))
        still_there = await AnswerStream.start(FakePipeline(), "q", gate=gate)  # the place was given back
        return await still_there.answer(GoneAfter(60))

    assert run(main()) is ANSWER
    assert pipe.closed.wait(5) and pipe.produced < 10_000
