"""The one contract of every write that takes an ``Idempotency-Key`` (docs/ARCHITECTURE.md, "Idempotency").

- A key belongs to its caller (the JWT's ``client_id`` claim, else its ``sub``): two callers that
  happen to pick the same key never meet. The caller is a plain argument of the service functions,
  so a caller that is not HTTP (the MCP tools) passes its own.
- Same key, same request: the original result (``200``); nothing is stored, no job is sent.
- Same key, another request: ``422 idempotency_key_reused``; nothing is stored. Requests are compared
  by :func:`request_hash`: the route, its path parameters and the validated body, canonical JSON.
- Same key while the first request is still being written: ``409 idempotency_key_in_flight`` with
  ``Retry-After``.

The database enforces it: a unique index on (caller, key) of the table each write lands in, in the
same statement as the write, so the loser of a race changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from hibachi.errors import AppError, Conflict, Unprocessable, invalid

KEY_MAX_LENGTH = 128
# visible ASCII: no control characters, no spaces (a UUID, a ULID, "turn-42" all fit)
KEY_PATTERN = r"^[!-~]+$"
KEY_DESCRIPTION = (
    "1-128 visible ASCII characters (no spaces or control characters). Scoped to the caller: the same "
    "key and request answer the original result (200); the key with another request is 422 "
    "idempotency_key_reused; while the first request is still in flight, 409 idempotency_key_in_flight "
    "with Retry-After."
)
IN_FLIGHT_RETRY_AFTER = 1
_KEY = re.compile(KEY_PATTERN)
_LOC = ["header", "idempotency-key"]


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"


class CallerUnknown(AppError):
    """A key without a caller to scope it to (the authorizer passed no ``sub`` nor ``client_id``)."""

    status, code = 403, "caller_unknown"


def reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "This Idempotency-Key was used for a different request; use a new key.",
        details=[{"loc": _LOC, "msg": "already used with another request", "type": "idempotency_key_reused"}],
    )


def in_flight() -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(
        "A request with this Idempotency-Key is still in progress; retry after Retry-After seconds.",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER)},
    )


def check(caller: str, key: str | None) -> None:
    """The key's rules, for callers that do not come through the HTTP validation (422), and the
    caller it is scoped to (403 when there is none)."""
    if key is None:
        return
    if not 1 <= len(key) <= KEY_MAX_LENGTH or not _KEY.match(key):
        raise invalid(
            _LOC[0], _LOC[1], f"must be 1-{KEY_MAX_LENGTH} visible ASCII characters", "idempotency_key_invalid"
        )
    if not caller:
        raise CallerUnknown("The request carries no caller identity to scope its Idempotency-Key to.")


def request_hash(route: str, path: Mapping[str, Any], body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical request: the route, its path parameters and the validated body (as
    JSON with sorted keys and no whitespace), so key order and spacing do not matter."""
    canonical = json.dumps(
        {"route": route, "path": {k: str(v) for k, v in path.items()}, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def caller_of(event: Mapping[str, Any]) -> str:
    """The caller of an API Gateway (HTTP API, JWT authorizer) event: the ``client_id`` claim when
    there is one, else ``sub``; ``""`` when the authorizer passed neither."""
    try:
        claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    except (KeyError, TypeError):
        return ""
    if not isinstance(claims, Mapping):
        return ""
    for name in ("client_id", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
