"""Test doubles for the three seams: a hand-checkable embedder and a scripted generator.

Both are deterministic; the scripted generator records every prompt it receives.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rag.lexical import tokenize


class HashEmbedder:
    """Hashed bag of words: each content word (after `rag.lexical.tokenize`) adds 1 to one of
    `dim` buckets; vectors are L2-normalised. Texts sharing no words have cosine 0."""

    def __init__(self, dim: int = 512) -> None:
        self.name = f"fake-hash-{dim}"
        self.dim = dim
        self.calls = 0

    def _bucket(self, word: str) -> int:
        return int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % self.dim

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in tokenize(t):
                out[i, self._bucket(w)] += 1.0
            n = np.linalg.norm(out[i])
            if n:
                out[i] /= n
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class ScriptedGenerator:
    """Replies from a queue (then `default`), streaming word by word; `prompts` records the
    messages of every call, so tests can assert what the model was shown."""

    supports_opening_floor = False

    def __init__(
        self,
        replies: list[str] | None = None,
        default: str = "I can't find that in the documents.",
        per_word_s: float = 0.0,
    ) -> None:
        self.name = "scripted"
        self.per_word_s = per_word_s  # a pause before each word, to tell when things arrive
        self.replies = list(replies or [])
        self.default = default
        self.prompts: list[list[dict[str, str]]] = []

    def _next(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append(messages)
        return self.replies.pop(0) if self.replies else self.default

    def generate(self, messages, max_tokens: int = 300, temperature: float = 0.0) -> str:
        return self._next(messages)

    def stream(self, messages, max_tokens: int = 300, temperature: float = 0.0, opening_floor=None) -> Iterator[str]:
        text = self._next(messages)
        words = text.split(" ")
        for i, w in enumerate(words):
            time.sleep(self.per_word_s)
            yield w if i == len(words) - 1 else w + " "


DOCS = {
    "openai-deal": """---
title: "UK signs AI deal with OpenAI"
publisher: "Test Desk"
date: 2025-07-22
source_url: "https://example.org/openai-deal"
licence: "test"
---

# UK signs AI deal with OpenAI

The government signed a partnership with OpenAI to use AI in public services.

## Sectors

OpenAI may provide technology to education, defence, security and justice.

## Staff

OpenAI will expand its London office, which employs over 100 staff.
""",
    "cohere-mou": """---
title: "Memorandum with Cohere"
publisher: "Test Department"
date: 2025-06-16
source_url: "https://example.org/cohere"
licence: "test"
---

# Memorandum with Cohere

Cohere will explore data centres in Canada and the United Kingdom.

The memorandum is not legally binding.
""",
    "skills-plan": """---
title: "Skills plan"
publisher: "Test Department"
date: 2025-01-13
source_url: ""
licence: "test"
---

# Skills plan

The plan aims to train 7.5 million workers in AI skills by 2030.
""",
}


def write_corpus(root: Path) -> Path:
    """Write the three small test documents (plus a README the loader must skip) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for doc_id, text in DOCS.items():
        (root / f"{doc_id}.md").write_text(text, encoding="utf-8")
    (root / "README.md").write_text("# not a document\n", encoding="utf-8")
    return root


