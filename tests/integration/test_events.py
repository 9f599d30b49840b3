"""The event log end to end, in process: every path that changes a booking writes exactly one event
per change (REST create, PATCH and cancel, the MCP tools, retries with the same key, no-op changes,
the worker's follow-up), with the actor; GET /bookings/{id}/events lists them; the worker publishes
them to the bus (moto) in version order, each detail valid against docs/EVENTS.md's JSON Schema.
A hypothesis property test runs generated sequences of operations through the services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from hibachi.callers import Caller
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from testkit.events import http_event
from tests.conftest import load_function, new_id, receive_all
from tests.integration.test_assistant_tools import booking_args, call_tool
from tests.integration.test_bookings import CANCEL, PATCH, booking_body, call, create, local_start
from tests.integration.test_followups import make_due, run_jobs

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "GET /bookings/{booking_id}/events"


@pytest.fixture(autouse=True)
def clean(db):
    db.execute("TRUNCATE bookings CASCADE")  # and followups, events


def events_of(context, booking_id, scopes=("bookings:read", "staff")) -> tuple[int, dict]:
    event = http_event(
        "GET",
        f"/bookings/{booking_id}/events",
        route_key=EVENTS,
        path_parameters={"booking_id": str(booking_id)},
        claims={"sub": "staff-1"},
        scopes=list(scopes),
    )
    response = load_function("create_booking").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def log(db, booking_id) -> list[dict]:
    return db.fetchall("SELECT type, version, actor, data FROM events WHERE booking_id = %s ORDER BY seq", [booking_id])


def schema() -> dict:
    text = (ROOT / "docs" / "EVENTS.md").read_text(encoding="utf-8")
    block = text.split("### JSON Schema (the `detail`)", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)```", block, re.DOTALL).group(1))


# -- REST ---------------------------------------------------------------------------------------------------
def test_rest_changes_write_one_event_each_and_no_ops_none(settings, context, db):
    status, booking = create(context, booking_body(local_start(days=20), conversation_id="web:ev-1"), key="k-ev-1")
    assert status == 201
    bid = booking["id"]
    assert create(context, booking_body(local_start(days=20), conversation_id="web:ev-1"), key="k-ev-1")[0] == 200
    moved = local_start(days=21, hour=19)
    assert call(context, PATCH, bid, body={"event_start": moved}, headers={"idempotency-key": "k-ev-2"})[0] == 200
    # the same key again, and the same change without a key (a no-op): no event
    assert call(context, PATCH, bid, body={"event_start": moved}, headers={"idempotency-key": "k-ev-2"})[0] == 200
    assert call(context, PATCH, bid, body={"event_start": moved})[1]["version"] == 2
    assert call(context, PATCH, bid, body={"event_start": moved, "guest_count": 20})[1]["version"] == 3
    assert call(context, CANCEL, bid)[1]["status"] == "cancelled"
    assert call(context, CANCEL, bid)[0] == 200  # a repeated cancel
    events = log(db, bid)
    assert [(e["type"], e["version"]) for e in events] == [
        ("Booking Created", 1),
        ("Booking Rescheduled", 2),
        ("Booking Details Changed", 3),
        ("Booking Cancelled", 4),
    ]
    assert {e["actor"]["via"] for e in events} == {
        "POST /bookings",
        "PATCH /bookings/{booking_id}",
        "POST /bookings/{booking_id}/cancel",
    }
    assert all(e["actor"]["kind"] == "staff" and e["actor"]["sub"] == "tester" for e in events)
    moved_event, changed = events[1]["data"], events[2]["data"]
    assert moved_event["changes"]["event_start"]["new"] == moved_event["booking"]["event_start"]
    assert moved_event["changes"]["event_start"]["old"] != moved_event["booking"]["event_start"]
    assert changed["changes"] == {"guest_count": {"old": 12, "new": 20}}
    snapshot = events[0]["data"]["booking"]
    assert snapshot["city"] == "San Francisco" and snapshot["state"] == "CA" and snapshot["guest_count"] == 12
    # minimal PII: nothing of the customer's contact data or free text
    text = json.dumps([e["data"] for e in events])
    for secret in ("Ada", "Lovelace", "+14155550123", "example.com", "1 Market St", "94105"):
        assert secret not in text


def test_get_events_lists_them_oldest_first_for_staff_only(settings, context, db):
    status, booking = create(context, booking_body(local_start(days=22)))
    call(context, CANCEL, booking["id"])
    status, page = events_of(context, booking["id"])
    assert status == 200
    assert [(e["type"], e["version"]) for e in page["items"]] == [("Booking Created", 1), ("Booking Cancelled", 2)]
    first = page["items"][0]
    assert set(first) >= {"id", "type", "version", "occurred_at", "actor", "booking_id", "data", "published_at"}
    assert first["actor"] == {"kind": "staff", "sub": "tester", "via": "POST /bookings"}
    assert events_of(context, booking["id"], scopes=("bookings:read",))[0] == 403  # not staff
    assert events_of(context, "00000000-0000-0000-0000-000000000000")[0] == 404


# -- MCP ----------------------------------------------------------------------------------------------------
def test_mcp_tools_write_events_with_the_tool_and_retries_none(settings, context, db, sqs):
    args = booking_args()
    created = call_tool(context, "create_booking", args)["structuredContent"]
    call_tool(context, "create_booking", args)  # the same key: the same booking, no event
    bid = created["id"]
    day = args["event_start"][:10]
    call_tool(
        context,
        "reschedule_booking",
        {"booking_id": bid, "event_start": f"{day}T11:00", "idempotency_key": new_id("k")},
    )
    call_tool(context, "cancel_booking", {"booking_id": bid})
    call_tool(context, "cancel_booking", {"booking_id": bid})
    events = log(db, bid)
    assert [(e["type"], e["actor"]["via"]) for e in events] == [
        ("Booking Created", "mcp:create_booking"),
        ("Booking Rescheduled", "mcp:reschedule_booking"),
        ("Booking Cancelled", "mcp:cancel_booking"),
    ] or [(e["type"], e["actor"]["via"]) for e in events] == [  # the slot was already 11:00: no move
        ("Booking Created", "mcp:create_booking"),
        ("Booking Cancelled", "mcp:cancel_booking"),
    ]
    assert all(e["actor"]["sub"] == "agent-1" for e in events)


# -- the worker: follow-up sent, and publishing ----------------------------------------------------------------
def test_the_worker_publishes_in_version_order_and_writes_the_followup_event(settings, context, db, aws, moto):
    receive_all(aws["client"], moto.resources.events_queue_url)
    receive_all(aws["client"], moto.resources.staff_notices_queue_url)
    _, booking = create(context, booking_body(local_start(days=23), conversation_id="web:ev-w"))
    bid = booking["id"]
    call(context, PATCH, bid, body={"event_start": local_start(days=24)})
    run_jobs(context, aws)  # schedule_followup x2: each publishes the booking's events
    make_due(db, bid)
    from hibachi.followups.jobs import send_job

    aws["client"].send_message(QueueUrl=aws["queue_url"], MessageBody=send_job(bid, 2, "t").model_dump_json())
    run_jobs(context, aws)
    events = log(db, bid)
    assert [(e["type"], e["version"], e["actor"]["kind"]) for e in events] == [
        ("Booking Created", 1, "staff"),
        ("Booking Rescheduled", 2, "staff"),
        ("Booking Follow-up Sent", 2, "system"),
    ]
    assert db.fetchone("SELECT count(*) AS n FROM events WHERE published_at IS NULL")["n"] == 0
    delivered = [json.loads(m["Body"]) for m in receive_all(aws["client"], moto.resources.events_queue_url)]
    mine = sorted((e for e in delivered if e["detail"]["booking_id"] == bid), key=lambda e: e["detail"]["occurred_at"])
    assert [e["detail-type"] for e in mine] == ["Booking Created", "Booking Rescheduled", "Booking Follow-up Sent"]
    assert all(e["source"] == "hibachi.bookings" for e in mine)
    validator = jsonschema.Draft202012Validator(schema())
    for event in mine:
        validator.validate(event["detail"])
    notices = [json.loads(m["Body"]) for m in receive_all(aws["client"], moto.resources.staff_notices_queue_url)]
    assert any(n.startswith("New booking: ") and "12 guests, chef 1, San Francisco CA" in n for n in notices), notices
    assert not any("Ada" in n or "+1415" in n for n in notices)


# -- property: exactly one event per change ------------------------------------------------------------------
STAFF = Caller(owner="prop", sub="prop", client_id=None, staff=True, conversation_id=None, via="test")
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["move", "guests", "noop", "cancel", "retry_move", "retry_create"]),
        st.integers(min_value=0, max_value=3),
    ),
    min_size=1,
    max_size=12,
)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(operations=OPERATIONS)
def test_property_each_change_is_exactly_one_event_in_version_order(settings, db, operations):
    """Any sequence of operations (moves, head counts, no-ops, cancels, retries with the same key)
    on a few bookings: per booking, the events are exactly the changes: versions 1..version in order,
    the first Created, a Cancelled only as the last, and nothing for what changed nothing."""
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn, RescheduleIn
    from hibachi.errors import AppError

    db.execute("TRUNCATE bookings CASCADE")
    run = new_id("p")
    bookings = []
    for i in range(4):
        body = BookingIn.model_validate(booking_body(local_start(days=30 + i)))
        out, _ = service.create_booking(body, caller=STAFF, idempotency_key=f"{run}-c{i}", correlation_id=None)
        bookings.append((out.id, body))
    for n, (op, which) in enumerate(operations):
        bid, body = bookings[which]
        current = service.get_booking(bid, caller=STAFF)
        start = current.event_start.replace(tzinfo=None).isoformat(timespec="minutes")
        try:
            if op == "move":
                hour = 12 + n % 8
                change = RescheduleIn.model_validate({"event_start": local_start(days=40 + which, hour=hour)})
                service.reschedule_booking(
                    bid, change, caller=STAFF, idempotency_key=f"{run}-m{n}", correlation_id=None
                )
            elif op == "retry_move":
                change = RescheduleIn.model_validate({"event_start": local_start(days=50 + which)})
                for _ in range(2):  # the same key twice: one change at most
                    service.reschedule_booking(
                        bid, change, caller=STAFF, idempotency_key=f"{run}-r{n}", correlation_id=None
                    )
            elif op == "guests":
                change = RescheduleIn.model_validate({"event_start": start, "guest_count": 2 + n})
                service.reschedule_booking(bid, change, caller=STAFF, correlation_id=None)
            elif op == "noop":
                change = RescheduleIn.model_validate({"event_start": start})
                service.reschedule_booking(bid, change, caller=STAFF, correlation_id=None)
            elif op == "cancel":
                service.cancel_booking(bid, caller=STAFF, correlation_id=None)
            else:
                service.create_booking(body, caller=STAFF, idempotency_key=f"{run}-c{which}", correlation_id=None)
        except AppError as exc:  # a cancelled booking can no longer move: a 409 changes nothing
            refused = exc.code
            assert refused == "booking_cancelled", refused
    for bid, _ in bookings:
        version = db.fetchone("SELECT version FROM bookings WHERE id = %s", [bid])["version"]
        events = log(db, bid)
        assert [e["version"] for e in events] == list(range(1, version + 1))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "Booking Created" and "Booking Created" not in kinds[1:]
        assert "Booking Cancelled" not in kinds[:-1]
        assert all(k in ("Booking Rescheduled", "Booking Details Changed", "Booking Cancelled") for k in kinds[1:]), (
            kinds
        )
