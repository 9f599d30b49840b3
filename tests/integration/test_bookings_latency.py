"""In-process latency of create_booking against the local PostgreSQL (a measurement, not a gate).

    .venv/bin/python -m pytest tests/integration/test_bookings_latency.py -q -s

200 sequential POST /bookings through the handler (real HTTP API events, Powertools validation, EMF
output), each for a distinct slot, after a warm-up; prints p50/p95/max. JOBS_QUEUE_URL is unset
here, so the enqueue after the insert is skipped (on AWS it adds one SQS SendMessage). Asserts only what does not
depend on the machine: every request booked, with exactly one database statement each.
"""

from __future__ import annotations

import json
import statistics
import time

from hibachi.db import get_db

from tests.conftest import load_function
from tests.integration.test_bookings import CREATE, booking_body, local_start

REQUESTS = 200


def test_create_booking_latency_in_process(settings, context, db, capsys):
    from testkit.events import http_event

    db.execute("TRUNCATE bookings CASCADE")
    handler = load_function("create_booking").lambda_handler

    def event(i: int) -> dict:
        body = booking_body(local_start(days=2 + i, hour=18))
        return http_event(
            "POST",
            "/bookings",
            route_key=CREATE,
            headers={"content-type": "application/json", "idempotency-key": f"lat-{i}"},
            body=json.dumps(body),
            claims={"sub": "bench"},
            scopes=["bookings:write", "staff"],
        )

    for i in range(10):  # warm-up: connection, imports, first validations
        assert handler(event(REQUESTS + i), context)["statusCode"] == 201
    events = [event(i) for i in range(REQUESTS)]
    timings, statements, db_ms = [], [], []
    for e in events:
        start = time.perf_counter()
        response = handler(e, context)
        timings.append((time.perf_counter() - start) * 1000)
        statements.append(get_db().stats.statements)
        db_ms.append(get_db().stats.elapsed_ms)
        assert response["statusCode"] == 201, response["body"]
    capsys.readouterr()  # the EMF lines
    assert set(statements) == {1}
    q = statistics.quantiles(timings, n=100)
    with capsys.disabled():
        print(
            f"\ncreate_booking in process, {REQUESTS} sequential requests, local PostgreSQL: "
            f"p50 {statistics.median(timings):.2f} ms, p95 {q[94]:.2f} ms, max {max(timings):.2f} ms, "
            f"1 statement each (database time p50 {statistics.median(db_ms):.2f} ms); "
            "JOBS_QUEUE_URL unset, so the SQS send is not in it"
        )
