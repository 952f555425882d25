"""Telling a running answer to stop: a `StopSignal` that is set when its client goes or its
deadline passes, and `acquire_unless`, which waits for a lock only while nobody has stopped.

A worker thread cannot be interrupted from outside; it reads the signal at the points where
stopping is safe (before it takes the model, between two generated pieces). This module knows
nothing about models or HTTP.
"""

from __future__ import annotations

import threading
import time

from rag.errors import AnswerStoppedError, RagError, RequestTimeoutError

POLL_S = 0.05  # how soon a wait for a lock notices that the signal was set


class StopSignal:
    """Set by whoever stops waiting for a result, or by its deadline passing.

    `StopSignal(deadline=time.monotonic() - 1).is_set()` -> True (the deadline has passed).

    Args:
        deadline: a `time.monotonic()` time after which the signal counts as set; None for none.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._event = threading.Event()

    def set(self) -> None:
        """Stop: the result is no longer wanted."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether `set()` was called."""
        return self._event.is_set()

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def is_set(self) -> bool:
        """Whether to stop: set, or past the deadline."""
        return self.cancelled or self.expired

    def error(self) -> RagError:
        """The error to end with: a timeout once the deadline has passed (whoever gave up then did so
        because of it), else a stop."""
        if self.expired:
            return RequestTimeoutError()
        return AnswerStoppedError()

    def check(self) -> None:
        """Raises: RequestTimeoutError or AnswerStoppedError (see `error`) when the signal is set."""
        if self.is_set():
            raise self.error()


def acquire_unless(lock: threading.Lock, stop: StopSignal | None, poll_s: float = POLL_S) -> bool:
    """Acquire `lock`, waiting for it only until `stop` is set (within `poll_s` of that).

    A lock got at the moment the signal is set is given back: whoever holds it must not start.

    Args:
        lock: the lock to take.
        stop: None waits as long as it takes.

    Returns:
        True when the caller now holds `lock`; False (and it does not) when `stop` was set first.
    """
    if stop is None:
        return lock.acquire()
    while not stop.is_set():
        if lock.acquire(timeout=poll_s):
            if not stop.is_set():
                return True
            lock.release()
            break
    return False
