"""The assistant's booking queries, in process against the real PostgreSQL: GET /availability,
POST /bookings/search, and the service hours of POST/PATCH /bookings (with the 409's
next_free_starts). The availability/booking contract through the local gateway is in
tests/http/test_availability_contract.py.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from zoneinfo import ZoneInfo

import pytest
from hibachi import settings as settings_module

from testkit.events import http_event
from tests.conftest import ROOT, load_function
from tests.integration.test_bookings import PATCH, booking_body, call, count_bookings, create, local_start

TZ = "America/Los_Angeles"
ZONE = ZoneInfo(TZ)
AVAILABILITY = "GET /availability"
SEARCH = "POST /bookings/search"
GRID = [f"{h:02d}:{m:02d}" for h in range(11, 21) for m in (0, 30)][:-1]  # 11:00 .. 20:00, the defaults


@pytest.fixture(autouse=True)
def clean(db):
    db.execute("TRUNCATE bookings CASCADE")
    return


def availability(context, **query) -> tuple[int, dict]:
    query = {"timezone": TZ, **{k: str(v) for k, v in query.items()}}
    event = http_event(
        "GET",
        "/availability",
        route_key=AVAILABILITY,
        query=query,
        claims={"sub": "tester"},
        scopes=["bookings:read", "staff"],
    )
    response = load_function("create_booking").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def search(context, body: dict | None = None, raw_body: str | None = None) -> tuple[int, dict]:
    return call(context, SEARCH, body=body if raw_body is None else None, raw_body=raw_body)


def day(days: int) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days)


def hm(starts: list[str]) -> list[str]:
    return [f"{datetime.fromisoformat(s):%H:%M}" for s in starts]


# -- availability -----------------------------------------------------------------------------------------
def test_every_day_asked_for_with_its_starts_in_local_time(settings, context):
    first = day(10)
    status, body = availability(context, date=first.isoformat(), days=3)
    assert status == 200, body
    assert body["timezone"] == TZ and body["duration_minutes"] == 120
    assert [d["date"] for d in body["days"]] == [(first + timedelta(days=k)).isoformat() for k in range(3)]
    for d in body["days"]:
        assert hm(d["starts"]) == GRID
        starts = [datetime.fromisoformat(s) for s in d["starts"]]
        assert starts == sorted(starts)
        assert all(
            s.utcoffset() == s.astimezone(ZONE).utcoffset() and s.date().isoformat() == d["date"] for s in starts
        )


def test_booked_times_disappear_with_the_travel_buffer_before_and_after(settings, context):
    with settings_module.override(chef_count=1):
        assert create(context, booking_body(local_start(days=10, hour=15)))[0] == 201  # holds 15:00-18:00
        _, body = availability(context, date=day(10).isoformat())
        # a 120-minute event needs 60 minutes of travel on either side: it must end by 14:00 or start at 18:00
        assert hm(body["days"][0]["starts"]) == ["11:00", "11:30", "12:00", *GRID[GRID.index("18:00") :]]
        _status, body = availability(context, date=day(10).isoformat(), duration_minutes=60)
        assert hm(body["days"][0]["starts"])[:5] == ["11:00", "11:30", "12:00", "12:30", "13:00"]
        assert "13:30" not in hm(body["days"][0]["starts"])


def test_a_full_day_is_listed_with_no_starts(settings, context):
    with settings_module.override(
        chef_count=1, service_first_start=wall_time(12, 0), service_last_start=wall_time(14, 0)
    ):
        assert create(context, booking_body(local_start(days=11, hour=13)))[0] == 201
        status, body = availability(context, date=day(10).isoformat(), days=3)
        assert status == 200
        assert [len(d["starts"]) for d in body["days"]] == [5, 0, 5]


def test_the_lead_time_and_the_past(settings, context):
    now = datetime.now(UTC)
    target = datetime.combine(day(3), wall_time(15, 15), tzinfo=ZONE)  # the limit falls between 15:00 and 15:30
    with settings_module.override(min_lead_hours=(target - now).total_seconds() / 3600):
        status, body = availability(context, date=day(1).isoformat(), days=3)
        assert [len(d["starts"]) for d in body["days"]][:2] == [0, 0]
        assert hm(body["days"][2]["starts"]) == GRID[GRID.index("15:30") :]
    status, body = availability(context, date=day(-5).isoformat(), days=2)
    assert status == 200 and [d["starts"] for d in body["days"]] == [[], []]


def test_settings_shape_the_grid(settings, context):
    with settings_module.override(
        slot_step_minutes=45, service_first_start=wall_time(9, 0), service_last_start=wall_time(12, 0)
    ):
        _status, body = availability(context, date=day(10).isoformat())
        assert hm(body["days"][0]["starts"]) == ["09:00", "09:45", "10:30", "11:15", "12:00"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"date": "2027-1-12"}, "date"),
        ({"date": "2027-02-30"}, "date"),
        ({"date": "1800000000"}, "date"),
        ({"date": "2027-01-12T00:00"}, "date"),
        ({"date": None}, "date"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"days": "0"}, "days"),
        ({"days": "15"}, "days"),
        ({"days": "two"}, "days"),
        ({"duration_minutes": "59"}, "duration_minutes"),
        ({"duration_minutes": "361"}, "duration_minutes"),
        ({"duration_minutes": "90.5"}, "duration_minutes"),
        ({"date": "9999-12-31", "days": "2"}, "date"),
    ],
)
def test_bad_availability_queries_are_422_with_the_field(settings, context, query, field):
    full = {"date": day(10).isoformat(), "timezone": TZ, **query}
    event = http_event(
        "GET",
        "/availability",
        route_key=AVAILABILITY,
        query={k: v for k, v in full.items() if v is not None},
        claims={"sub": "tester"},
        scopes=["bookings:read", "staff"],
    )
    response = load_function("create_booking").lambda_handler(event, context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 422, body
    assert ["query", field] in [d["loc"] for d in body["error"]["details"]], body


def test_the_sample_events_answer(settings, context, db):
    # the samples are the assistant in the chat web:3f2a9c, where the customer's phone was verified
    db.execute("DELETE FROM conversation_identities WHERE conversation_id = 'web:3f2a9c'")
    db.execute(
        "INSERT INTO conversation_identities (conversation_id, kind, value, verified_by)"
        " VALUES ('web:3f2a9c', 'phone', '+14155550123', 'sms')"
    )
    event = json.loads((ROOT / "events" / "availability.json").read_text())
    event["queryStringParameters"]["date"] = day(30).isoformat()  # the sample's date would age
    response = load_function("create_booking").lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]
    assert [len(d["starts"]) for d in json.loads(response["body"])["days"]] == [len(GRID)] * 3
    create(context, booking_body(local_start(days=30)))
    event = json.loads((ROOT / "events" / "search_bookings.json").read_text())
    response = load_function("create_booking").lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]
    assert len(json.loads(response["body"])["items"]) == 1


# -- service hours and the 409 ------------------------------------------------------------------------------
@pytest.mark.parametrize(("hour", "minute"), [(10, 30), (20, 30), (23, 0), (0, 0)])
def test_a_start_outside_service_hours_is_422_naming_the_window(settings, context, db, hour, minute):
    status, body = create(context, booking_body(local_start(days=10, hour=hour, minute=minute)))
    assert status == 422 and body["error"]["code"] == "outside_service_hours"
    (detail,) = body["error"]["details"]
    assert detail["loc"] == ["body", "event_start"] and detail["type"] == "outside_service_hours"
    assert detail["window"] == {"first_start": "11:00", "last_start": "20:00", "step_minutes": 30, "timezone": TZ}
    assert count_bookings(db) == 0


def test_patch_refuses_a_start_outside_service_hours_and_changes_nothing(settings, context):
    status, booking = create(context, booking_body(local_start(days=10)))
    status, body = call(context, PATCH, booking["id"], body={"event_start": local_start(days=11, hour=21)})
    assert status == 422 and body["error"]["code"] == "outside_service_hours"
    assert body["error"]["details"][0]["window"]["last_start"] == "20:00"
    assert call(context, "GET /bookings/{booking_id}", booking["id"])[1] == booking


def test_the_window_ends_are_bookable_and_a_start_off_the_grid_is_checked_like_any_other(settings, context):
    assert create(context, booking_body(local_start(days=10, hour=11)))[0] == 201
    assert create(context, booking_body(local_start(days=11, hour=20)))[0] == 201
    status, booking = create(context, booking_body(local_start(days=12, hour=18, minute=15)))
    assert status == 201 and booking["event_start"][11:16] == "18:15"
    with settings_module.override(chef_count=1):
        status, body = create(context, booking_body(local_start(days=12, hour=19, minute=10)))
        assert status == 409 and body["error"]["code"] == "slot_full"


def test_409_offers_the_nearest_free_starts_that_day_within_service_hours(settings, context):
    with settings_module.override(chef_count=1):
        assert create(context, booking_body(local_start(days=10, hour=13)))[0] == 201  # holds 13:00-16:00
        status, body = create(context, booking_body(local_start(days=10, hour=14)))
        assert status == 409
        offered = body["error"]["details"]["next_free_starts"]
        # a 120-minute event plus the buffers fits before it only by starting at 10:00, before the first start
        assert hm(offered) == ["16:00", "16:30", "17:00", "17:30", "18:00"]
        status, body = availability(context, date=day(10).isoformat())
        assert set(offered) <= set(body["days"][0]["starts"])  # the same code
        status, body = create(context, booking_body(local_start(days=10, hour=19, minute=30)))
        assert status == 201  # holds 19:30-22:30
        status, body = create(context, booking_body(local_start(days=10, hour=19)))
        assert status == 409
        assert hm(body["error"]["details"]["next_free_starts"]) == ["16:00", "16:30"]  # earlier ones, none after 20:00


def test_409_of_a_patch_does_not_count_the_booking_being_moved(settings, context):
    with settings_module.override(chef_count=1):
        status, mine = create(context, booking_body(local_start(days=10, hour=11)))  # holds 11:00-14:00
        assert create(context, booking_body(local_start(days=10, hour=17)))[0] == 201  # holds 17:00-20:00
        status, body = call(context, PATCH, mine["id"], body={"event_start": local_start(days=10, hour=16, minute=30)})
        assert status == 409  # its own hold (11:00-14:00) is free for it: 11:00-14:00 and 20:00, nearest first
        assert hm(body["error"]["details"]["next_free_starts"]) == ["12:30", "13:00", "13:30", "14:00", "20:00"]


# -- search -------------------------------------------------------------------------------------------------
def _book(context, days: int, hour: int = 18, minute: int = 0, **overrides) -> dict:
    status, booking = create(context, booking_body(local_start(days=days, hour=hour, minute=minute), **overrides))
    assert status == 201, booking
    return booking


def _customer(phone: str, email: str = "ada@example.com") -> dict:
    return {"customer": {"name": "Ada Lovelace", "phone": phone, "email": email}}


def test_search_by_phone_email_conversation_and_status(settings, context):
    a = _book(context, 10, **_customer("+14155550001", "Grace.Hopper@Example.COM"), conversation_id="web:c1")
    b = _book(context, 11, **_customer("+14155550001"), conversation_id="web:c2")
    c = _book(context, 12, **_customer("+14155550002"), conversation_id="web:c1")
    call(context, "POST /bookings/{booking_id}/cancel", b["id"])

    def ids(body: dict) -> list[str]:
        status, page = search(context, body)
        assert status == 200, page
        return [x["id"] for x in page["items"]]

    assert ids({"phone": "+14155550001"}) == [a["id"], b["id"]]
    assert ids({"phone": "+14155550001", "status": "confirmed"}) == [a["id"]]
    assert ids({"status": "cancelled"}) == [b["id"]]
    assert ids({"conversation_id": "web:c1"}) == [a["id"], c["id"]]
    # the email as normalized at booking time: the domain lower-cased, the local part kept
    assert ids({"email": "Grace.Hopper@example.com"}) == [a["id"]]
    assert ids({"email": "Grace.Hopper@EXAMPLE.com"}) == [a["id"]]
    assert ids({"email": "grace.hopper@example.com"}) == []
    assert ids({"phone": "+14155550009"}) == []


def test_search_from_to_are_local_dates_in_the_bookings_zone(settings, context):
    late = _book(context, 10, hour=20)  # 20:00 in Los Angeles: the next day in UTC
    tokyo_day = day(10)
    tokyo = _book(
        context, 0, timezone="Asia/Tokyo", event_start=f"{tokyo_day.isoformat()}T11:00"
    )  # the day before in LA
    _book(context, 12)

    def ids(body: dict) -> list[str]:
        return [x["id"] for x in search(context, body)[1]["items"]]

    d10 = day(10).isoformat()
    assert ids({"from": d10, "to": d10}) == [tokyo["id"], late["id"]]
    assert ids({"to": d10}) == [tokyo["id"], late["id"]]
    assert len(ids({"from": d10})) == 3
    assert ids({"from": day(11).isoformat(), "to": day(11).isoformat()}) == []


def test_search_without_filters_is_the_confirmed_bookings_from_today_on(settings, context, db):
    keep = [_book(context, 10), _book(context, 11)]
    cancelled = _book(context, 12)
    call(context, "POST /bookings/{booking_id}/cancel", cancelled["id"])
    # a confirmed booking that started yesterday (written directly: the API refuses the past)
    past = _book(context, 13)
    db.execute(
        """UPDATE bookings SET event_start = now() - interval '1 day', event_end = now() - interval '22 hours',
               held_until = now() - interval '21 hours', followup_due_at = now() WHERE id = %s""",
        [past["id"]],
    )
    for body in ({}, {"limit": 20}):
        status, page = search(context, body)
        assert status == 200 and [x["id"] for x in page["items"]] == [b["id"] for b in keep]
        assert page["next_cursor"] is None


def test_cursor_pages_cover_every_booking_once_while_bookings_are_made(settings, context):
    with settings_module.override(chef_count=3):
        initial = [_book(context, 10 + k // 4, hour=11 + 3 * (k % 4), **_customer("+14155550100")) for k in range(14)]
        seen: list[str] = []
        cursor = None
        made = []
        for page_number in range(20):
            status, page = search(
                context, {"phone": "+14155550100", "limit": 4, **({"cursor": cursor} if cursor else {})}
            )
            assert status == 200, page
            assert len(page["items"]) <= 4
            seen += [x["id"] for x in page["items"]]
            # between page reads: one booking before the pages read so far, one after
            made.append(_book(context, 2 + page_number % 8, hour=11 + page_number // 8, **_customer("+14155550100")))
            made.append(_book(context, 30 + page_number, **_customer("+14155550100")))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), "a booking appeared twice"
        assert {b["id"] for b in initial} <= set(seen), "a booking that existed all along was skipped"
        starts = [
            datetime.fromisoformat(x["event_start"])
            for x in search(context, {"phone": "+14155550100", "limit": 100})[1]["items"]
        ]
        assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "4155550123"}, "phone"),
        ({"phone": "+1 415 555 0123"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ada@localhost"}, "email"),
        ({"from": "2027-02-30"}, "from"),
        ({"from": "2027-03-02", "to": "2027-03-01"}, "to"),
        ({"to": 1800000000}, "to"),
        ({"status": "pending"}, "status"),
        ({"conversation_id": "has space"}, "conversation_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "20"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "bm90LWpzb24"}, "cursor"),
        ({"phone_number": "+14155550123"}, "phone_number"),
        ({"from_": "2027-03-01"}, "from_"),
    ],
)
def test_bad_search_bodies_are_422_with_the_field(settings, context, body, field):
    status, response = search(context, body)
    assert status == 422, response
    assert ["body", field] in [d["loc"] for d in response["error"]["details"]], response


def test_a_cursor_belongs_to_its_filters(settings, context):
    for k in range(3):
        _book(context, 10 + k, **_customer("+14155550100"))
    status, page = search(context, {"phone": "+14155550100", "limit": 1})
    assert page["next_cursor"]
    status, other = search(context, {"phone": "+14155550101", "limit": 1, "cursor": page["next_cursor"]})
    assert status == 422 and other["error"]["details"][0]["loc"] == ["body", "cursor"]
    status, same = search(context, {"phone": "+14155550100", "limit": 2, "cursor": page["next_cursor"]})
    assert status == 200 and len(same["items"]) == 2 and same["next_cursor"] is None


def test_search_body_must_be_json(settings, context):
    assert search(context, raw_body="{not json")[0] == 422
    assert search(context, raw_body="[]")[0] == 422
