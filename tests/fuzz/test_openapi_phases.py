"""schemathesis' examples and coverage phases, through the local gateway, with every check: each
operation's documented examples (filled in where partial), then the coverage phase's deterministic
cases: every boundary of every parameter and body field (lengths, ranges, patterns, enums, formats,
required and optional members), values just outside them, missing and unexpected parameters, other
content types, and undeclared methods. Both phases are deterministic (no random draws): the same
cases on every run, in schemathesis' own order (``create_test``, as its pytest plugin and its CLI
build them; the plugin does not collect from a fixture's stack).

Fuzzing (random positive and negative data) is tests/fuzz/test_openapi_fuzz.py, the stateful phase
over the links tests/fuzz/test_stateful_links.py: the four phases run in CI. The exceptions each
check allows are those of the fuzzing test (``answer_checks``), with their reasons, plus one here:
an undeclared method has no route at an HTTP API, so API Gateway answers ``404 {"message":"Not
Found"}`` before any function (it cannot answer 405 without routing every method to a function);
that exact answer is accepted instead of ``unsupported_method``'s 405, as is the answer of another
operation whose path template the path fills (``PATCH /bookings/search`` is ``PATCH
/bookings/{booking_id}``); anything else must be the 405 with ``Allow`` (``GET /mcp``, a route of
its own, answers so)."""

from __future__ import annotations

import re
import threading
from collections import Counter
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, settings
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario

from tests.support.fuzz import DOC, OPERATIONS, answer_checks

GATEWAY_NOT_FOUND = {"message": "Not Found"}
SENT: Counter = Counter()
_lock = threading.Lock()


def _undeclared_method(case) -> bool:
    data = case.meta.phase.data if case.meta is not None else None
    return isinstance(data, CoveragePhaseData) and data.scenario == CoverageScenario.UNSPECIFIED_HTTP_METHOD


def _routed_elsewhere(method: str, path: str) -> bool:
    """Whether another operation of the document has ``method`` and a path template that ``path``
    fills (``PATCH /bookings/search`` is ``PATCH /bookings/{booking_id}`` with the id "search")."""
    for template, item in DOC["paths"].items():
        if method.lower() in item:
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path):
                return True
    return False


def _gateway_not_found(response) -> bool:
    try:
        return response.status_code == 404 and response.json() == GATEWAY_NOT_FOUND
    except ValueError:
        return False


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_examples_and_coverage_cases_answer_as_documented(api_schema, checks, rel, method, path):
    operation = api_schema[path][method]
    headers = rel.headers()

    typed: set[str] = set()

    def run(case):
        data = case.meta.phase.data if case.meta is not None else None
        if isinstance(data, CoveragePhaseData) and data.scenario == CoverageScenario.INCORRECT_TYPE:
            # one wrong type per field (schemathesis' first): the validation of a field's type does not
            # depend on which wrong type it gets; the fuzzing test sends the others at random
            if data.location in typed:
                return
            typed.add(str(data.location))
        response = case.call(headers=headers, timeout=30)
        with _lock:
            SENT[f"{method} {path}"] += 1
        assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:300])
        these = answer_checks(checks, method, path, case, response)
        if _undeclared_method(case) and (
            _gateway_not_found(response)
            or _routed_elsewhere(response.request.method, urlsplit(response.request.url).path)
        ):
            these = [c for c in these if c.__name__ != "unsupported_method"]
        case.validate_response(response, checks=these, headers=headers)

    test = create_test(
        operation=operation,
        test_func=run,
        config=HypothesisTestConfig(
            project=api_schema.config,
            modes=[HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE],
            settings=settings(
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit],
                suppress_health_check=list(HealthCheck),
            ),
        ),
    )
    test()


def test_every_operation_got_examples_and_coverage_cases():
    print(f"\nexamples and coverage: {sum(SENT.values())} requests over {len(SENT)} operations: {dict(SENT)}")
    assert len(SENT) == len(OPERATIONS) and all(SENT.values())