class PacedGenerator:
    """A slow model for stop-and-timeout tests: streams `pieces` words, sleeping `per_piece_s`
    before each, one generation at a time (holding its own lock, as the real backends do).

    `log` records, in order and with `time.monotonic()` stamps, ("start", n) when generation n
    begins (its prefill) and ("piece", n) when it begins a piece; `busy` is true while one runs.
    """

    supports_opening_floor = False

    def __init__(self, per_piece_s: float = 0.1, pieces: int = 20) -> None:
        self.name = "paced"
        self.per_piece_s = per_piece_s
        self.pieces = pieces
        self.log: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self._running = 0  # calls in `stream`, waiting for the lock or generating

    @property
    def busy(self) -> bool:
        return self._running > 0

    def events(self, kind: str, after: float = float("-inf")) -> list[int]:
        """The generation numbers of the `kind` events stamped after `after`."""
        return [n for k, n, t in list(self.log) if k == kind and t > after]

    def generate(self, messages, max_tokens: int = 300, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def stream(self, messages, max_tokens: int = 300, temperature: float = 0.0, opening_floor=None) -> Iterator[str]:
        with self._count:
            self._running += 1
        try:
            with self._lock:
                n = len(self.events("start"))
                self.log.append(("start", n, time.monotonic()))
                for i in range(min(self.pieces, max_tokens)):
                    self.log.append(("piece", n, time.monotonic()))
                    time.sleep(self.per_piece_s)
                    yield f"w{i} "
        finally:
            with self._count:
                self._running -= 1


class AliasingMilvus:
    """A real Milvus Lite client given the collection aliases of a Milvus server (Lite has none),
    recording every call as `(method, args, kwargs)` in `calls`.

    The alias rules are Milvus 2.5's: an alias names one collection and stands for it in every call
    that takes a collection name; it cannot share a collection's name; `create_alias` refuses an alias
    that exists and `alter_alias` one that does not; a collection cannot be dropped through an alias,
    nor while an alias names it. `fail_on` makes the first call of that method raise, once. With
    `aliases=False` the alias calls go to Lite, which answers them UNIMPLEMENTED: a recording Lite.
    """

    def __init__(self, client, fail_on: str = "", aliases: bool = True) -> None:
        self.client = client
        self.aliases: dict[str, str] = {}
        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail_on = fail_on
        self.has_aliases = aliases

    @staticmethod
    def _error(message: str) -> Exception:
        from pymilvus.exceptions import MilvusException

        return MilvusException(code=1, message=message)

    def _record(self, name: str, args: tuple, kwargs: dict) -> None:
        self.calls.append((name, args, kwargs))
        if name == self.fail_on:
            self.fail_on = ""
            raise self._error(f"injected failure of {name}")

    def called(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, kw) for n, a, kw in self.calls if n == name]

    def create_alias(self, collection_name: str, alias: str, **_) -> None:
        self._record("create_alias", (collection_name, alias), {})
        if not self.has_aliases:
            return self.client.create_alias(collection_name, alias)
        if alias in self.aliases:
            raise self._error(f"alias {alias} already exists")
        if self.client.has_collection(alias):
            raise self._error(f"alias {alias} conflicts with a collection of that name")
        if not self.client.has_collection(collection_name):
            raise self._error(f"collection {collection_name} not found")
        self.aliases[alias] = collection_name

    def alter_alias(self, collection_name: str, alias: str, **_) -> None:
        self._record("alter_alias", (collection_name, alias), {})
        if not self.has_aliases:
            return self.client.alter_alias(collection_name, alias)
        if alias not in self.aliases:
            raise self._error(f"alias {alias} not found")
        if not self.client.has_collection(collection_name):
            raise self._error(f"collection {collection_name} not found")
        self.aliases[alias] = collection_name

    def describe_alias(self, alias: str, **_) -> dict:
        self._record("describe_alias", (alias,), {})
        if not self.has_aliases:
            return self.client.describe_alias(alias)
        if alias not in self.aliases:
            raise self._error(f"alias not found[database=default][alias={alias}]")
        return {"alias": alias, "collection_name": self.aliases[alias], "db_name": "default"}

    def drop_collection(self, collection_name: str, **kwargs) -> None:
        self._record("drop_collection", (collection_name,), kwargs)
        if collection_name in self.aliases:
            raise self._error(f"cannot drop the collection via alias {collection_name}")
        if collection_name in self.aliases.values():
            raise self._error(f"collection {collection_name} has aliases: drop them first")
        self.client.drop_collection(collection_name, **kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._record(name, args, kwargs)
            if args and isinstance(args[0], str):
                args = (self.aliases.get(args[0], args[0]), *args[1:])
            if isinstance(kwargs.get("collection_name"), str):
                kwargs["collection_name"] = self.aliases.get(kwargs["collection_name"], kwargs["collection_name"])
            return attr(*args, **kwargs)

        return call
