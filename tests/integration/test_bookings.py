"""create_booking, get, cancel and reschedule, in process against the real PostgreSQL.

Each test starts from an empty bookings table (``clean``), so slots are plain dates. Capacity
races run many requests at once, each thread on its own connection (``hibachi.db.Database`` keeps
one per thread).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from urllib.parse import urlsplit

import pytest
from hibachi import settings as settings_module

from testkit.callers import staff
from testkit.functions import load_function
from testkit.netproxy import PgProxy
from tests.support.bookings import (
    CANCEL,
    CREATE,
    GET,
    PATCH,
    TZ,
    ZONE,
    booking_body,
    call,
    count_bookings,
    create,
    dst_times,
    local_start,
)
from tests.support.common import new_id, receive_all


@pytest.fixture(autouse=True)
def clean(db):
    db.execute("TRUNCATE bookings CASCADE")  # and followups
    return


def overlaps(db) -> int:
    """Pairs of confirmed bookings of one chef whose holds overlap: must always be 0."""
    return db.fetchone("""
        SELECT count(*) AS n FROM bookings a JOIN bookings b
          ON a.chef_id = b.chef_id AND a.id < b.id AND a.held && b.held
        WHERE a.status = 'confirmed' AND b.status = 'confirmed'""")["n"]


# -- create -------------------------------------------------------------------------------------------
def test_create_returns_the_booking_with_local_offsets(settings, context):
    start = local_start(days=12, hour=18, minute=30)
    status, booking = create(context, booking_body(start, conversation_id="web:c-1", notes="Nut allergy x2"))
    assert status == 201, booking
    assert booking["status"] == "confirmed" and booking["version"] == 1 and booking["chef_id"] == 1
    assert uuid.UUID(booking["id"])
    begins = datetime.fromisoformat(booking["event_start"])
    ends = datetime.fromisoformat(booking["event_end"])
    assert begins.replace(tzinfo=None).isoformat(timespec="minutes") == start
    assert begins.utcoffset() == datetime.fromisoformat(start).replace(tzinfo=ZONE).utcoffset()
    assert ends - begins == timedelta(minutes=120)  # the default duration
    assert booking["timezone"] == TZ and booking["guest_count"] == 12 and booking["duration_minutes"] == 120
    # the email as stored: lower case (sent as Ada@Example.com)
    assert booking["customer"] == {"name": "Ada Lovelace", "phone": "+14155550123", "email": "ada@example.com"}
    assert booking["address"]["line2"] is None and booking["address"]["city"] == "San Francisco"
    assert booking["conversation_id"] == "web:c-1" and booking["notes"] == "Nut allergy x2"
    # 20:30 end + 24 h = 20:30 the next day, after 19:00: the next morning at 10:00, local
    due = datetime.fromisoformat(booking["followup_due_at"])
    assert due.replace(tzinfo=None) == datetime.fromisoformat(start) + timedelta(days=2) - timedelta(
        hours=8, minutes=30
    )
    assert booking["created_at"] and booking["cancelled_at"] is None
    status, read = call(context, GET, booking["id"])
    assert status == 200 and read == booking


def test_create_is_one_round_trip(settings, context, database_url):
    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url)),
    ):
        assert create(context, booking_body(local_start(days=5)))[0] == 201  # warm: connect
        proxy.reset()
        status, booking = create(context, booking_body(local_start(days=6)))
        assert status == 201 and proxy.round_trips == 1
        proxy.reset()
        status, _ = create(context, booking_body(local_start(days=7)), key="rt-key-1")
        assert status == 201 and proxy.round_trips == 1
        proxy.reset()
        status, _ = create(context, booking_body(local_start(days=7)), key="rt-key-1")  # a retry
        assert status == 200 and proxy.round_trips == 1
        proxy.reset()
        assert call(context, GET, booking["id"])[0] == 200 and proxy.round_trips == 1
        proxy.reset()
        # reschedule reads the booking first: its time zone decides what the new local start means
        assert call(context, PATCH, booking["id"], body={"event_start": local_start(days=8)})[0] == 200
        assert proxy.round_trips == 2
        proxy.reset()
        assert call(context, CANCEL, booking["id"])[0] == 200 and proxy.round_trips == 1


def test_a_full_slot_is_two_round_trips_keyed_or_not(settings, context, database_url):
    """The create statement finds no free chef, then the 409's details read that day's free start
    times: two statements, for a keyed request too (the statement looked for the key's booking in the
    snapshot it found the slot full in: running it again cannot find it)."""
    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url), chef_count=1),
    ):
        start = local_start(days=23)
        assert create(context, booking_body(start), key="full-1")[0] == 201  # warm: connect
        for key in (None, "full-2"):
            proxy.reset()
            status, body = create(context, booking_body(start), key=key)
            assert (
                status == 409 and body["error"]["code"] == "slot_full" and body["error"]["details"]["next_free_starts"]
            )
            assert proxy.round_trips == 2, f"key {key}: {proxy.round_trips} round trips"
        proxy.reset()
        assert create(context, booking_body(start), key="full-1")[0] == 200 and proxy.round_trips == 1  # a retry


def test_idempotent_retry_returns_the_same_booking(settings, context, db):
    body = booking_body(local_start(days=9))
    status1, first = create(context, body, key="order-77")
    reordered = {k: body[k] for k in reversed(list(body))}  # same request, other key order
    status2, second = create(context, reordered, key="order-77")
    assert (status1, status2) == (201, 200)
    assert second == first
    assert count_bookings(db) == 1


def test_same_key_with_another_body_is_422_and_writes_nothing(settings, context, db):
    assert create(context, booking_body(local_start(days=9)), key="order-78")[0] == 201
    status, body = create(context, booking_body(local_start(days=9), guest_count=13), key="order-78")
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["details"][0]["loc"] == ["header", "idempotency-key"]
    assert count_bookings(db) == 1


def test_create_enqueues_schedule_followup_with_the_request_id(settings, context, sqs):
    status, booking = create(context)
    assert status == 201
    messages = receive_all(sqs["client"], sqs["queue_url"])
    assert len(messages) == 1
    job = json.loads(messages[0]["Body"])
    assert job["type"] == "schedule_followup" and job["payload"] == {"booking_id": booking["id"]}
    assert job["correlation_id"] and job["id"] == f"schedule_followup:{booking['id']}:v1"
    create(context, booking_body(local_start(days=10)), key=None)  # another booking, same slot: chef 2
    assert len(receive_all(sqs["client"], sqs["queue_url"])) == 1


def test_failed_enqueue_does_not_fail_the_request(settings, context, sqs):
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        status, booking = create(context)
    assert status == 201 and booking["status"] == "confirmed"


# -- capacity ------------------------------------------------------------------------------------------------
def _concurrently(n: int, call) -> list:
    """Run ``call(i)`` for i in range(n) from ``n`` threads released at once, each thread with its
    own connection; the results, or the exceptions raised. (In process, the Powertools resolver keeps
    the current event on the class, so concurrent handler calls would race on it; in Lambda one
    environment serves one request at a time. The threads therefore enter just below the handler:
    the same service call it makes.)"""
    from hibachi.db import get_db

    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        get_db().fetchone("SELECT 1")  # connect before the start line
        barrier.wait(timeout=30)
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc
        finally:
            get_db().close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def _race(n: int, bodies, keys=None) -> list:
    """``n`` concurrent create_booking calls (one body, or one each)."""
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn

    def create(i: int):
        body = BookingIn.model_validate(bodies[i] if isinstance(bodies, list) else bodies)
        return service.create_booking(
            body, caller=staff(), idempotency_key=keys[i] if keys else None, correlation_id=f"race-{i}"
        )

    return _concurrently(n, create)


def sessions(db) -> set[int]:
    """The pids of this database's sessions now: before a race, what its end comes back to."""
    return {r["pid"] for r in db.fetchall("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")}


