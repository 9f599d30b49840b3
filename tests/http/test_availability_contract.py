"""The availability/booking contract through the local gateway (template.yaml's routes and JWT
authorizer, the real create_booking handler in its worker processes, PostgreSQL), in both
directions: every start GET /availability lists is booked by POST /bookings with the same duration
(201), and every start of the slot grid it does not list is refused (409 or 422). Over a day with
bookings in it, both DST-change days of America/Los_Angeles, and the days at the lead-time limit.

The stack runs with one chef and a service window from 00:00 to 21:00, so the grid crosses the hour
DST skips or repeats and the half-hours after 21:00 are outside the window; the lead time is set
so that its limit falls at 15:15 local time three days from now.

Then the assistant's flow of the README, over HTTP: availability, book a listed start, see it
disappear, find the booking by phone, move it to another listed start, cancel it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from local.stack import LocalStack
from tests.integration.test_bookings import booking_body, dst_times

ROOT = Path(__file__).resolve().parents[2]
TZ = "America/Los_Angeles"
ZONE = ZoneInfo(TZ)
LEAD_LIMIT = time(15, 15)  # local time of the lead-time limit, three days from now
WINDOW = (time(0, 0), time(21, 0))

pytestmark = pytest.mark.skipif(
    not (ROOT / "functions" / "create_booking" / "app.py").exists(), reason="no create_booking handler"
)


def _day(days: int) -> date:
    return datetime.now(ZONE).date() + timedelta(days=days)


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory) -> Iterator[LocalStack]:
    limit = datetime.combine(_day(3), LEAD_LIMIT, tzinfo=ZONE)
    lead_hours = (limit - datetime.now(UTC)).total_seconds() / 3600
    env = {
        "CHEF_COUNT": "1",
        "MIN_LEAD_HOURS": f"{lead_hours:.6f}",
        "SERVICE_FIRST_START": WINDOW[0].strftime("%H:%M"),
        "SERVICE_LAST_START": WINDOW[1].strftime("%H:%M"),
        "SLOT_STEP_MINUTES": "30",
    }
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE bookings CASCADE")
    with LocalStack(
        database_url,
        env=env,
        key_dir=tmp_path_factory.mktemp("jwt"),
        enable_poller=False,
        enable_scheduler=False,
        enable_reconciler=False,
    ) as s:
        yield s


class Api:
    def __init__(self, stack: LocalStack):
        self.url = stack.url
        self.headers = stack.auth_headers(["bookings:read", "bookings:write", "staff"])

    def availability(self, day: date, days: int = 1, duration: int = 120) -> dict[str, list[str]]:
        r = requests.get(
            f"{self.url}/availability",
            params={"date": day.isoformat(), "days": days, "timezone": TZ, "duration_minutes": duration},
            headers=self.headers,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return {d["date"]: d["starts"] for d in r.json()["days"]}

    def book(self, start: str, duration: int = 120, **overrides) -> requests.Response:
        body = booking_body(start, duration_minutes=duration, **overrides)
        return requests.post(f"{self.url}/bookings", json=body, headers=self.headers, timeout=30)

    def cancel(self, booking_id: str) -> None:
        r = requests.post(f"{self.url}/bookings/{booking_id}/cancel", headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Api:
    return Api(stack)


def grid(day: date) -> list[str]:
    """Every half-hour of the local day, as a wall-clock time without offset (what POST takes)."""
    return [f"{day.isoformat()}T{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]


def check_contract(api: Api, day: date, duration: int = 120) -> tuple[int, int]:
    """Both directions over one day: listed -> 201 (then cancelled, so the day stays as it was);
    not listed -> 409 or 422, and nothing booked. Returns (listed, refused)."""
    listed = api.availability(day, duration=duration)[day.isoformat()]
    by_wall = {s[:16]: s for s in listed}
    assert len(by_wall) == len(listed), "a wall-clock time listed twice"
    refused = 0
    for wall in grid(day):
        r = api.book(wall, duration)
        if wall in by_wall:
            assert r.status_code == 201, f"{wall} was listed, POST answered {r.status_code}: {r.text}"
            assert r.json()["event_start"] == by_wall[wall], "listed with another offset than booked"
            api.cancel(r.json()["id"])
        else:
            assert r.status_code in (409, 422), f"{wall} was not listed, POST answered {r.status_code}: {r.text}"
            refused += 1
    assert api.availability(day, duration=duration)[day.isoformat()] == listed, "the check changed the day"
    return len(listed), refused


def test_contract_over_a_day_with_bookings(api):
    day = _day(6)
    kept = [api.book(f"{day}T{hm}", duration) for hm, duration in (("09:00", 120), ("17:00", 60))]
    assert [r.status_code for r in kept] == [201, 201]  # the chef is held 09:00-12:00 and 17:00-19:00
    cancelled = api.book(f"{day}T15:00", 60)
    assert cancelled.status_code == 201
    api.cancel(cancelled.json()["id"])  # a cancelled booking holds nothing
    listed, refused = check_contract(api, day)
    # 120 minutes plus 60 of travel must fit between the holds: end by 09:00, fit in 12:00-17:00, or
    # start from 19:00 (until the last start, 21:00)
    starts = [s[11:16] for s in api.availability(day)[day.isoformat()]]
    half_hours = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]
    expected = [hm for hm in half_hours if hm <= "06:00" or "12:00" <= hm <= "14:00" or "19:00" <= hm <= "21:00"]
    assert starts == expected
    assert (listed, refused) == (23, 25)
    listed_60, _ = check_contract(api, day, duration=60)
    assert listed_60 > listed


@pytest.mark.parametrize("kind", ["spring forward", "fall back"])
def test_contract_on_the_dst_change_days(api, kind):
    gap, fold = dst_times(ZONE)
    day = date.fromisoformat((gap if kind == "spring forward" else fold)[:10])
    assert api.book(f"{day}T08:00").status_code == 201
    listed = api.availability(day)[day.isoformat()]
    walls = [s[11:16] for s in listed]
    offsets = {s[16:] for s in listed}
    assert len(offsets) == 2, "both offsets of the day appear"
    if kind == "spring forward":
        assert "02:00" not in walls and "02:30" not in walls  # do not exist
        # 01:30 PST + 3 real hours is 05:30 PDT: still clear of the 08:00 booking
        assert walls[:6] == ["00:00", "00:30", "01:00", "01:30", "03:00", "03:30"] and walls[8] == "05:00"
    else:
        assert "01:00" not in walls and "01:30" not in walls  # happen twice
        assert walls[:4] == ["00:00", "00:30", "02:00", "02:30"] and walls[8] == "05:00"
    assert "05:30" not in walls and "11:00" in walls
    check_contract(api, day)


def test_contract_at_the_lead_time_limit(api):
    before, limit_day = _day(2), _day(3)
    assert check_contract(api, before) == (0, 48)  # every start is too soon
    listed = api.availability(limit_day)[limit_day.isoformat()]
    assert listed[0][11:16] == "15:30"  # the limit is 15:15
    r = api.book(f"{limit_day}T15:00")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["type"] == "lead_time"
    check_contract(api, limit_day)


def test_the_assistants_flow(api, stack):
    """The README's walkthrough: ask, book a listed start, see it go, find it by phone, move, cancel."""
    day = _day(9)
    before = api.availability(day)[day.isoformat()]
    start = next(s for s in before if s[11:16] == "18:00")
    phone = "+14155550199"
    customer = {"name": "Ada Lovelace", "phone": phone, "email": "ada@example.com"}
    r = api.book(start[:16], customer=customer, conversation_id="web:flow-1")
    assert r.status_code == 201, r.text
    booking = r.json()
    after = api.availability(day)[day.isoformat()]
    assert start not in after and set(after) < set(before)

    r = requests.post(f"{api.url}/bookings/search", json={"phone": phone}, headers=api.headers, timeout=30)
    assert r.status_code == 200 and [b["id"] for b in r.json()["items"]] == [booking["id"]]

    other = after[0]
    r = requests.patch(
        f"{api.url}/bookings/{booking['id']}", json={"event_start": other[:16]}, headers=api.headers, timeout=30
    )
    assert r.status_code == 200 and r.json()["event_start"] == other, r.text
    moved = api.availability(day)[day.isoformat()]
    assert other not in moved and start in moved

    api.cancel(booking["id"])
    assert api.availability(day)[day.isoformat()] == before
    read_only = stack.auth_headers(["bookings:read", "staff"])
    assert requests.post(f"{api.url}/bookings", json={}, headers=read_only, timeout=30).status_code == 403
    assert requests.get(f"{api.url}/availability", params={"date": day.isoformat()}, timeout=30).status_code == 401
