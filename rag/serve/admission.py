"""One admission point for every door into the app (the page, `/api`, `/v1`, and any added later):
who is asking, whether they may, how often, and whether the model has room for them.

`Admission` holds the keys (`Access`), the page's sign-in sessions, the count of failed key
attempts per address, the rate limit, and the one `AnswerGate` (queue and time limit) in front
of the model. The API calls it from FastAPI dependencies, the page from its Gradio handlers and
from Gradio's `auth_dependency`; both see the same `Identity` for the same key, whatever the
spelling of its header. This module routes nothing and never generates.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from rag.errors import RateLimitedError, UnauthorizedError
from rag.serve.access import NEEDS_ADMIN_KEY, NEEDS_KEY, Access, key_matches
from rag.serve.limits import RateLimiter
from rag.serve.streaming import AnswerGate
from rag.settings import Settings

SESSION_COOKIE = "rag_session"
SESSION_TTL_S = 12 * 3600.0  # a page sign-in lasts a working day
MAX_SESSIONS = 10_000
KEY_FAILURES = 10  # wrong keys one address may try...
KEY_FAILURE_WINDOW_S = 60.0  # ...in this many seconds before every key it sends is refused for a while
TOO_MANY_WRONG_KEYS = "Too many wrong keys from this address; try again in {s} s."


@dataclass(frozen=True)
class Identity:
    """Who sent a request, as the key check resolved it.

    `name` is what the rate limit counts and the page's Gradio user is: `"key:<12 hex>"` for a
    reader key, `"admin:<12 hex>"` for an admin key (hashes, never the key), `"addr:<host>"` for a
    request with no key. `Identity.parse(i.name) == i`.
    """

    name: str

    @property
    def keyed(self) -> bool:
        return not self.name.startswith("addr:")

    @property
    def admin(self) -> bool:
        return self.name.startswith("admin:")

    @classmethod
    def of_key(cls, key: str, admin: bool) -> Identity:
        digest = hashlib.sha256(key.strip().encode("utf-8", "surrogateescape")).hexdigest()[:12]
        return cls(f"{'admin' if admin else 'key'}:{digest}")

    @classmethod
    def of_address(cls, host: str) -> Identity:
        return cls(f"addr:{host}")

    @classmethod
    def parse(cls, name: str | None, host: str = "") -> Identity:
        """The identity a name stands for; no name (an open page) is the address's."""
        return cls(name) if name and name.partition(":")[0] in ("key", "admin", "addr") else cls.of_address(host)


