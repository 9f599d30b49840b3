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

import os
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode

from tests.support.fuzz import DOC, OPERATIONS, answer_checks

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))  # 1,203 requests: above the 1,000
# (operation, mode): an operation without parameters or body has no invalid input to generate
CASES = [
    (m, p, mode)
    for m, p in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or DOC["paths"][p][m.lower()].get("parameters")
    or "requestBody" in DOC["paths"][p][m.lower()]
]
SENT: Counter = Counter()
_lock = threading.Lock()


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_every_operation_answers_as_documented(api_schema, checks, rel, method, path, mode):
    operation = api_schema[path][method]
    headers = rel.headers()

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
        case.validate_response(response, checks=answer_checks(checks, method, path, case, response), headers=headers)

    run()


def test_at_least_1000_generated_requests_were_sent():
    total = sum(SENT.values())
    print(f"\nschemathesis: {total} generated requests over {len(SENT)} operations: {dict(SENT)}")
    assert len(SENT) == len(OPERATIONS) and total >= 1000
