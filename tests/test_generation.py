"""The Generator seam: every backend declares `stream` and whether it applies an opening floor,
and `stream_text` hands the floor only to backends that do."""

from __future__ import annotations

import pytest

from rag.errors import GenerationError
from rag.generation import (
    Generator,
    LlamaCppGenerator,
    NoGenerator,
    OpenAICompatGenerator,
    OpeningFloor,
    TransformersGenerator,
    stream_text,
)
from tests.fakes import ScriptedGenerator

MSGS = [{"role": "user", "content": "hi"}]


class FlooredGenerator(ScriptedGenerator):
    supports_opening_floor = True

    def __init__(self) -> None:
        super().__init__(["a b"])
        self.floors: list[OpeningFloor | None] = []

    def stream(self, messages, max_tokens=300, temperature=0.0, opening_floor=None):
        self.floors.append(opening_floor)
        yield from super().stream(messages, max_tokens, temperature)


def test_every_backend_declares_the_whole_seam():
    for cls in (LlamaCppGenerator, TransformersGenerator, OpenAICompatGenerator, NoGenerator):
        assert callable(cls.stream) and callable(cls.generate) and isinstance(cls.supports_opening_floor, bool)
    assert LlamaCppGenerator.supports_opening_floor and not OpenAICompatGenerator.supports_opening_floor
    assert isinstance(ScriptedGenerator(), Generator) and isinstance(NoGenerator(), Generator)


def test_the_floor_goes_only_to_backends_that_apply_it():
    floor = OpeningFloor("I", 0.5)
    floored = FlooredGenerator()
    assert "".join(stream_text(floored, MSGS, 10, 0.0, floor)) == "a b"
    assert floored.floors == [floor]
    plain = ScriptedGenerator(["c d"])  # its stream would accept a floor, but must not be handed one
    plain.stream = lambda messages, max_tokens=300, temperature=0.0: iter(["c d"])
    assert "".join(stream_text(plain, MSGS, 10, 0.0, floor)) == "c d"


def test_no_generator_refuses_to_answer_when_streamed():
    with pytest.raises(GenerationError, match="retrieval-only"):
        list(stream_text(NoGenerator(), MSGS, 10, 0.0))


def test_opening_floor_bans_a_token_below_its_probability():
    import numpy as np

    scores = np.array([0.0, 0.0, 2.0])
    p = OpeningFloor("x", 0.5).apply(scores, 0)
    assert abs(p - 1 / (2 + np.e**2)) < 1e-9 and scores[0] == -np.inf
    kept = np.array([3.0, 0.0, 0.0])
    assert OpeningFloor("x", 0.5).apply(kept, 0) > 0.5 and kept[0] == 3.0
    assert TransformersGenerator.supports_opening_floor  # it has the logits too


def test_prompt_cache_keeps_the_last_logits_row_and_restores_it_everywhere():
    import numpy as np
    from llama_cpp.llama import LlamaState

    from rag.generation import last_logits_cache

    cache = last_logits_cache(1 << 20)
    scores = np.arange(512 * 4, dtype=np.single).reshape(512, 4)
    state = LlamaState(np.array([1, 2, 3], dtype=np.intc), scores, 3, b"kv", 2, 0)
    cache[(1, 2, 3)] = state
    kept = cache[(1, 2, 3, 4)]  # the longest cached prefix of a longer prompt
    assert kept.scores.shape == (1, 4) and (kept.scores[0] == scores[-1]).all()
    assert kept.scores.base is None  # its own memory, not a view keeping the 512 rows alive
    buffer = np.zeros((512, 4), dtype=np.single)
    buffer[: kept.n_tokens, :] = kept.scores  # what Llama.load_state does with it
    assert (buffer[kept.n_tokens - 1] == scores[-1]).all()