def deadlocks(db, before: set[int]) -> int:
    """Deadlocks PostgreSQL has detected in this database, once every session not in ``before`` (the
    race's) has ended: a backend reports its statistics when it exits; poll for that with a deadline.
    (Not a fixed count of sessions: a connection an earlier test left open would make the wait
    always run to its deadline.)"""
    deadline = time.monotonic() + 15
    while sessions(db) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    return db.fetchone("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")["deadlocks"]


def test_concurrent_requests_for_one_slot_never_overbook(settings, db):
    from hibachi.bookings.service import SlotFull

    n = 60
    idle = sessions(db)
    before = deadlocks(db, idle)
    results = _race(n, booking_body(local_start(days=14)))
    booked = [r for r in results if isinstance(r, tuple)]
    full = [r for r in results if isinstance(r, SlotFull)]
    others = [r for r in results if not isinstance(r, tuple) and not isinstance(r, SlotFull)]
    assert not others, others[:3]
    assert len(booked) == settings.chef_count == 3
    assert len(full) == n - 3
    assert sorted(b.chef_id for b, created in booked) == [1, 2, 3] and all(created for _, created in booked)
    assert count_bookings(db) == 3 and overlaps(db) == 0
    # losers of the race for a chef insert nothing and run again; they never deadlock (which would
    # cost deadlock_timeout, 1 s, each)
    assert deadlocks(db, idle) == before
    print(f"\nconcurrency: {n} requests, {len(booked)} booked, {len(full)} got 409")


