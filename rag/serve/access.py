"""Which keys open what: API keys (`RAG_API_KEYS`) for asking, searching and reading, admin keys
(`RAG_ADMIN_KEYS`) for adding and removing documents. `rag.serve.admission` applies them to
every door (the page, the API, `/v1`).

With no keys at all everything is open (one person on their own machine). With API keys only,
any of them may also add and remove documents. With admin keys, only those may, and they also
work wherever an API key does. With API keys set, the page asks for one too; `/healthz` stays open.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rag.settings import Settings

NEEDS_KEY = "This server needs an API key: send the header `Authorization: Bearer <key>`."
NEEDS_ADMIN_KEY = "Adding and removing documents needs an admin key: send `Authorization: Bearer <admin key>`."


def _keys(value: str) -> frozenset[str]:
    return frozenset(k.strip() for k in value.split(",") if k.strip())


def key_matches(given: str, keys: frozenset[str]) -> bool:
    """Whether `given` is one of `keys`, in constant time. Compared as bytes, so a key with
    non-ASCII characters is simply wrong (`secrets.compare_digest` refuses such str)."""
    raw = given.strip().encode("utf-8", "surrogateescape")
    return any(secrets.compare_digest(raw, k.encode("utf-8")) for k in keys)


@dataclass(frozen=True)
class Access:
    """The keys that open reading and writing; an empty set means open to all."""

    readers: frozenset[str]
    writers: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        api = frozenset(settings.api_key_set())
        admin = _keys(settings.admin_keys.get_secret_value())
        return cls(readers=api | admin if api else frozenset(), writers=admin or api)

    @property
    def operators(self) -> frozenset[str]:
        """The keys for the schema and the metrics: any key, when there are keys."""
        return self.readers | self.writers

    def may_write(self, key: str) -> bool:
        return not self.writers or key_matches(key, self.writers)
