"""Consume a blocking generator (model generation, CPU-bound) from async code without blocking
the event loop: a worker thread runs it and hands each item over through a queue.

If the consumer stops early (a client disconnects), the worker stops after its current item and
closes the generator, so a model lock it holds is released. This module knows nothing about RAG.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"


async def iterate_in_thread(gen: Iterator[T]) -> AsyncIterator[T]:
    """Yield the items of `gen`, computed in a worker thread.

    `[x async for x in iterate_in_thread(iter([1, 2]))]` -> `[1, 2]`.

    Args:
        gen: any iterator; a generator is closed when iteration ends or is abandoned.

    Returns:
        An async iterator over the same items.

    Raises:
        Whatever `gen` raises, re-raised in the consumer.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            for item in gen:
                put(_ITEM, item)
                if stop.is_set():
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
        stop.set()
