"""Schemathesis fuzzes the whole app as `make run` serves it (the page mounted beside the API, under
uvicorn), from its own OpenAPI schema, over the fake pipeline: every phase and every check it has,
as `st run --checks all -n 8` runs them (no 5xx, only documented statuses, responses that match
their schemas, invalid input refused, valid input accepted, undeclared methods answered 405 with
`Allow`, a response time limit, ...), once on an open server and once with keys. With keys, every
operation but `/healthz` also answers 401 to a request without one; and the schema and the server
agree on which text is blank. A fixed seed and a bounded number of examples per operation keep it
in the normal fast run (about half a minute) and make a failure a change in the code, not luck.

(Schemathesis's own pytest plugin does not run under pytest 9, so its engine is driven here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from rag.library import DocumentLibrary
from rag.serve.http_api import create_app
from rag.serve.server import WarmupApp, build_app, uvicorn_options
from tests.live import EchoGenerator, serve

schemathesis = pytest.importorskip("schemathesis", reason="pinned in requirements.txt; `make setup` installs it")
import hypothesis  # noqa: E402 - schemathesis brings it
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.engine import events, from_schema  # noqa: E402

jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="schemathesis's schema validator")

EXAMPLES = 8  # per operation and phase, as the issue's `st run -n 8`
SEED = 1
# Schemathesis's default, for every operation: the fake generator answers in milliseconds. (A real
# model takes 5-25 s an answer on 2 cores, more when queued, bounded by RAG_REQUEST_TIMEOUT_S.)
MAX_RESPONSE_S = 10.0
# Operations where some schema-valid requests are rightly refused with 400, by a rule JSON Schema
# cannot state; the check that schema-valid data is accepted is off there, every other check runs.
BEYOND_THE_SCHEMA = {
    "POST /api/documents": "whether a file is accepted depends on its name and content (tests/test_library.py)",
    "POST /v1/chat/completions": "the last message must be the user's, with text: JSON Schema cannot "
    "single out an array's last item (tests/serve/test_http_api.py)",
}
KEYS = {"api_keys": SecretStr("reader"), "admin_keys": SecretStr("admin")}
ADMIN = {"Authorization": "Bearer admin"}
OPEN_BY_DESIGN = {"GET /healthz"}  # load balancers and the loading page poll it without a key


@pytest.fixture
def full_app(make_pipeline, settings) -> Callable[..., Any]:
    """`with full_app(**settings_changes) as url:` the whole app (API and page) on a port."""

    @contextmanager
    def start(**changes: Any) -> Iterator[str]:
        s = settings.model_copy(update=changes)
        pipe, _ = make_pipeline()
        pipe.generator = EchoGenerator()
        server = WarmupApp()
        options = {k: v for k, v in uvicorn_options(s).items() if k not in ("host", "port")}
        with serve(server, **options) as url:
            server.ready(build_app(pipe, s, DocumentLibrary(pipe.retriever, s)))
            yield url

    return start


def load_schema(url: str, headers: dict[str, str] | None = None, fetch_with: dict[str, str] | None = None) -> Any:
    """The app's schema (fetched with `headers`, or `fetch_with`), with a config that runs every
    check in every phase and sends `headers` with each request."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers or {},
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {"enabled": True, "max_response_time": MAX_RESPONSE_S},
            "operations": [
                {"include-name": label, "checks": {"positive_data_acceptance": {"enabled": False}}}
                for label in BEYOND_THE_SCHEMA
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, headers=fetch_with or headers or {})


def fuzz(schema: Any) -> tuple[list[str], set[str], dict[str, set[int]]]:
    """Run schemathesis's engine as `st run` does. Returns the failures (each with a curl to replay
    it), the names of the checks that ran, and the statuses each operation answered with."""
    failures: list[str] = []
    ran: set[str] = set()
    statuses: dict[str, set[int]] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError | events.NonFatalError):
            failures.append(f"{getattr(event, 'label', '')} error: {getattr(event, 'info', event)}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        for interaction in event.recorder.interactions.values():
            if interaction.response is not None:
                statuses.setdefault(event.recorder.label, set()).add(interaction.response.status_code)
        for checks in event.recorder.checks.values():
            for check in checks:
                ran.add(check.name)
                if (info := check.failure_info) is not None:
                    failures.append(
                        f"{event.recorder.label} [{event.phase}] {info.failure.title}: {info.failure.message}\n{info.code_sample}"
                    )
    return sorted(set(failures)), ran, statuses


@pytest.mark.parametrize("keys", [False, True], ids=["open", "with-keys"])
def test_the_whole_app_conforms_to_its_schema(full_app, keys):
    with full_app(**(KEYS if keys else {})) as url:
        schema = load_schema(url, ADMIN if keys else None)
        assert len(list(schema.get_all_operations())) >= 10  # every route is in the schema
        failures, ran, statuses = fuzz(schema)
    assert not failures, "\n\n".join(failures)
    assert {"not_a_server_error", "status_code_conformance", "response_schema_conformance", "unsupported_method"} <= ran
    assert {"positive_data_acceptance", "negative_data_rejection", "max_response_time"} <= ran
    for label in (
        "POST /api/ask",
        "GET /api/search",
        "POST /v1/chat/completions",
        "GET /metrics",
        "POST /api/feedback",
    ):
        assert any(200 <= s < 300 for s in statuses[label]), (label, statuses[label])  # the key let it in


def test_with_keys_no_operation_answers_without_one(full_app):
    """One schema-valid request per operation, sent with the admin key and then without any key."""
    one_example = hypothesis.settings(
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    answers = {}
    with full_app(**KEYS) as url:
        schema = load_schema(url, fetch_with=ADMIN)
        for result in schema.get_all_operations():
            operation = result.ok()
            case = hypothesis.find(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE), lambda _: True, settings=one_example
            )
            keyed = case.call(base_url=url, headers=ADMIN)
            bare = case.call(base_url=url)
            assert "authorization" not in {h.lower() for h in bare.request.headers}
            answers[operation.label] = (keyed.status_code, bare.status_code, bare.headers.get("www-authenticate"))
    assert len(answers) >= 10
    for label, (keyed, bare, challenge) in answers.items():
        assert keyed != 401, (label, keyed)
        if label in OPEN_BY_DESIGN:
            assert bare == 200, (label, bare)
        else:
            assert (bare, challenge) == (401, ["Bearer"]), (label, bare, challenge)


def test_the_schema_and_the_server_agree_on_what_is_blank(make_pipeline, settings):
    """Where fuzzing meets a rule only by luck: a query of characters `str.strip()` removes ("\\x1e")
    passed the schema's old `\\S` (to ECMA and Rust regexes), then was refused as empty."""
    pipe, _ = make_pipeline()
    client = TestClient(create_app(pipe, DocumentLibrary(pipe.retriever, settings), settings))
    (q,) = [
        p for p in client.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"] if p["name"] == "q"
    ]
    schema_valid = jsonschema_rs.validator_for(q["schema"]).is_valid
    for text in [chr(i) for i in range(0x110000) if chr(i).isspace()] + ["a", "\ufeff", " x\x1e"]:
        accepted = client.get("/api/search", params={"q": text}).status_code == 200
        assert accepted == schema_valid(text), repr(text)