def test_concurrent_overlapping_requests_keep_every_chef_single_booked(settings, db):
    from hibachi.bookings.service import SlotFull

    idle = sessions(db)
    before = deadlocks(db, idle)
    starts = [local_start(days=15, hour=12 + (i % 8), minute=30 * (i % 2)) for i in range(50)]
    results = _race(50, [booking_body(s, duration_minutes=60 + 30 * (i % 5)) for i, s in enumerate(starts)])
    assert deadlocks(db, idle) == before
    assert all(isinstance(r, (tuple, SlotFull)) for r in results), [r for r in results if not isinstance(r, tuple)][:3]
    assert sum(isinstance(r, tuple) for r in results) == count_bookings(db) >= 3
    assert overlaps(db) == 0


def test_concurrent_retries_with_one_key_make_one_booking(settings, db):
    n = 20
    results = _race(n, booking_body(local_start(days=16)), keys=["same-key"] * n)
    assert all(isinstance(r, tuple) for r in results), [r for r in results if not isinstance(r, tuple)][:3]
    assert len({b.id for b, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert count_bookings(db) == 1


def test_full_slot_is_409_with_the_next_free_start_times(settings, context, db):
    with settings_module.override(chef_count=1):
        assert create(context, booking_body(local_start(days=20, hour=18)))[0] == 201
        status, body = create(context, booking_body(local_start(days=20, hour=18)))
        assert status == 409 and body["error"]["code"] == "slot_full"
        # held 18:00-21:00 (120 min + 60 min travel): a 120-minute event fits until 15:00, or from
        # 21:00 on, which is after the last start of the service hours (20:00): the 5 nearest are earlier
        free = [datetime.fromisoformat(s) for s in body["error"]["details"]["next_free_starts"]]
        assert [f"{s:%H:%M}" for s in free] == ["13:00", "13:30", "14:00", "14:30", "15:00"]
        assert all(s.date() == date.fromisoformat(local_start(days=20)[:10]) for s in free)
        status, _ = create(context, booking_body(body["error"]["details"]["next_free_starts"][0][:16]))
        assert status == 201
    assert count_bookings(db) == 2 and overlaps(db) == 0


def test_the_travel_buffer_separates_bookings_of_one_chef(settings, context):
    with settings_module.override(chef_count=1, travel_buffer_minutes=60, service_first_start=wall_time(9, 0)):
        assert create(context, booking_body(local_start(days=21, hour=12), duration_minutes=60))[0] == 201
        assert create(context, booking_body(local_start(days=21, hour=13, minute=30)))[0] == 409
        assert create(context, booking_body(local_start(days=21, hour=14)))[0] == 201
        # an earlier event must end, plus the buffer, by 12:00: [10:30, 12:30) is too late
        assert create(context, booking_body(local_start(days=21, hour=10, minute=30), duration_minutes=60))[0] == 409
        assert create(context, booking_body(local_start(days=21, hour=10), duration_minutes=60))[0] == 201


# -- cancel --------------------------------------------------------------------------------------------------
def test_cancel_frees_the_slot_and_is_idempotent(settings, context, db, sqs):
    with settings_module.override(chef_count=1):
        start = local_start(days=22)
        status, booking = create(context, booking_body(start))
        assert status == 201
        assert create(context, booking_body(start))[0] == 409
        receive_all(sqs["client"], sqs["queue_url"])
        status, cancelled = call(context, CANCEL, booking["id"])
        assert status == 200 and cancelled["status"] == "cancelled" and cancelled["version"] == 2
        assert cancelled["cancelled_at"] and cancelled["id"] == booking["id"]
        jobs = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
        assert [(j["type"], j["payload"]) for j in jobs] == [("schedule_followup", {"booking_id": booking["id"]})]
        status, again = call(context, CANCEL, booking["id"])
        assert status == 200 and again == cancelled
        assert receive_all(sqs["client"], sqs["queue_url"]) == []  # nothing changed, nothing to do
        status, other = create(context, booking_body(start))
        assert status == 201 and other["chef_id"] == 1
    assert call(context, GET, booking["id"])[1]["status"] == "cancelled"


def test_a_started_event_cannot_be_cancelled_or_moved(settings, context, db):
    status, booking = create(context)
    db.execute(  # the event began a minute ago (its hold moves with it: a hold is at most 30 hours, 0013)
        """UPDATE bookings SET event_start = now() - interval '1 minute', event_end = now() + interval '119 minutes',
                  held_until = now() + interval '179 minutes' WHERE id = %s""",
        [booking["id"]],
    )
    status, body = call(context, CANCEL, booking["id"])
    assert status == 409 and body["error"]["code"] == "booking_started"
    status, body = call(context, PATCH, booking["id"], body={"event_start": local_start(days=30)})
    assert status == 409 and body["error"]["code"] == "booking_started"


# -- reschedule ----------------------------------------------------------------------------------------------
def test_reschedule_moves_the_booking_and_bumps_the_version(settings, context, sqs):
    status, booking = create(context, booking_body(local_start(days=23, hour=18)))
    receive_all(sqs["client"], sqs["queue_url"])
    new_start = local_start(days=24, hour=12)
    status, moved = call(
        context, PATCH, booking["id"], body={"event_start": new_start, "guest_count": 20, "duration_minutes": 180}
    )
    assert status == 200, moved
    assert moved["version"] == 2 and moved["guest_count"] == 20 and moved["duration_minutes"] == 180
    assert moved["event_start"][:16] == new_start and moved["chef_id"] == booking["chef_id"]
    assert datetime.fromisoformat(moved["event_end"]) - datetime.fromisoformat(moved["event_start"]) == timedelta(
        hours=3
    )
    assert moved["followup_due_at"] != booking["followup_due_at"]
    assert moved["customer"] == booking["customer"] and moved["created_at"] == booking["created_at"]
    jobs = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
    assert [(j["type"], j["id"]) for j in jobs] == [("schedule_followup", f"schedule_followup:{booking['id']}:v2")]


def test_reschedule_into_a_full_slot_is_409_and_changes_nothing(settings, context, db):
    with settings_module.override(chef_count=2):
        full = local_start(days=25, hour=18)
        assert create(context, booking_body(full))[0] == 201
        assert create(context, booking_body(full))[0] == 201
        status, mine = create(context, booking_body(local_start(days=25, hour=12), duration_minutes=60))
        assert status == 201
        before = db.fetchone("SELECT * FROM bookings WHERE id = %s", [mine["id"]])
        status, body = call(context, PATCH, mine["id"], body={"event_start": full})
        assert status == 409 and body["error"]["code"] == "slot_full"
        assert body["error"]["details"]["next_free_starts"]  # nearest that day
        assert db.fetchone("SELECT * FROM bookings WHERE id = %s", [mine["id"]]) == before
        assert call(context, GET, mine["id"])[1] == mine
        assert overlaps(db) == 0


def test_reschedule_moves_to_another_chef_when_its_own_is_busy(settings, context, db):
    with settings_module.override(chef_count=2):
        status, mine = create(context, booking_body(local_start(days=26, hour=12), duration_minutes=60))
        assert mine["chef_id"] == 1
        status, other = create(context, booking_body(local_start(days=26, hour=18)))
        assert other["chef_id"] == 1  # the lowest free chef
        status, moved = call(context, PATCH, mine["id"], body={"event_start": local_start(days=26, hour=18)})
        assert status == 200 and moved["chef_id"] == 2
    assert overlaps(db) == 0


def test_reschedule_within_its_own_hold_keeps_the_chef(settings, context, db):
    with settings_module.override(chef_count=1):
        status, mine = create(context, booking_body(local_start(days=27, hour=18)))
        status, moved = call(context, PATCH, mine["id"], body={"event_start": local_start(days=27, hour=18, minute=30)})
        assert status == 200 and moved["chef_id"] == 1  # its own hold does not block it


def test_cancelled_booking_cannot_be_rescheduled(settings, context):
    status, booking = create(context)
    call(context, CANCEL, booking["id"])
    status, body = call(context, PATCH, booking["id"], body={"event_start": local_start(days=40)})
    assert status == 409 and body["error"]["code"] == "booking_cancelled"


def test_reschedule_checks_dst_and_lead_time_in_the_bookings_zone(settings, context, db):
    status, booking = create(context)
    gap, _ = dst_times(ZONE)
    status, body = call(context, PATCH, booking["id"], body={"event_start": gap})
    assert status == 422 and body["error"]["details"][0]["type"] == "dst_gap"
    status, body = call(context, PATCH, booking["id"], body={"event_start": local_start(days=0, hour=0)})
    assert status == 422
    status, body = call(context, PATCH, booking["id"], body={"event_start": local_start(days=30), "timezone": "UTC"})
    assert status == 422 and any("timezone" in d["loc"] for d in body["error"]["details"])
    assert call(context, GET, booking["id"])[1] == booking


# -- not found, bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", [GET, CANCEL, PATCH])
def test_unknown_booking_is_404_and_a_bad_id_422(settings, context, route):
    body = {"event_start": local_start(days=30)} if route == PATCH else None
    status, response = call(context, route, uuid.uuid4(), body=body)
    assert status == 404 and response["error"]["code"] == "not_found"
    status, response = call(context, route, "not-a-uuid", body=body)
    assert status == 422 and response["error"]["details"][0]["loc"] == ["path", "booking_id"]


def _bad_cases() -> list:
    gap, fold = dst_times(ZONE)
    soon = (datetime.now(ZONE) + timedelta(hours=2)).replace(tzinfo=None).isoformat(timespec="minutes")
    past = (datetime.now(ZONE) - timedelta(days=1)).replace(tzinfo=None).isoformat(timespec="minutes")
    far = (datetime.now(ZONE) + timedelta(days=4 * 365)).replace(tzinfo=None).isoformat(timespec="minutes")

    def with_customer(**c):
        return {"customer": {"name": "Ada", "phone": "+14155550123", "email": "ada@example.com", **c}}

    def with_address(**a):
        return {"address": {"line1": "1 Main", "city": "SF", "state": "CA", "postal_code": "94105", **a}}

    return [
        ({"event_start": past}, "event_start", "event_start_past"),
        ({"event_start": soon}, "event_start", "lead_time"),
        ({"event_start": far}, "event_start", "too_far_ahead"),
        ({"event_start": gap}, "event_start", "dst_gap"),
        ({"event_start": fold}, "event_start", "dst_ambiguous"),
        ({"event_start": "9999-12-31T23:30"}, "event_start", "event_start_out_of_range"),
        ({"event_start": "0001-01-01T00:30", "timezone": "Asia/Tokyo"}, "event_start", "event_start_out_of_range"),
        ({"event_start": "2030-01-01T18:00:00Z"}, "event_start", "offset_mismatch"),
        ({"event_start": "2030-01-01T18:00:00-05:00"}, "event_start", "offset_mismatch"),  # New York's, not LA's
        ({"event_start": "2030-01-01T18:00:00+25:00"}, "event_start", None),
        ({"event_start": "next saturday"}, "event_start", None),
        ({"event_start": 1900000000}, "event_start", None),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", None),
        ({"timezone": "../../etc/passwd"}, "timezone", None),
        ({"timezone": "posix/America/New_York"}, "timezone", None),
        ({"guest_count": 0}, "guest_count", None),
        ({"guest_count": 101}, "guest_count", None),
        ({"guest_count": "12"}, "guest_count", None),
        ({"guest_count": 12.5}, "guest_count", None),
        ({"guest_count": True}, "guest_count", None),
        ({"duration_minutes": 30}, "duration_minutes", None),
        ({"duration_minutes": 361}, "duration_minutes", None),
        (with_customer(phone="4155550123"), "phone", None),
        (with_customer(phone="+0155550123"), "phone", None),
        (with_customer(phone="+1 415 555 0123"), "phone", None),
        (with_customer(email="not-an-email"), "email", None),
        (with_customer(email="ada@localhost"), "email", None),
        (with_customer(name=""), "name", None),
        (with_customer(name="   "), "name", None),
        (with_customer(name="x" * 201), "name", None),
        (with_customer(name="nul \u0000 byte"), "name", None),
        (with_customer(fax="+14155550123"), "fax", None),
        ({"customer": None}, "customer", None),
        (with_address(postal_code=""), "postal_code", None),
        (with_address(line2="x" * 201), "line2", None),
        ({"conversation_id": "has space"}, "conversation_id", None),
        ({"conversation_id": "x" * 129}, "conversation_id", None),
        ({"notes": "n" * 2001}, "notes", None),
        ({"surprise": True}, "surprise", None),
    ]


@pytest.mark.parametrize(("change", "field", "kind"), _bad_cases())
def test_bad_input_is_422_with_details_and_writes_nothing(settings, context, db, change, field, kind):
    body = booking_body()
    body.update(change)
    status, response = create(context, body)
    assert status == 422, response
    details = response["error"]["details"]
    assert any(field in d["loc"] for d in details), details
    if kind:
        assert details[0]["type"] == kind and details[0]["msg"]
    assert count_bookings(db) == 0


@pytest.mark.parametrize("missing", ["customer", "event_start", "timezone", "guest_count", "address"])
def test_missing_fields_are_422(settings, context, db, missing):
    body = booking_body()
    del body[missing]
    status, response = create(context, body)
    assert status == 422 and any(missing in d["loc"] for d in response["error"]["details"])
    assert count_bookings(db) == 0


@pytest.mark.parametrize("key", ["", "k" * 129, "has space", "nul\u0000"])
def test_bad_idempotency_keys_are_422(settings, context, db, key):
    status, response = (
        create(context, booking_body(), key=key)
        if key
        else call(context, CREATE, body=booking_body(), headers={"idempotency-key": key})
    )
    assert status == 422 and response["error"]["details"][0]["loc"][0] == "header"
    assert count_bookings(db) == 0


def test_malformed_json_and_database_down(settings, context, db):
    status, _ = call(context, CREATE, raw_body="{not json")
    assert status in (400, 422)
    with settings_module.override(database_url="postgresql://postgres@127.0.0.1:1/none", db_connect_timeout=1):
        status, body = create(context)
    assert status == 503 and body["error"]["details"]["dependency"] == "database"
    assert count_bookings(db) == 0


def test_a_well_formed_conversation_id_need_not_exist_yet(settings, context):
    cid = new_id("web:c")  # the worker creates the conversation with the confirmation message
    status, booking = create(context, booking_body(conversation_id=cid))
    assert status == 201 and booking["conversation_id"] == cid


def test_the_sample_event_books(settings, context):
    from tests.support.common import ROOT

    event = json.loads((ROOT / "events" / "create_booking.json").read_text())
    body = json.loads(event["body"])
    assert set(body) == set(booking_body(conversation_id="c", notes="n")) | {"duration_minutes"}
    body["event_start"] = local_start(days=30, hour=18, minute=30)  # the sample's date would age
    event["body"] = json.dumps(body)
    response = load_function("create_booking").lambda_handler(event, context)
    assert response["statusCode"] == 201, response["body"]
    assert json.loads(response["body"])["address"]["line2"] == "Apt 4"


def test_concurrent_reschedules_into_one_slot_never_overbook(settings, db):
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn, RescheduleIn

    n = 12
    with settings_module.override(chef_count=2):
        ids = [
            service.create_booking(
                BookingIn.model_validate(booking_body(local_start(days=40 + i))),
                caller=staff(),
                idempotency_key=None,
                correlation_id=None,
            )[0].id
            for i in range(n)
        ]
        change = RescheduleIn.model_validate({"event_start": local_start(days=60, hour=18)})
        idle = sessions(db)
        before = deadlocks(db, idle)
        results = _concurrently(
            n, lambda i: service.reschedule_booking(ids[i], change, caller=staff(), correlation_id=None)
        )
    moved = [r for r in results if not isinstance(r, Exception)]
    full = [r for r in results if isinstance(r, service.SlotFull)]
    assert len(moved) == 2 and len(full) == n - 2, [r for r in results if isinstance(r, Exception)][:3]
    assert overlaps(db) == 0
    assert db.fetchone("SELECT count(*) AS n FROM bookings WHERE version = 1")["n"] == n - 2  # the others unchanged
    assert deadlocks(db, idle) == before  # moves onto one chef take turns (chef_locks)
