"""StopSignal: set by hand or by its deadline, and says which; acquire_unless: takes a free lock,
waits for a busy one, and gives up on it as soon as the signal is set; and `RagPipeline.stream`
with a signal: never starts generating once it is set, and stops before the next piece."""

from __future__ import annotations

import threading
import time

import pytest

from rag.errors import AnswerStoppedError, RequestTimeoutError
from rag.stopping import StopSignal, acquire_unless
from tests.fakes import PacedGenerator


def test_a_signal_is_set_by_hand_and_says_it_was_stopped():
    stop = StopSignal()
    assert not stop.is_set() and not stop.cancelled and not stop.expired
    stop.check()  # not set: nothing to raise
    stop.set()
    assert stop.is_set() and stop.cancelled and not stop.expired
    assert isinstance(stop.error(), AnswerStoppedError)
    with pytest.raises(AnswerStoppedError):
        stop.check()


def test_a_signal_sets_itself_when_its_deadline_passes_and_says_it_timed_out():
    assert not StopSignal(time.monotonic() + 3600).is_set()
    late = StopSignal(time.monotonic() - 1)
    assert late.is_set() and late.expired and not late.cancelled
    late.set()  # a client that gave up because of the deadline: still a timeout
    with pytest.raises(RequestTimeoutError, match="took longer"):
        late.check()


def test_acquire_takes_a_free_lock():
    lock = threading.Lock()
    assert acquire_unless(lock, StopSignal()) and lock.locked()
    lock.release()
    assert acquire_unless(lock, None) and lock.locked()


def test_acquire_never_takes_the_lock_once_stopped():
    lock, stop = threading.Lock(), StopSignal()
    stop.set()
    assert not acquire_unless(lock, stop) and not lock.locked()
    assert not acquire_unless(lock, StopSignal(time.monotonic() - 1)) and not lock.locked()


def waiter(lock: threading.Lock, stop: StopSignal) -> tuple[threading.Thread, list[bool]]:
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(acquire_unless(lock, stop)), daemon=True)
    t.start()
    return t, got


def test_a_waiter_gets_the_lock_when_it_is_released():
    lock = threading.Lock()
    lock.acquire()
    t, got = waiter(lock, StopSignal())
    time.sleep(0.1)
    assert not got  # still waiting
    lock.release()
    t.join(10)
    assert got == [True] and lock.locked()


def test_a_waiter_gives_up_when_the_signal_is_set_while_the_lock_stays_taken():
    lock, stop = threading.Lock(), StopSignal()
    lock.acquire()
    t, got = waiter(lock, stop)
    time.sleep(0.1)
    stop.set()
    t.join(10)
    assert got == [False] and not t.is_alive()
    lock.release()
    assert not lock.locked()  # the waiter did not take it afterwards


def test_a_waiter_gives_up_at_its_deadline():
    lock = threading.Lock()
    lock.acquire()
    t, got = waiter(lock, StopSignal(time.monotonic() + 0.2))
    t.join(10)
    assert got == [False]
    lock.release()


# --- the pipeline reads the signal ----------------------------------------------------------

QUESTION = "Which sectors could OpenAI work with?"
HISTORY = [{"role": "user", "content": "What will Cohere explore?"}, {"role": "assistant", "content": "Data [1]."}]


def paced(make_pipeline, pieces: int = 50):
    pipe, _ = make_pipeline()
    pipe.generator = gen = PacedGenerator(per_piece_s=0.0, pieces=pieces)
    return pipe, gen


def test_an_answer_stopped_while_waiting_for_the_model_never_generates(make_pipeline):
    pipe, gen = paced(make_pipeline)
    stop, ended = StopSignal(), []

    def ask() -> None:
        try:
            list(pipe.stream(QUESTION, stop=stop))
        except AnswerStoppedError as e:
            ended.append(e)

    with pipe.model_lock:  # another answer is using the model
        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        time.sleep(0.1)
        stop.set()
        asker.join(10)
    assert ended and not asker.is_alive()
    assert gen.events("start") == []


def test_an_answer_past_its_deadline_never_generates_even_with_the_model_free(make_pipeline):
    pipe, gen = paced(make_pipeline)
    with pytest.raises(RequestTimeoutError):
        list(pipe.stream(QUESTION, stop=StopSignal(time.monotonic() - 1)))
    with pytest.raises(RequestTimeoutError):  # nor does the rewrite of a follow-up run
        list(pipe.stream("Is it binding?", HISTORY, stop=StopSignal(time.monotonic() - 1)))
    assert gen.events("start") == [] and not pipe.model_lock.locked()


def test_a_signal_set_mid_answer_stops_it_before_the_next_piece_and_frees_the_model(make_pipeline):
    pipe, gen = paced(make_pipeline, pieces=50)
    stop = StopSignal()
    events = pipe.stream(QUESTION, stop=stop)
    assert next(events).kind == "rewritten"
    assert next(events).kind == "token" and pipe.model_lock.locked()
    stop.set()
    with pytest.raises(AnswerStoppedError):
        next(events)
    assert gen.events("piece") == [0]  # the one piece made; the backend was asked for no other
    assert not gen.busy and not pipe.model_lock.locked()


def test_closing_an_answer_frees_the_model_and_an_unstopped_one_runs_to_its_end(make_pipeline):
    pipe, gen = paced(make_pipeline, pieces=5)
    events = pipe.stream(QUESTION, stop=StopSignal())
    next(events), next(events)
    events.close()  # what the HTTP worker does when its client goes
    assert not gen.busy and not pipe.model_lock.locked() and gen.events("piece") == [0]
    kinds = [e.kind for e in pipe.stream(QUESTION, stop=StopSignal())]
    assert kinds == ["rewritten"] + ["token"] * 5 + ["answer"] and not pipe.model_lock.locked()
