"""The free-starts statement (GET /availability, the 409's next_free_starts) against its definition:
a start is free when some chef id in 1..CHEF_COUNT has no confirmed hold overlapping
[start, start + hold), the test create runs per chef (the statement reads one range scan of the window's holds
instead). Random bookings of a few chefs, some cancelled, some of a chef id
above CHEF_COUNT, back to back or with gaps shorter and longer than a hold, compared start by start.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hibachi.bookings import repository

from bench.scale import PER_CHEF_FREE_STARTS

# The definition, chef by chef (what create's pick tests): the statement availability used before its range scan.
REFERENCE = PER_CHEF_FREE_STARTS

INSERT = """
INSERT INTO bookings (status, chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                      customer_name, customer_phone, customer_email, address, request_hash, followup_due_at,
                      cancelled_at)
SELECT %(status)s, %(chef)s, %(start)s, %(end)s, %(held_until)s, 'UTC', %(minutes)s, 4, 'Test', '+14155550123',
       't@example.com', '{}'::jsonb, repeat('0', 64), %(end)s, CASE WHEN %(status)s = 'cancelled' THEN now() END
ON CONFLICT DO NOTHING
RETURNING id
"""


@pytest.fixture(autouse=True)
def clean(db):
    db.execute("TRUNCATE bookings CASCADE")


def _fill(db, rng: random.Random, day0: datetime, chefs: int) -> list:
    """Random holds on 3 days for chef ids 1..chefs: back to back, with short and long gaps; a
    hold that would overlap another of its chef's is refused by the exclusion constraint (skipped)."""
    ids = []
    for chef in range(1, chefs + 1):
        at = day0 + timedelta(minutes=rng.randrange(0, 600, 15))
        while at < day0 + timedelta(days=3):
            minutes = rng.choice([60, 90, 120, 180, 360])
            buffer = rng.choice([0, 30, 60])
            status = "cancelled" if rng.random() < 0.15 else "confirmed"
            params = {
                "status": status,
                "chef": chef,
                "start": at,
                "end": at + timedelta(minutes=minutes),
                "held_until": at + timedelta(minutes=minutes + buffer),
                "minutes": minutes,
            }
            row = db.fetchone(INSERT, params)
            if row is not None and status == "confirmed":
                ids.append(row["id"])
            at += timedelta(minutes=minutes + buffer + rng.choice([0, 0, 15, 60, 240, 600]))
    return ids


def _starts(day0: datetime) -> list[datetime]:
    return [day0 + timedelta(minutes=15 * k) for k in range(3 * 24 * 4)]


@pytest.mark.parametrize("seed", range(6))
def test_free_starts_equal_the_per_chef_definition(settings, db, seed):
    rng = random.Random(seed)
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=30 + seed)
    ids = _fill(db, rng, day0, chefs=6)
    starts = _starts(day0)
    free_counts = []
    for chef_count in (1, 2, 4, 5):  # chef ids 5 and 6 are above some of these counts: their holds block nothing
        for hold in (timedelta(minutes=90), timedelta(minutes=180), timedelta(minutes=420)):
            for exclude in (None, rng.choice(ids)):
                got = repository.free_starts(db, starts=starts, hold=hold, chef_count=chef_count, exclude=exclude)
                params = {
                    "starts": [int(s.timestamp()) for s in starts],
                    "hold": hold,
                    "chef_count": chef_count,
                    "exclude": exclude,
                }
                expected = [row["start"] for row in db.fetchall(REFERENCE, params)]
                assert got == expected, (chef_count, hold, exclude)
                free_counts.append(len(got))
    assert min(free_counts) < len(starts) and max(free_counts) > 0  # the cases are neither all free nor all full


def test_a_hold_of_a_chef_id_above_chef_count_blocks_nothing(settings, db):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    hold = timedelta(hours=3)

    def busy(chef: int) -> None:
        params = {"status": "confirmed", "chef": chef, "start": start, "end": start + hold}
        db.fetchone(INSERT, {**params, "held_until": start + hold, "minutes": 180})

    def free(chef_count: int) -> list[datetime]:
        return repository.free_starts(db, starts=[start], hold=hold, chef_count=chef_count)

    busy(1)
    busy(3)
    assert free(1) == []  # chef 1 is the only one, and busy
    assert free(2) == [start]  # chef 2 is free; chef 3's hold is not one of these 2 chefs'
    busy(2)
    assert (free(2), free(3), free(4)) == ([], [], [start])  # chef 3's hold counts from 3 chefs on


