"""One started answer, shared by every HTTP route that answers: start `RagPipeline.stream` in a
worker thread, wait for its first event, then either drain it to the `Answer` or send it as
server-sent events; either way the stream is closed when the client goes.

Waiting for the first event before replying is what turns bad input (an empty or too long
question) into a JSON 4xx instead of a broken event stream. This module decides nothing about
the wire format: each route passes its own `frames` function.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette import EventSourceResponse

from rag.errors import RagError
from rag.pipeline import RagPipeline, StreamEvent
from rag.serve.thread_bridge import iterate_in_thread
from rag.types import Answer

Frame = dict[str, str]  # one server-sent event: {"event"?: ..., "data": ...}
PING_S = 15  # a comment line this often keeps proxies from closing a slow answer


class AnswerStream:
    """A started answer: its first event has arrived, the rest are still coming from the worker."""

    def __init__(self, first: StreamEvent, rest: AsyncIterator[StreamEvent]) -> None:
        self.first = first
        self._rest = rest

    @classmethod
    async def start(
        cls,
        pipeline: RagPipeline,
        question: str,
        history: list[dict[str, Any]] | None = None,
        top_k: int | None = None,
    ) -> AnswerStream:
        """Start answering `question` in a worker thread and wait for the first event.

        Raises:
            RagError: the question was refused before anything was generated (empty, too long, ...).
        """
        events = iterate_in_thread(pipeline.stream(question, history, top_k))
        first = await anext(events)
        return cls(first, events)

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Every event, the first included."""
        yield self.first
        async for ev in self._rest:
            yield ev

    async def close(self) -> None:
        """Stop the generation (its worker stops after the current piece and releases the model)."""
        await self._rest.aclose()

    async def answer(self) -> Answer:
        """Drain the stream and return its `Answer`; closed even when the caller is cancelled."""
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

        return EventSourceResponse(body(), ping=PING_S)
