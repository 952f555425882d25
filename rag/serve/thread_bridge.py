"""Consume a blocking generator (model generation, CPU-bound) from async code without blocking
the event loop: a worker thread runs it and hands each item over through a queue.

If the consumer stops early (a client disconnects), the worker stops after its current item and
closes the generator, so a model lock it holds is released; a stop signal shared with the
generator is set at once, so a generator still waiting (for a lock) can give up without producing
an item first. This module knows nothing about RAG.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"


class Signal(Protocol):
    """What `iterate_in_thread` sets when its consumer goes (a `threading.Event` will do)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


async def iterate_in_thread(gen: Iterator[T], stop: Signal | None = None) -> AsyncIterator[T]:
    """Yield the items of `gen`, computed in a worker thread.

    `[x async for x in iterate_in_thread(iter([1, 2]))]` -> `[1, 2]`.

    Args:
        gen: any iterator; a generator is closed when iteration ends or is abandoned.
        stop: a signal `gen` reads, set as soon as the consumer stops early or is cancelled. It is
            `gen`'s to act on; the worker itself only stops when the consumer has gone, so a
            signal that sets itself (a deadline) ends the iteration with whatever `gen` raises.

    Returns:
        An async iterator over the same items.

    Raises:
        Whatever `gen` raises, re-raised in the consumer.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    gone = threading.Event()

    def leave() -> None:
        gone.set()
        if stop is not None:
            stop.set()

    def put(kind: str, value: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            leave()

    def work() -> None:
        try:
            for item in gen:
                put(_ITEM, item)
                if gone.is_set():
                    break
            else:
                put(_DONE, None)
        except BaseException as e:  # handed to the consumer, who decides what is a bug
            put(_ERROR, e)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing a generator failed")

    worker = threading.Thread(target=work, name="rag-generate", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        leave()
