"""schemathesis against the generated OpenAPI document, through the local gateway (real HTTP, the
JWT authorizer, the functions in their worker processes, PostgreSQL), with every check enabled:
no 5xx, status codes, content types, headers and bodies as documented, invalid data rejected,
valid data accepted, the authorizer not ignored, unsupported methods refused.

The operations are those of the committed document (functions/docs/openapi.json, kept fresh by
tests/unit/test_openapi_docs.py); the cases come from the live document the gateway serves. Each
operation gets ``FUZZ_MAX_EXAMPLES`` positive and as many negative cases (schemathesis' pytest
plugin does not run on this pytest, so hypothesis drives the strategies directly). At least 1,000
generated requests in all: asserted at the end and printed."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from tests.conftest import ROOT

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "75"))
DOC = json.loads((ROOT / "functions" / "docs" / "openapi.json").read_text())
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOC["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
]
# (operation, mode): an operation without parameters or body has no invalid input to generate
CASES = [
    (m, p, mode)
    for m, p in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or DOC["paths"][p][m.lower()].get("parameters")
    or "requestBody" in DOC["paths"][p][m.lower()]
]
# Booking writes have rules no JSON schema states (at least MIN_LEAD_HOURS ahead, an existing
# local time in the zone, a known zone, a local time without offset): schema-valid bodies
# are mostly refused with a documented 422, so "valid data accepted" does not apply to them.
# The same for the search's ``cursor``: an opaque cursor only this API hands out (the history's
# ``before`` has a documented pattern that every one of its cursors matches); and for
# availability's and the search's dates and zones (a known IANA zone, a real calendar date, `to`
# not before `from`, a range within the calendar).
BUSINESS_RULES = {
    ("POST", "/bookings"),
    ("PATCH", "/bookings/{booking_id}"),
    ("GET", "/availability"),
    ("POST", "/bookings/search"),
}


def unstorable(value) -> bool:
    """Text PostgreSQL cannot store (NUL) or that is not Unicode (a lone surrogate, which JSON's
    ``\\udXXX`` escapes can carry): the API refuses it with a 422, which JSON Schema cannot state."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(unstorable(v) for v in value)
    return False


SENT: Counter = Counter()
_lock = threading.Lock()


# Schema-valid data may still name a booking or conversation that does not exist (404) or a slot
# that is full (409): documented answers to well-formed requests, not rejections of valid data.
# A body too large for the function is refused with 413 before any validation: a rejection too.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""


@pytest.fixture(scope="module")
def api_schema(rel):
    return schemathesis.openapi.from_url(f"{rel.stack.url}/openapi.json", config=SchemathesisConfig.from_str(CONFIG))


@pytest.fixture(scope="module")
def checks():
    st_checks.load_all_checks()
    return list(st_checks.CHECKS.get_all())


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_every_operation_answers_as_documented(api_schema, checks, rel, method, path, mode):
    operation = api_schema[path][method]
    headers = rel.headers()
    if (method, path) in BUSINESS_RULES:
        checks = [c for c in checks if c.__name__ != "positive_data_acceptance"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(headers=headers, timeout=30)
        with _lock:
            SENT[f"{method} {path}"] += 1
        assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:300])
        these = checks
        if unstorable([case.body, case.query, case.path_parameters, case.headers]):
            # JSON-RPC refuses with 400; the authorizer (a generated header breaking the token) before it
            refusals = (400, 401, 403) if path == "/mcp" else (401, 403, 404, 413, 422)
            assert response.status_code in refusals, (case.as_curl_command(), response.status_code)
            these = [c for c in checks if c.__name__ != "positive_data_acceptance"]
        if response.status_code == 422 and "idempotency_key_reused" in response.text:
            # the generator reuses header values: a key sent before with another body is refused by
            # contract (documented 422), though the request alone is valid
            these = [c for c in these if c.__name__ != "positive_data_acceptance"]
        case.validate_response(response, checks=these, headers=headers)

    run()


def test_at_least_1000_generated_requests_were_sent():
    total = sum(SENT.values())
    print(f"\nschemathesis: {total} generated requests over {len(SENT)} operations: {dict(SENT)}")
    assert len(SENT) == len(OPERATIONS) and total >= 1000
