"""create_booking in process: its route keys, a booking body, a local start a number of days ahead,
and a caller of the handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hibachi.db import Database

from local.events import LambdaContext, http_event
from testkit.functions import load_function

CREATE = "POST /bookings"
GET = "GET /bookings/{booking_id}"
CANCEL = "POST /bookings/{booking_id}/cancel"
PATCH = "PATCH /bookings/{booking_id}"
TZ = "America/Los_Angeles"
ZONE = ZoneInfo(TZ)


def call(
    context: LambdaContext,
    route_key: str,
    booking_id: object = None,
    *,
    body: object = None,
    headers: dict[str, str] | None = None,
    raw_body: str | bytes | None = None,
) -> tuple[int, Any]:
    """``route_key`` on the create_booking handler: (status, the JSON body or None)."""
    method, template = route_key.split(" ", 1)
    path = template.replace("{booking_id}", str(booking_id)) if booking_id is not None else template
    event = http_event(
        method,
        path,
        route_key=route_key,
        path_parameters={"booking_id": str(booking_id)} if booking_id is not None else None,
        headers={"content-type": "application/json", **(headers or {})},
        body=raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
        claims={"sub": "tester"},
        scopes=["bookings:write", "bookings:read", "staff"],
    )
    response = load_function("create_booking").lambda_handler(event, context)
    return int(response["statusCode"]), json.loads(response["body"]) if response.get("body") else None


def local_start(days: int = 10, hour: int = 18, minute: int = 0) -> str:
    day = datetime.now(ZONE).date() + timedelta(days=days)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


def booking_body(start: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid POST /bookings body (``start``: a local start; ``local_start()`` by default)."""
    body: dict[str, Any] = {
        "customer": {"name": "Ada Lovelace", "phone": "+14155550123", "email": "Ada@Example.COM"},
        "event_start": start or local_start(),
        "timezone": TZ,
        "guest_count": 12,
        "address": {"line1": "1 Market St", "city": "San Francisco", "state": "CA", "postal_code": "94105"},
    }
    body.update(overrides)
    return body


def create(context: LambdaContext, body: dict[str, Any] | None = None, key: str | None = None) -> tuple[int, Any]:
    return call(context, CREATE, body=body or booking_body(), headers={"idempotency-key": key} if key else None)


def count_bookings(db: Database) -> int:
    row = db.fetchone("SELECT count(*) AS n FROM bookings")
    assert row is not None
    return int(row["n"])


def _offset(t: datetime, zone: ZoneInfo) -> timedelta:
    offset = t.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def dst_times(zone: ZoneInfo) -> tuple[str, str]:
    """A local time in the next spring-forward gap and one in the next fall-back overlap, at least
    three days ahead (found from the zone's rules, so the test does not age)."""
    found: dict[str, str] = {}
    t = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    for _ in range(24 * 800):
        before, after = _offset(t, zone), _offset(t + timedelta(hours=1), zone)
        if before != after:
            # the transition lies within (t, t+1h]: find it to the minute
            m = t
            while _offset(m, zone) == before:
                m += timedelta(minutes=1)
            # spring forward: wall times [m+before, m+after) never happen; fall back: [m+after,
            # m+before) happen twice. Take the middle of that hour.
            kind = "gap" if after > before else "fold"
            middle = (m + min(before, after)).replace(tzinfo=None) + abs(after - before) / 2
            found.setdefault(kind, middle.isoformat(timespec="minutes"))
            if len(found) == 2:
                return found["gap"], found["fold"]
        t += timedelta(hours=1)
    raise AssertionError("no DST transitions found")
