"""What the schemathesis tests of this folder share: the operations of the committed document, the
configuration of the checks, and the documented refusals of schema-valid requests, each with its
reason (no check is switched off without one)."""

from __future__ import annotations

import json
from typing import Any

from schemathesis import Case, Response
from schemathesis.checks import CheckFunction

from tests.support.common import ROOT

DOC = json.loads((ROOT / "functions" / "docs" / "openapi.json").read_text())
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOC["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
]

# Schema-valid data may still name a booking or conversation that does not exist (404) or a slot
# that is full (409): documented answers to well-formed requests, not rejections of valid data.
# A body too large for the function is refused with 413 before any validation: a rejection too.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""

# Booking writes have rules no JSON schema states (at least MIN_LEAD_HOURS ahead, an existing
# local time in the zone, a known zone, an offset that is the zone's then): schema-valid bodies
# are mostly refused with a documented 422, so "valid data accepted" does not apply to them.
# The same for the search's ``cursor``: an opaque cursor only this API hands out (the history's
# ``before`` has a documented pattern that every one of its cursors matches); and for
# availability's and the search's dates and zones (a known IANA zone, a real calendar date, `to`
# not before `from`, a range within the calendar).
#
# Verified identities: a code to confirm is one this API sent to that conversation (any other
# 6 digits are a documented 404 or 422); sends are rate-limited per destination and conversation
# (a documented 429, which generated requests reach at once: they repeat values); and a
# schema-valid email can still be one email-validator refuses (a special-use domain such as
# .test), as on bookings.
BUSINESS_RULES = {
    ("POST", "/bookings"),
    ("PATCH", "/bookings/{booking_id}"),
    ("GET", "/availability"),
    ("POST", "/bookings/search"),
    ("PUT", "/conversations/{conversation_id}/identity"),
    ("POST", "/conversations/{conversation_id}/verifications"),
    ("POST", "/conversations/{conversation_id}/verifications/confirm"),
}


def unstorable(value: object) -> bool:
    """Text PostgreSQL cannot store (NUL) or that is not Unicode (a lone surrogate, which JSON's
    ``\\udXXX`` escapes can carry): the API refuses it with a 422, which JSON Schema cannot state."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(unstorable(v) for v in value)
    return False


# The MCP transport's GET opens a server-to-client SSE stream; a server that offers none answers
# 405 (its one documented answer), so no request to it is "accepted".
NO_ACCEPTANCE = {("GET", "/mcp")}


def answer_checks(
    checks: list[CheckFunction], method: str, path: str, case: Case[Any], response: Response
) -> list[CheckFunction]:
    """The checks that apply to ``response``: all of them, but "valid data accepted" where a
    documented refusal of a schema-valid request is the contract (the reasons above and below)."""
    these = checks
    if (method, path) in BUSINESS_RULES | NO_ACCEPTANCE:
        these = [c for c in these if c.__name__ != "positive_data_acceptance"]
    if unstorable([case.body, case.query, case.path_parameters, case.headers]):
        # JSON-RPC refuses with 400; the authorizer (a generated header breaking the token) before it
        refusals = (400, 401, 403) if path == "/mcp" else (401, 403, 404, 413, 422)
        assert response.status_code in refusals, (case.as_curl_command(), response.status_code)
        these = [c for c in these if c.__name__ != "positive_data_acceptance"]
    if response.status_code == 422 and "idempotency_key_reused" in response.text:
        # the generator reuses header values: a key sent before with another body is refused by
        # contract (documented 422), though the request alone is valid
        these = [c for c in these if c.__name__ != "positive_data_acceptance"]
    return these
