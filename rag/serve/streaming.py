"""One started answer, shared by every HTTP route that answers: start `RagPipeline.stream` in a
worker thread, wait for its first event, then either drain it to the `Answer` or send it as
server-sent events; either way the stream is closed when the client goes.

Waiting for the first event before replying is what turns bad input (an empty or too long
question) into a JSON 4xx instead of a broken event stream. An `AnswerGate` bounds how many
answers are in flight and how long each may take. This module decides nothing about the wire
format: each route passes its own `frames` function.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from rag.errors import RagError, RequestTimeoutError, ServerBusyError
from rag.pipeline import RagPipeline, StreamEvent
from rag.serve.thread_bridge import iterate_in_thread
from rag.stopping import StopSignal
from rag.types import Answer

Frame = dict[str, str]  # one server-sent event: {"event"?: ..., "data": ...}
DISCONNECT_POLL_S = 0.25  # how often a non-streamed answer checks that its client is still there
PING_S = 15  # a comment line this often keeps proxies from closing a slow answer


class Disconnectable(Protocol):
    """What `AnswerStream.answer` needs of a request (a Starlette `Request` has it)."""

    async def is_disconnected(self) -> bool: ...


class ClientGone(RagError):
    """The client hung up before its answer was ready (logged as 499, like nginx; nobody reads it)."""

    code = "client_closed"
    status = 499

    def __init__(self) -> None:
        super().__init__("The client disconnected before the answer was ready.")


async def _next_by(events: AsyncIterator[StreamEvent], deadline: float | None) -> StreamEvent:
    """The next event, waited for until `deadline` (event-loop time) at most.

    Raises:
        RequestTimeoutError: the deadline passed first.
        StopAsyncIteration: there are no more events.
    """
    if deadline is None:
        return await anext(events)
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(events)
    except TimeoutError:
        raise RequestTimeoutError(
            "The answer took longer than this server allows; try again, or ask a narrower question."
        ) from None


class AnswerGate:
    """At most `max_queue` answers generating or waiting for the model at once, each given
    `timeout_s` from its start. One model serves everyone, so past the bound a caller is told to
    come back (503 with Retry-After) rather than left waiting. Used from the event loop only."""

    def __init__(self, max_queue: int, timeout_s: float) -> None:
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.taken = 0

    def take(self) -> None:
        """Raises: ServerBusyError when every place is taken."""
        if self.taken >= self.max_queue:
            raise ServerBusyError()
        self.taken += 1

    def give_back(self) -> None:
        self.taken -= 1


class AnswerStream:
    """A started answer: its first event has arrived, the rest are still coming from the worker."""

    def __init__(
        self,
        first: StreamEvent,
        rest: AsyncIterator[StreamEvent],
        deadline: float | None = None,
        on_close: Callable[[], None] | None = None,
        stop: StopSignal | None = None,
    ) -> None:
        self.first = first
        self._rest = rest
        self._deadline = deadline
        self._on_close = on_close
        self._stop = stop

    @classmethod
    async def start(
        cls,
        pipeline: RagPipeline,
        question: str,
        history: list[dict[str, Any]] | None = None,
        top_k: int | None = None,
        gate: AnswerGate | None = None,
    ) -> AnswerStream:
        """Start answering `question` in a worker thread and wait for the first event.

        Args:
            gate: when given, the answer takes one of its places (given back when the stream is
                closed) and must finish within its time limit.

        Raises:
            ServerBusyError: the gate is full.
            RagError: the question was refused before anything was generated (empty, too long, ...).
        """
        deadline = None
        stop = StopSignal()
        if gate is not None:
            gate.take()
            deadline = asyncio.get_running_loop().time() + gate.timeout_s
            # The same limit on the worker's clock, so an answer still queued for the model gives up.
            stop = StopSignal(time.monotonic() + gate.timeout_s)
        events = iterate_in_thread(pipeline.stream(question, history, top_k, stop=stop), stop)
        try:
            first = await _next_by(events, deadline)
        except BaseException:
            stop.set()
            await events.aclose()
            if gate is not None:
                gate.give_back()
            raise
        return cls(first, events, deadline, gate.give_back if gate is not None else None, stop)

    async def _next(self) -> StreamEvent:
        return await _next_by(self._rest, self._deadline)

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Every event, the first included."""
        yield self.first
        while True:
            try:
                ev = await self._next()
            except StopAsyncIteration:
                return
            yield ev

    async def close(self) -> None:
        """Stop the generation: one waiting for the model never starts; one generating stops after
        the current piece and releases the model."""
        if self._stop is not None:
            self._stop.set()
        await self._rest.aclose()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    async def answer(self, client: Disconnectable | None = None) -> Answer:
        """Drain the stream and return its `Answer`; closed even when the caller is cancelled.

        Args:
            client: the request; when its client disconnects first, the generation is stopped.

        Raises:
            ClientGone: the client disconnected before the answer was ready.
        """
        if client is None:
            return await self._drain()
        drain = asyncio.ensure_future(self._drain())
        try:
            while True:
                done, _ = await asyncio.wait({drain}, timeout=DISCONNECT_POLL_S)
                if done:
                    return drain.result()
                if await client.is_disconnected():
                    raise ClientGone()
        finally:
            if not drain.done():
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain  # its `finally` closes the stream, which stops the generation

    async def _drain(self) -> Answer:
        answer = None
        try:
            async for ev in self.events():
                if ev.kind == "answer":
                    answer = ev.data
        finally:
            await self.close()
        if answer is None:
            raise AssertionError("the stream ended without an answer")
        return answer

    def sse(
        self,
        frames: Callable[[AsyncIterator[StreamEvent]], AsyncIterator[Frame]],
        on_error: Callable[[RagError], list[Frame]],
    ) -> EventSourceResponse:
        """Send the stream as server-sent events.

        Args:
            frames: turns the events into the route's frames.
            on_error: the frames that end the stream when a `RagError` interrupts it (the status
                line has already been sent, so the error travels inside the stream).

        Returns:
            The response; a client that hangs up closes the stream, which stops the generation.
        """

        async def body() -> AsyncIterator[Frame]:
            try:
                async with contextlib.aclosing(frames(self.events())) as out:
                    async for frame in out:
                        yield frame
            except RagError as e:
                for frame in on_error(e):
                    yield frame
            finally:
                await self.close()

        # The background task closes the stream too, should the body never have started.
        return EventSourceResponse(body(), ping=PING_S, background=BackgroundTask(self.close))
