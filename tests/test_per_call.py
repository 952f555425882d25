"""What one model call measures travels with that call: the refusal opening's probability comes
back in the call's own `OpeningFloor`, so concurrent requests cannot read each other's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rag.generation import OpeningFloor

QUESTIONS = {
    "Which sectors could OpenAI work with?": 0.9,  # each question's own opening probability
    "Is the Cohere memorandum legally binding?": 0.1,
}


class FloorMeasuringGenerator:
    """Applies the opening floor as a backend does, with a probability set by the question asked,
    then streams slowly, so that concurrent calls overlap."""

    name = "floor-measuring"
    supports_opening_floor = True

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def generate(self, messages, max_tokens: int = 300, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def stream(self, messages, max_tokens: int = 300, temperature: float = 0.0, opening_floor=None):
        user = messages[-1]["content"]
        p = next(v for q, v in QUESTIONS.items() if q in user)
        with self._lock:
            self.calls += 1
        if opening_floor is not None:
            logits = np.log(np.array([p, 1 - p]))
            opening_floor.apply(logits, 0)
        for word in ("OpenAI", "may", "work", "with", "education", "[1]."):
            time.sleep(0.002)
            yield word + " "


def test_opening_probability_cannot_leak_between_concurrent_requests(make_pipeline):
    pipe, _ = make_pipeline(refusal_min_p=0.05)
    pipe.generator = FloorMeasuringGenerator()
    asked = list(QUESTIONS) * 12

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(pipe.ask, asked))

    assert pipe.generator.calls == len(asked)
    for question, answer in zip(asked, answers, strict=True):
        assert abs(answer.signals["p_refusal"] - QUESTIONS[question]) < 1e-9, question


def test_a_floor_records_what_it_saw_and_is_not_shared():
    a, b = OpeningFloor("I", 0.5), OpeningFloor("I", 0.5)
    a.apply(np.log(np.array([0.2, 0.8])), 0)
    assert a.seen_p is not None and abs(a.seen_p - 0.2) < 1e-9 and b.seen_p is None
