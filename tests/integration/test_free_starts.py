"""The free-starts statement (GET /availability, the 409's next_free_starts) against its definition:
a start is free when some chef id in 1..CHEF_COUNT has no confirmed hold overlapping
[start, start + hold), the test create runs per chef (the statement reads the ``chef_cells`` summary and,
for what it leaves undecided, one range scan of the window's holds instead). Random bookings of a few
chefs, some cancelled, some of a chef id above CHEF_COUNT, on and off the summary's 15-minute cells, back
to back or with gaps shorter and longer than a hold, compared start by start. And the summary itself:
after any sequence of changes, concurrent ones included, it equals the one computed from the holds.
"""

from __future__ import annotations

import contextlib
import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hibachi.bookings import repository

from bench.scale import PER_CHEF_FREE_STARTS
from tests.support.common import database_before

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
        at = day0 + timedelta(minutes=rng.randrange(0, 600, rng.choice([1, 5, 15])))  # on a cell's edge or inside
        while at < day0 + timedelta(days=3):
            minutes = rng.choice([60, 90, 120, 180, 360])
            buffer = rng.choice([0, 7, 30, 60])
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
            at += timedelta(minutes=minutes + buffer + rng.choice([0, 0, 8, 15, 22, 60, 240, 600]))
    return ids


def _starts(day0: datetime) -> list[datetime]:
    return [day0 + timedelta(minutes=5 * k) for k in range(3 * 24 * 12)]


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


# -- a move's pick: the booking's own chef when free (its own hold aside), else the lowest free one -------------
KEPT_OR_LOWEST_FREE_CHEF = """
SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
WHERE NOT EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.chef_id = chef AND b.status = 'confirmed' AND b.id <> %(id)s
      AND b.held && tstzrange(%(start)s, %(held_until)s, '[)')
)
ORDER BY chef <> %(current_chef)s, chef
LIMIT 1
"""


@pytest.mark.parametrize("seed", range(3))
def test_a_move_keeps_its_chef_or_picks_the_lowest_free_one_as_the_definition_does(settings, db, seed):
    from hibachi.callers import Caller

    rng = random.Random(300 + seed)
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=50 + seed)
    ids = _fill(db, rng, day0, chefs=6)
    staff = Caller(owner="test", sub="test", client_id=None, staff=True, conversation_id=None, via="test")
    outcomes = []
    for _ in range(60):
        booking = repository.get_booking(db, rng.choice(ids), caller=staff)
        assert booking is not None
        start = day0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, rng.choice([5, 15])))
        minutes = rng.choice([60, 120, 180])
        held_until = start + timedelta(minutes=minutes + 60)
        chef_count = rng.choice([2, 4, 6])
        expected = db.fetchone(
            KEPT_OR_LOWEST_FREE_CHEF,
            {
                "id": booking["id"],
                "start": start,
                "held_until": held_until,
                "chef_count": chef_count,
                "current_chef": booking["chef_id"],
            },
        )
        slot = {
            "start": start,
            "end": start + timedelta(minutes=minutes),
            "held_until": held_until,
            "due": held_until,
            "duration": minutes,
            "guests": 4,
            "chef_count": chef_count,
        }
        row = repository.reschedule_booking(
            db, booking["id"], version=booking["version"], current=booking, slot=slot, caller=staff
        )
        assert row is not None
        if expected is None:
            assert row["outcome"] is repository.Rescheduled.FULL, (slot, row["outcome"])
        else:
            assert row["outcome"] is repository.Rescheduled.UPDATED and row["chef_id"] == expected["chef"], slot
        outcomes.append((row["outcome"], expected and expected["chef"] == booking["chef_id"]))
    # full slots, moves that kept their chef and moves to another chef
    assert {o for o, _ in outcomes} == {repository.Rescheduled.FULL, repository.Rescheduled.UPDATED}
    kept = {k for o, k in outcomes if o is repository.Rescheduled.UPDATED}
    assert kept == {True, False}


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


# -- the summary (chef_cells) against the holds, after any changes -------------------------------------------
# Its definition, written apart from the triggers' chef_cell_marks: chef c's bit of cell k is set in
# ``starts`` when a confirmed hold of c starts in [k, k + 15 min), in ``ends`` when one ends in
# (k, k + 15 min), in ``covers`` when one holds all of [k, k + 15 min).
DEFINED = """
SELECT k.cell, h.chef_id AS chef, kind.name AS kind
FROM bookings h
CROSS JOIN LATERAL generate_series(
    date_bin('15 minutes', h.event_start, timestamptz '2000-01-01') - interval '15 minutes',
    h.held_until + interval '15 minutes', interval '15 minutes') AS k (cell)
CROSS JOIN LATERAL (VALUES
    ('starts', h.event_start >= k.cell AND h.event_start < k.cell + interval '15 minutes'),
    ('ends', h.held_until > k.cell AND h.held_until < k.cell + interval '15 minutes'),
    ('covers', h.event_start <= k.cell AND h.held_until >= k.cell + interval '15 minutes')
) AS kind (name, holds)
WHERE h.status = 'confirmed' AND kind.holds
ORDER BY 1, 2, 3
"""
KEPT = """
SELECT c.cell, chef, kind.name AS kind
FROM chef_cells c
CROSS JOIN generate_series(1, 100) AS chef
CROSS JOIN LATERAL (VALUES ('starts', c.starts), ('ends', c.ends), ('covers', c.covers)) AS kind (name, bits)
WHERE get_bit(kind.bits, chef - 1) = 1
ORDER BY 1, 2, 3
"""


