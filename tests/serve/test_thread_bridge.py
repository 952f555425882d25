"""iterate_in_thread: items in order, errors re-raised, and an abandoned generator is closed."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rag.serve.thread_bridge import iterate_in_thread


def collect(gen) -> list:
    async def main() -> list:
        return [x async for x in iterate_in_thread(gen)]

    return asyncio.run(main())


def test_items_arrive_in_order_from_another_thread():
    threads = set()

    def gen():
        for i in range(5):
            threads.add(threading.get_ident())
            yield i

    assert collect(gen()) == [0, 1, 2, 3, 4]
    assert threading.get_ident() not in threads


def test_errors_are_raised_in_the_consumer():
    def gen():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        collect(gen())


def test_abandoned_iteration_stops_and_closes_the_generator():
    closed = threading.Event()
    produced = []

    def gen():
        try:
            for i in range(10_000):
                produced.append(i)
                time.sleep(0.001)
                yield i
        finally:
            closed.set()

    async def main() -> int:
        items = iterate_in_thread(gen())
        first = await anext(items)
        await items.aclose()
        return first

    assert asyncio.run(main()) == 0
    assert closed.wait(5)
    assert len(produced) < 10_000


def waits_for(lock: threading.Lock, stop: threading.Event, ended: threading.Event, first: bool):
    """Yields "first" (when asked to), then waits for `lock` until `stop` is set; sets `ended` on its way out."""
    try:
        if first:
            yield "first"
        while not lock.acquire(timeout=0.05):
            if stop.is_set():
                return
        yield "got the lock"
    finally:
        ended.set()


@pytest.mark.parametrize("how", ["closed after an item", "cancelled while waiting"])
def test_the_signal_is_set_when_the_consumer_goes_so_a_waiting_worker_gives_up(how):
    lock, stop, ended = threading.Lock(), threading.Event(), threading.Event()
    lock.acquire()  # held elsewhere for as long as the test runs

    async def main() -> None:
        items = iterate_in_thread(waits_for(lock, stop, ended, first=how == "closed after an item"), stop)
        if how == "closed after an item":
            assert await anext(items) == "first"
            await items.aclose()
        else:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await anext(items)

    asyncio.run(main())
    assert stop.is_set() and ended.wait(5)  # the worker did not wait on for the lock
    lock.release()
