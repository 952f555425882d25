"""Schemathesis fuzzes the HTTP API from its own OpenAPI schema, over the fake pipeline, with
every check it has (no 5xx, only documented status codes, responses that match their schemas,
invalid input refused, valid input accepted, ...). A bounded, derandomized number of examples per
route and mode keeps it in the normal fast run and makes a failure a change in the code, not luck.

(Schemathesis's own pytest plugin does not run under pytest 9, so the operations are looped here.)
"""

from __future__ import annotations

import pytest

from rag.library import DocumentLibrary
from rag.serve.http_api import create_app

schemathesis = pytest.importorskip("schemathesis", reason="pinned in requirements.txt; `make setup` installs it")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402 - schemathesis brings it
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

EXAMPLES = 25  # per route and mode
# Routes where some schema-valid requests are rightly refused with 400, by a rule JSON Schema cannot
# state; the check that schema-valid data is accepted is skipped there, every other check still runs.
BEYOND_THE_SCHEMA = {
    "POST /api/documents": "whether a file is accepted depends on its content (tests/test_library.py)",
    "POST /v1/chat/completions": "the last message must be the user's, with text (tests/serve/test_http_api.py)",
}


@pytest.fixture
def api_schema(make_pipeline, settings):
    pipe, _ = make_pipeline()
    app = create_app(pipe, DocumentLibrary(pipe.retriever, settings), settings)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def failures_of(operation, mode: GenerationMode) -> list[str]:
    """Run `EXAMPLES` cases of one operation; the first failing case's report, if any."""
    found: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        skip = [positive_data_acceptance] if operation.label in BEYOND_THE_SCHEMA else []
        case.call_and_validate(excluded_checks=skip)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (a route without parameters, in negative mode)
        pass
    except Exception as e:  # a check failed: keep its report (with the curl line to replay it)
        found.append(f"{operation.label} ({mode.value} data): {e}")
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_api_conforms_to_its_schema(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8  # every route is in the schema
    failures = [f for op in operations for f in failures_of(op, mode)]
    assert not failures, "\n\n".join(failures)
