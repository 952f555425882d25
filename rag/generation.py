"""The `Generator` seam and its three backends: llama-cpp-python, transformers, and any
OpenAI-compatible chat server.

Each backend takes chat messages and returns text, greedy by default so answers are
reproducible; `stream` yields text pieces as they are generated, and a backend that sees token
probabilities applies an `OpeningFloor` (the others ignore it). Backends do not know about
passages or citations. `make_generator` is the one factory that picks a backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rag.errors import GenerationError, ModelMissingError
from rag.settings import Settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class OpeningFloor:
    """Let a reply open with the first token of `text` only when the model gives that opening a
    probability of at least `min_p`; below it, the token is banned for the first step.

    The pipeline uses it on the refusal sentence: a small model often starts to refuse while
    it is unsure (p = 0.2-0.3 here) although a passage answers the question; banning that weak
    opening lets it answer, and the citation check still removes what the passages do not support.

    One floor serves one call: the backend records the opening's probability in `seen_p`, so what
    one call measured can never be read by another (a backend is shared by every request).
    """

    text: str
    min_p: float
    seen_p: float | None = field(default=None, compare=False)  # set by the backend at the first step

    def apply(self, scores: np.ndarray, token: int) -> float:
        """Ban `token` in `scores` (one step's logits, changed in place) when its probability is
        below `min_p`; return that probability.

        `OpeningFloor("No", 0.5).apply(np.array([0.0, 0.0, 2.0]), 0)` -> 0.106..., and scores[0] is -inf.
        """
        s = scores.astype(np.float64)
        e = np.exp(s - s.max())
        p = float(e[token] / e.sum())
        if p < self.min_p:
            scores[token] = -np.inf
        self.seen_p = p
        return p


@runtime_checkable
class Generator(Protocol):
    """A chat model.

    `generate` returns the whole reply and `stream` yields it in pieces (a backend that cannot
    stream yields it as one piece). `supports_opening_floor` says whether the backend applies an
    `OpeningFloor`; `stream_text` passes one only to those that do.
    """

    name: str
    supports_opening_floor: bool

    def generate(self, messages: Messages, max_tokens: int = 300, temperature: float = 0.0) -> str: ...

    def stream(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> Iterator[str]: ...


def stream_text(
    gen: Generator, messages: Messages, max_tokens: int, temperature: float, opening_floor: OpeningFloor | None = None
) -> Iterator[str]:
    """Pieces of the reply as they come; `opening_floor` is dropped for backends that cannot apply it."""
    if opening_floor is not None and gen.supports_opening_floor:
        yield from gen.stream(messages, max_tokens=max_tokens, temperature=temperature, opening_floor=opening_floor)
    else:
        yield from gen.stream(messages, max_tokens=max_tokens, temperature=temperature)


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python, with the chat template stored in the file."""

    supports_opening_floor = True

    def __init__(
        self, model_path: Path, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0, cache_mb: int = 256
    ) -> None:
        from llama_cpp import Llama

        if not Path(model_path).is_file():
            raise ModelMissingError(f"model file {model_path} does not exist")
        self.name = Path(model_path).stem
        self.seed = seed
        # llama-cpp-python defaults to half the cores for decoding; on a 2-core machine that is one.
        threads = n_threads or os.cpu_count() or 1
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelMissingError(f"llama.cpp could not load {model_path}: {e}") from e
        if cache_mb > 0:
            # llama.cpp reuses the prompt prefix it read last; a follow-up's rewrite call replaces that
            # prefix, so keep recent states in RAM and restore the one sharing the longest prefix
            # (the system prompt and worked examples) instead of reading it again.
            self._llm.set_cache(last_logits_cache(cache_mb << 20))
        self._lock = threading.Lock()  # one llama context serves one request at a time

    def _floor_processor(self, floor: OpeningFloor):
        from llama_cpp import LogitsProcessorList

        token = self._llm.tokenize(floor.text.encode(), add_bos=False, special=False)[0]
        seen = False

        def process(input_ids, scores):
            nonlocal seen
            if not seen:  # only the first generated token
                seen = True
                floor.apply(scores, token)  # records floor.seen_p, this call's own
            return scores

        return LogitsProcessorList([process])

    def _kwargs(self, max_tokens: int, temperature: float) -> dict:
        kw: dict = {"max_tokens": max_tokens, "temperature": temperature, "seed": self.seed}
        if temperature <= 0:
            kw.update(temperature=0.0, top_k=1)  # greedy
        return kw

    def generate(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> str:
        return "".join(self.stream(messages, max_tokens, temperature, opening_floor))

    def stream(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> Iterator[str]:
        kw = self._kwargs(max_tokens, temperature)
        with self._lock:
            if opening_floor is not None:
                kw["logits_processor"] = self._floor_processor(opening_floor)
            try:
                parts = self._llm.create_chat_completion(messages=messages, stream=True, **kw)
                # Closed with this stream: llama.cpp then stops after the token it is computing.
                with contextlib.closing(parts):
                    for part in parts:
                        text = part["choices"][0]["delta"].get("content")
                        if text:
                            yield text
            except ValueError as e:  # e.g. the prompt exceeds the context window
                raise GenerationError(f"the model could not answer: {e}") from e


def last_logits_cache(capacity_bytes: int):
    """llama-cpp-python's RAM prompt cache, keeping only the last row of each state's logits.

    A saved state carries the logits of up to `n_batch` prompt tokens (512 x 151,936 floats, 311 MB
    for Qwen) besides the KV cache that the capacity counts. Only the last row can be read: a
    restored prefix is always followed by new tokens, which are evaluated afresh, and a full match
    reads the last row. `load_state` broadcasts the one row back into the logits buffer.
    """
    from llama_cpp import LlamaRAMCache

    class LastLogitsRAMCache(LlamaRAMCache):
        def __setitem__(self, key, value) -> None:
            value.scores = value.scores[-1:].copy()  # a copy: a view would keep the whole buffer alive
            super().__setitem__(key, value)

    return LastLogitsRAMCache(capacity_bytes=capacity_bytes)


class TransformersGenerator:
    """A causal LM through transformers: a local Hugging Face folder, or a GGUF file
    (dequantised by transformers' GGUF loader, so it needs several times the file's size in RAM)."""

    supports_opening_floor = True

    def __init__(self, model_path: Path, n_threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not path.exists():
            raise ModelMissingError(f"model {path} does not exist")
        if n_threads:
            torch.set_num_threads(n_threads)
        kw: dict = {"local_files_only": True}
        folder = path
        if path.is_file():  # a GGUF file
            folder, kw["gguf_file"] = path.parent, path.name
        self.name = path.stem if path.is_file() else path.name
        try:
            self._tok = AutoTokenizer.from_pretrained(str(folder), **kw)
            self._model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kw)
        except (OSError, ValueError) as e:
            raise ModelMissingError(f"transformers could not load {path}: {e}") from e
        self._model.eval()
        self._lock = threading.Lock()

    def _inputs(self, messages: Messages):
        return self._tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _floor_processor(self, floor: OpeningFloor):
        """A logits processor applying `floor` at the first generated step, as llama.cpp's does."""
        from transformers import LogitsProcessor, LogitsProcessorList

        token = self._tok.encode(floor.text, add_special_tokens=False)[0]

        class _Floor(LogitsProcessor):
            def __init__(self) -> None:
                self.seen = False

            def __call__(self, input_ids, scores):
                if not self.seen:
                    self.seen = True
                    row = scores[0].detach().float().numpy().copy()
                    floor.apply(row, token)  # records floor.seen_p, this call's own
                    if row[token] == -np.inf:
                        scores[:, token] = -float("inf")
                return scores

        return LogitsProcessorList([_Floor()])

    def _gen_kwargs(self, max_tokens: int, temperature: float) -> dict:
        kw: dict = {"max_new_tokens": max_tokens, "pad_token_id": self._tok.pad_token_id or self._tok.eos_token_id}
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def generate(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> str:
        return "".join(self.stream(messages, max_tokens, temperature, opening_floor))

    def stream(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        with self._lock:
            inputs = self._inputs(messages)
            kw = self._gen_kwargs(max_tokens, temperature)
            if opening_floor is not None:
                kw["logits_processor"] = self._floor_processor(opening_floor)
            streamer = TextIteratorStreamer(self._tok, skip_prompt=True, skip_special_tokens=True)
            errors: list[BaseException] = []
            halt = threading.Event()  # set when this stream is closed early: generation stops at the next token
            kw["stopping_criteria"] = halt_criteria(halt)

            def run() -> None:
                try:
                    with torch.inference_mode():
                        self._model.generate(**inputs, streamer=streamer, **kw)
                except BaseException as e:  # surfaced to the caller below
                    errors.append(e)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                for text in streamer:
                    if text:
                        yield text
            finally:
                # Left early, the model would go on generating for nobody, beside the next request.
                halt.set()
                worker.join()
            if errors:
                raise GenerationError(f"the model failed while answering: {errors[0]}") from errors[0]


def halt_criteria(halt: threading.Event):
    """transformers stopping criteria that end the generation at the first step after `halt` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Halt()])


class OpenAICompatGenerator:
    """Any OpenAI-compatible chat server (vLLM, llama.cpp server, TGI, Ollama) by base URL."""

    supports_opening_floor = False

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 300.0) -> None:
        import httpx

        self.name = model
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _body(self, messages: Messages, max_tokens: int, temperature: float, stream: bool) -> dict:
        return {
            "model": self.name,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": 0,
            "stream": stream,
        }

    def _fail(self, e: Exception) -> GenerationError:
        return GenerationError(f"the model server at {self.base_url} failed: {e}")

    def generate(self, messages: Messages, max_tokens: int = 300, temperature: float = 0.0) -> str:
        import httpx

        try:
            r = self._client.post("/chat/completions", json=self._body(messages, max_tokens, temperature, False))
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, KeyError, ValueError) as e:
            raise self._fail(e) from e

    def stream(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,  # not applied: the server shows no token probabilities
    ) -> Iterator[str]:
        import httpx

        body = self._body(messages, max_tokens, temperature, True)
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    choices = json.loads(data).get("choices") or [{}]
                    text = (choices[0].get("delta") or {}).get("content")
                    if text:
                        yield text
        except (httpx.HTTPError, KeyError, ValueError) as e:
            raise self._fail(e) from e


class NoGenerator:
    """Stands in where only retrieval is needed; answering with it is an error, not a guess."""

    name = "none"
    supports_opening_floor = False

    def generate(self, messages: Messages, max_tokens: int = 300, temperature: float = 0.0) -> str:
        raise GenerationError("no answer model is loaded in this retrieval-only run")

    def stream(
        self,
        messages: Messages,
        max_tokens: int = 300,
        temperature: float = 0.0,
        opening_floor: OpeningFloor | None = None,
    ) -> Iterator[str]:
        yield self.generate(messages, max_tokens, temperature)


def resolve_model_path(settings: Settings, progress: bool = True) -> Path:
    """The model file or folder the settings name: `model_path`, else the packaged `model`."""
    if settings.model_path is not None:
        return settings.model_path
    from rag.packaged import ensure_gguf

    return ensure_gguf(settings.model, settings.cache_dir, progress=progress)


def make_generator(settings: Settings) -> Generator:
    """Build the backend the settings ask for (the only place that switches on `backend`).

    Raises:
        ModelMissingError: the model cannot be found or loaded.
    """
    if settings.backend == "openai":
        return OpenAICompatGenerator(
            settings.openai_base_url, settings.openai_model, settings.openai_api_key.get_secret_value()
        )
    path = resolve_model_path(settings)
    if settings.backend == "transformers":
        return TransformersGenerator(path, n_threads=settings.n_threads)
    return LlamaCppGenerator(
        path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, seed=settings.seed, cache_mb=settings.prompt_cache_mb
    )