def _summary_matches(conn: psycopg.Connection) -> int:
    defined, kept = conn.execute(DEFINED).fetchall(), conn.execute(KEPT).fetchall()
    assert kept == defined
    return len(kept)


MOVE = """UPDATE bookings SET event_start = event_start + %s, event_end = event_end + %s,
    held_until = held_until + %s, followup_due_at = followup_due_at + %s WHERE id = %s"""


def _change(conn: psycopg.Connection, rng: random.Random, day0: datetime) -> None:
    """One random change of a random booking (or of several in one statement): cancel, move, change chef,
    change what the summary does not read, delete, book again."""
    ids = [row[0] for row in conn.execute("SELECT id FROM bookings ORDER BY id").fetchall()]
    one = rng.choice(ids)
    shift = timedelta(minutes=rng.choice([-600, -97, -15, -7, 5, 15, 22, 60, 300]))
    changes = [
        ("UPDATE bookings SET status = 'cancelled', cancelled_at = now() WHERE id = %s", (one,)),
        ("UPDATE bookings SET status = 'confirmed', cancelled_at = NULL WHERE id = %s", (one,)),
        (MOVE, (shift, shift, shift, shift, one)),
        (
            "UPDATE bookings SET held_until = event_end + %s WHERE id = %s",
            (timedelta(minutes=rng.choice([0, 9, 60])), one),
        ),
        ("UPDATE bookings SET chef_id = %s WHERE id = %s", (rng.randint(1, 8), one)),
        ("UPDATE bookings SET guest_count = guest_count %% 50 + 1 WHERE id = %s", (one,)),
        ("DELETE FROM bookings WHERE id = %s", (one,)),
        ("UPDATE bookings SET status = 'cancelled' WHERE chef_id = %s AND status = 'confirmed'", (rng.randint(1, 8),)),
        ("DELETE FROM bookings WHERE chef_id = %s AND event_start < %s", (rng.randint(1, 8), day0 + timedelta(days=1))),
    ]
    statement, params = rng.choice(changes)
    # a move onto another hold of the chef, or a hold under 15 minutes: refused, nothing changed
    with contextlib.suppress(psycopg.errors.ExclusionViolation, psycopg.errors.CheckViolation):
        conn.execute(statement, params)


@pytest.mark.parametrize("seed", range(3))
def test_the_summary_equals_its_definition_after_any_changes(settings, db, database_url, seed):
    rng = random.Random(200 + seed)
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=60 + seed)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(3):
            _fill(db, rng, day0, chefs=8)
            for _ in range(40):
                _change(conn, rng, day0)
            assert _summary_matches(conn) > 0
        conn.execute("TRUNCATE bookings CASCADE")
        assert conn.execute("SELECT count(*) FROM chef_cells").fetchone() == (0,)


def test_concurrent_changes_leave_the_summary_equal_to_its_definition(settings, db, database_url):
    """Eight connections booking, moving and cancelling in the same hours at once (the same cells): no
    change is lost and none deadlocks (XOR commutes; each statement locks its cells in order)."""
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=90)
    _fill(db, random.Random(7), day0, chefs=8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(1000 + n)
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for _ in range(60):
                    if rng.random() < 0.3:
                        at = day0 + timedelta(minutes=rng.randrange(0, 24 * 60, 5))
                        minutes = rng.choice([60, 120])
                        params = {
                            "status": "confirmed",
                            "chef": rng.randint(1, 8),
                            "start": at,
                            "end": at + timedelta(minutes=minutes),
                            "minutes": minutes,
                            "held_until": at + timedelta(minutes=minutes + rng.choice([0, 7, 60])),
                        }
                        conn.execute(INSERT, params)
                    else:
                        _change(conn, rng, day0)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, whatever it is
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _summary_matches(conn) > 0


def test_the_migration_summarizes_the_bookings_made_before_it(settings, db, database_url):
    from hibachi.migrate import apply as apply_all

    with database_before(database_url, "0015") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for minute, status in ((0, "confirmed"), (7, "confirmed"), (0, "cancelled")):
                start = datetime(2030, 1, 2, 18, minute, tzinfo=UTC)
                params = {"status": status, "chef": 2 if minute else 1, "start": start, "minutes": 60}
                conn.execute(
                    INSERT, {**params, "end": start + timedelta(hours=1), "held_until": start + timedelta(hours=2)}
                )
        apply_all(url)
        with psycopg.connect(url, autocommit=True) as conn:
            # chef 1, 18:00-20:00: its first cell and 8 covered; chef 2, 18:07-20:07: its first cell, 7 covered
            # (18:15-19:45) and the cell it ends in; the cancelled booking: nothing
            assert _summary_matches(conn) == (1 + 8) + (1 + 7 + 1)