def test_holds_ending_and_starting_at_the_candidate_do_not_overlap(settings, db):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    hold = timedelta(hours=2)
    db.fetchone(  # chef 1 held until the candidate starts, then again from the candidate's end
        INSERT,
        {"status": "confirmed", "chef": 1, "start": start - hold, "end": start, "held_until": start, "minutes": 120},
    )
    db.fetchone(
        INSERT,
        {
            "status": "confirmed",
            "chef": 1,
            "start": start + hold,
            "end": start + 2 * hold,
            "held_until": start + 2 * hold,
            "minutes": 120,
        },
    )
    second = timedelta(seconds=1)
    got = repository.free_starts(db, starts=[start - second, start, start + second], hold=hold, chef_count=1)
    assert got == [start]


# -- create's pick: the lowest chef of 1..CHEF_COUNT with no confirmed hold overlapping [start, held_until) ------
LOWEST_FREE_CHEF = """
SELECT min(chef) AS chef FROM generate_series(1, %(chef_count)s::int) AS chef
WHERE NOT EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.chef_id = chef AND b.status = 'confirmed' AND b.held && tstzrange(%(start)s, %(held_until)s, '[)')
)
"""


def _create(db, start: datetime, held_until: datetime, chef_count: int) -> int | None:
    """The chef ``repository.create_booking`` gives a booking held for [start, held_until), None: full."""
    fields = {
        "start": start,
        "end": start + timedelta(hours=1),
        "held_until": held_until,
        "timezone": "UTC",
        "duration": 60,
        "guests": 4,
        "name": "Test",
        "phone": "+14155550123",
        "email": "t@example.com",
        "address": {"line1": "1 Main St"},
        "conversation_id": None,
        "notes": None,
        "due": held_until,
        "chef_count": chef_count,
    }
    actor = {"kind": "staff", "sub": "test", "via": "test"}
    row = repository.create_booking(
        db, fields=fields, caller=None, key=None, request_hash="0" * 64, attempts=3, actor=actor
    )
    return None if row is None else row["chef_id"]


@pytest.mark.parametrize("seed", range(3))
def test_create_picks_the_lowest_chef_the_per_chef_definition_finds_free(settings, db, seed):
    rng = random.Random(100 + seed)
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=40 + seed)
    _fill(db, rng, day0, chefs=6)
    picked = []
    for _ in range(60):
        start = day0 + timedelta(minutes=15 * rng.randrange(0, 3 * 24 * 4))
        held_until = start + timedelta(minutes=rng.choice([120, 180, 420]))
        chef_count = rng.choice([2, 4, 5])  # chef ids above the count hold nothing of theirs
        params = {"start": start, "held_until": held_until, "chef_count": chef_count}
        expected = db.fetchone(LOWEST_FREE_CHEF, params)["chef"]
        assert _create(db, start, held_until, chef_count) == expected, params
        picked.append(expected)
    assert None in picked and any(c is not None and c > 1 for c in picked)  # full slots and busy low chefs


def test_create_sees_a_hold_of_30_hours_and_not_one_that_ends_at_the_start(settings, db):
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=20)
    long_start = start - timedelta(hours=29)  # a 360-minute event and a 23-hour travel buffer: held past start
    long_hold = {"status": "confirmed", "chef": 1, "start": long_start, "end": long_start + timedelta(hours=6)}
    assert db.fetchone(INSERT, {**long_hold, "held_until": start + timedelta(hours=1), "minutes": 360})
    ends_at_start = {"status": "confirmed", "chef": 2, "start": start - timedelta(hours=3), "end": start}
    assert db.fetchone(INSERT, {**ends_at_start, "held_until": start, "minutes": 180})
    cancelled = {"status": "cancelled", "chef": 3, "start": start, "end": start + timedelta(hours=1)}
    assert db.fetchone(INSERT, {**cancelled, "held_until": start + timedelta(hours=2), "minutes": 60})
    held_until = start + timedelta(hours=2)
    assert [_create(db, start, held_until, 3) for _ in range(3)] == [2, 3, None]