class KeyThrottle:
    """Refuses every key from an address that sent `limit` wrong ones within `window_s` seconds,
    until the oldest of them is that old: guessing keys costs a minute per ten guesses."""

    def __init__(
        self,
        limit: int = KEY_FAILURES,
        window_s: float = KEY_FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures = RateLimiter(limit, window_s, clock)
        self._lock = threading.Lock()

    def check(self, host: str) -> None:
        """Raises: RateLimitedError while `host` is refused."""
        with self._lock:
            wait = self._failures.wait(host)
        if wait > 0:
            raise RateLimitedError(math.ceil(wait), TOO_MANY_WRONG_KEYS.format(s=math.ceil(wait)))

    def failed(self, host: str) -> None:
        with self._lock:
            self._failures.hit(host)


class Sessions:
    """The page's sign-ins: a random token (kept in an HttpOnly cookie) -> the identity its key
    resolved to. In memory: a restart signs everyone out. Bounded; expired ones are forgotten."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._open: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def open(self, identity: Identity) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            if len(self._open) >= MAX_SESSIONS:
                self._open = {t: v for t, v in self._open.items() if v[1] > now}
                while len(self._open) >= MAX_SESSIONS:  # still full: the oldest sign-in goes
                    self._open.pop(next(iter(self._open)))
            self._open[token] = (identity, now + self.ttl_s)
        return token

    def get(self, token: str | None) -> Identity | None:
        if not token:
            return None
        with self._lock:
            found = self._open.get(token)
            if found is None:
                return None
            if found[1] <= self.clock():
                del self._open[token]
                return None
            return found[0]

    def close(self, token: str | None) -> None:
        with self._lock:
            self._open.pop(token or "", None)


class Admission:
    """The keys, sign-ins, failed-key throttle, rate limit and answer gate that every door shares.

    Args:
        access: the reader and writer keys.
        limiter: requests per identity (None: no limit).
        gate: answers generating or waiting for the model at once, and each one's time limit.
    """

    def __init__(
        self,
        access: Access,
        limiter: RateLimiter | None,
        gate: AnswerGate,
        throttle: KeyThrottle | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.access = access
        self.limiter = limiter
        self.gate = gate
        self.throttle = throttle or KeyThrottle()
        self.sessions = sessions or Sessions()
        self._limit_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(
            Access.from_settings(settings),
            RateLimiter.parse(settings.rate_limit),
            AnswerGate(settings.max_queue, settings.request_timeout_s),
        )

    @property
    def page_needs_key(self) -> bool:
        """Whether the page asks for a key before it lists, reads or answers."""
        return bool(self.access.readers)

    def identify(self, authorization: str | None, session: str | None, host: str) -> Identity:
        """Who sent a request: the key in `Authorization: Bearer <key>` (any case of "Bearer", any
        spaces), else the page sign-in in `session`, else the address. A server with no keys
        ignores any key sent (clients such as the OpenAI SDK always send one).

        Raises:
            UnauthorizedError: a key was sent and it is not one of the server's.
            RateLimitedError: this address sent too many wrong keys lately.
        """
        token = bearer(authorization)
        if token is not None and self.access.operators:  # an open server has no keys to check
            self.throttle.check(host)
            identity = self.key_identity(token)
            if identity is None:
                self.throttle.failed(host)
                raise UnauthorizedError(NEEDS_KEY)
            return identity
        return self.sessions.get(session) or Identity.of_address(host)

    def key_identity(self, key: str) -> Identity | None:
        """The identity of a key the server knows, or None (open servers know no key)."""
        if self.access.writers and key_matches(key, self.access.writers):
            return Identity.of_key(key, admin=True)
        if self.access.readers and key_matches(key, self.access.readers):
            return Identity.of_key(key, admin=False)
        return None

    def sign_in(self, key: str, host: str) -> str:
        """Check a key typed into the sign-in form and open a session for it.

        Returns:
            The session token for the cookie.

        Raises:
            RateLimitedError: this address sent too many wrong keys lately.
            UnauthorizedError: the key is wrong.
        """
        self.throttle.check(host)
        identity = self.key_identity(key)
        if identity is None:
            self.throttle.failed(host)
            raise UnauthorizedError("That key is not one of this server's keys.")
        return self.sessions.open(identity)

    def may_read(self, identity: Identity) -> bool:
        return not self.access.readers or identity.keyed

    def may_write(self, identity: Identity) -> bool:
        """Open servers let anyone change documents; with admin keys only an admin may; with API
        keys only, any of them may (each is then a writer's key, so its identity is `admin:`)."""
        return not self.access.writers or identity.admin

    def may_operate(self, identity: Identity) -> bool:
        """The schema and the metrics: any key, when there are keys."""
        return not self.access.operators or identity.keyed

    def require_reader(self, identity: Identity) -> None:
        """Raises: UnauthorizedError when keys are set and `identity` has none."""
        if not self.may_read(identity):
            raise UnauthorizedError(NEEDS_KEY)

    def require_writer(self, identity: Identity) -> None:
        """Raises: UnauthorizedError unless `identity` may add and remove documents."""
        if not self.may_write(identity):
            raise UnauthorizedError(NEEDS_ADMIN_KEY)

    def count(self, identity: Identity) -> None:
        """Count one request against `identity`'s allowance.

        Raises:
            RateLimitedError: over the rate limit (429 with `Retry-After`).
        """
        if self.limiter is None:
            return
        with self._limit_lock:
            wait = self.limiter.hit(identity.name)
        if wait > 0:
            raise RateLimitedError(math.ceil(wait))


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization` header in the Bearer scheme, however it is spaced or cased.

    `bearer("bearer  k1 ")` -> `"k1"`; `bearer("Basic abc")` -> None; `bearer(None)` -> None.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


Role = Literal["reader", "writer", "operator"]


def client_host(request: Request) -> str:
    """The client's address as the server resolved it (forwarded headers only from trusted proxies)."""
    return request.client.host if request.client else ""


def request_identity(admission: Admission, request: Request, page: bool = False) -> Identity:
    """`Admission.identify` for an HTTP request: its `Authorization` header and its address, and on
    the page's routes (`page`) its sign-in cookie. The API takes keys alone, so no other site's
    page can make a signed-in browser call it (see `identify` for errors)."""
    session = request.cookies.get(SESSION_COOKIE) if page else None
    return admission.identify(request.headers.get("authorization"), session, client_host(request))


def page_user(admission: Admission, request: Request) -> str | None:
    """Gradio's `auth_dependency`: the name of the identity using the page (a key in the header, a
    sign-in cookie, or the address), or None to refuse the page's data routes with a 401."""
    try:
        identity = request_identity(admission, request, page=True)
    except (UnauthorizedError, RateLimitedError):
        return None
    return identity.name if admission.may_read(identity) else None


def guard(
    admission: Admission, role: Role = "reader", count: bool = True
) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A FastAPI dependency: resolve the caller's identity, demand the role, and count the request
    against the rate limit (keys first, so a caller without one is told so rather than counted).
    The identity is left in `request.state.identity`.

    Raises:
        UnauthorizedError: no key or a wrong one where one is needed (401).
        RateLimitedError: over the rate limit, or too many wrong keys from this address (429).
    """
    required = {"reader": admission.require_reader, "writer": admission.require_writer}

    async def check(request: Request) -> None:
        identity = request_identity(admission, request)
        if role == "operator":
            if not admission.may_operate(identity):
                raise UnauthorizedError(NEEDS_KEY)
        else:
            required[role](identity)
        if count:
            admission.count(identity)
        request.state.identity = identity

    return check
