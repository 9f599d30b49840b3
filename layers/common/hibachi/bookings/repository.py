"""SQL of bookings. Each function sends one statement (one round trip) unless it says otherwise.

Capacity is enforced by ``bookings_chef_capacity``, an exclusion constraint over (chef_id, held)
of confirmed bookings. The create statement picks a chef that is free in its snapshot and inserts
with ``ON CONFLICT DO NOTHING`` and no conflict target, so the exclusion constraint is an arbiter
too: a request that lost the race for that chef (or for its Idempotency-Key) to a concurrent one
inserts nothing, without an error and without the deadlock two plain inserts that each see the
other's uncommitted row can run into. It says so (``retry``) and is run again: the new snapshot
sees the winner, and it picks another chef, finds the key's booking, or finds the slot full.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from hibachi.db import Database
from hibachi.errors import EXCLUSION_VIOLATION, ConstraintViolation

COLUMNS = """id, status, version, chef_id, event_start, event_end, timezone, duration_minutes, guest_count,
    customer_name, customer_phone, customer_email, address, conversation_id, notes, request_hash,
    followup_due_at, created_at, updated_at, cancelled_at"""


def _qualified(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in COLUMNS.split(","))


# A chef is free for [start, held_until) when none of their confirmed bookings overlaps it; the
# exclusion constraint's GiST index answers this.
_CHEF_FREE = """NOT EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.chef_id = chef AND b.status = 'confirmed'
          AND b.held && tstzrange(%(start)s::timestamptz, %(held_until)s::timestamptz, '[)'){exclude}
    )"""

# Create in ONE statement. ``outcome``: ``created`` (inserted with the lowest free chef);
# ``existing`` (the Idempotency-Key's booking; its request_hash tells a retry from another
# request); ``retry`` (a chef was free in this snapshot but a concurrent request took it, or the
# key, first: run again); no row at all: no chef is free, the slot is full.
CREATE_BOOKING = f"""
WITH pick AS (
    SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {_CHEF_FREE.format(exclude="")}
    ORDER BY chef
    LIMIT 1
), ins AS (
    INSERT INTO bookings (chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                          customer_name, customer_phone, customer_email, address, conversation_id, notes,
                          idempotency_key, request_hash, followup_due_at)
    SELECT pick.chef, %(start)s, %(end)s, %(held_until)s, %(timezone)s, %(duration)s, %(guests)s,
           %(name)s, %(phone)s, %(email)s, %(address)s, %(conversation_id)s, %(notes)s,
           %(key)s, %(hash)s, %(due)s
    FROM pick
    ON CONFLICT DO NOTHING
    RETURNING {COLUMNS}
), existing AS (
    SELECT {COLUMNS} FROM bookings
    WHERE %(key)s::text IS NOT NULL AND idempotency_key = %(key)s::text AND NOT EXISTS (SELECT 1 FROM ins)
)
SELECT 'created' AS outcome, ins.* FROM ins
UNION ALL
SELECT 'existing', existing.* FROM existing
UNION ALL
SELECT 'retry', {_qualified("b")} FROM pick LEFT JOIN bookings b ON false
WHERE NOT EXISTS (SELECT 1 FROM ins) AND NOT EXISTS (SELECT 1 FROM existing)
"""  # noqa: S608 - constant fragments only

GET_BOOKING = f"SELECT {COLUMNS} FROM bookings WHERE id = %(id)s"  # noqa: S608 - constant fragments only

# Cancel in ONE statement: only a confirmed booking whose event has not started changes (status,
# cancelled_at, version); the chef is free at once because the constraint covers confirmed rows
# only. The second branch returns the unchanged row so the caller can tell "already cancelled"
# (200), "already started" (409) and "no such booking" (no row, 404).
CANCEL_BOOKING = f"""
WITH upd AS (
    UPDATE bookings SET status = 'cancelled', cancelled_at = now(), updated_at = now(), version = version + 1
    WHERE id = %(id)s AND status = 'confirmed' AND event_start > now()
    RETURNING {COLUMNS}
)
SELECT true AS changed, upd.* FROM upd
UNION ALL
SELECT false AS changed, {COLUMNS} FROM bookings WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM upd)
"""  # noqa: S608 - constant fragments only

# Reschedule in ONE statement, guarded by the version the caller read: move to a free chef
# (keeping the current one when it is free; the booking's own hold does not count), or change
# nothing. The chef's ``chef_locks`` row is locked first, so concurrent moves onto one chef take
# turns (the later one then fails the constraint at once: exclusion_violation, run again) instead
# of deadlocking. The second branch returns the current row and whether any chef was free.
RESCHEDULE_BOOKING = f"""
WITH free AS (
    SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {_CHEF_FREE.format(exclude=" AND b.id <> %(id)s")}
    ORDER BY chef <> %(current_chef)s, chef
    LIMIT 1
), locked AS (
    SELECT l.chef_id AS chef FROM chef_locks l JOIN free ON l.chef_id = free.chef
    FOR UPDATE OF l
), upd AS (
    UPDATE bookings bk SET chef_id = locked.chef, event_start = %(start)s, event_end = %(end)s,
        held_until = %(held_until)s, duration_minutes = %(duration)s, guest_count = %(guests)s,
        followup_due_at = %(due)s, version = bk.version + 1, updated_at = now()
    FROM locked
    WHERE bk.id = %(id)s AND bk.version = %(version)s AND bk.status = 'confirmed'
    RETURNING {_qualified("bk")}
)
SELECT 'updated' AS outcome, upd.* FROM upd
UNION ALL
SELECT CASE WHEN EXISTS (SELECT 1 FROM free) THEN 'retry' ELSE 'full' END AS outcome, {COLUMNS}
FROM bookings WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM upd)
"""  # noqa: S608 - constant fragments only

# Which candidate starts (with the ends of their holds) have a free chef: GET /availability for up
# to 14 days, and the 409's next_free_starts, in one statement either way. A chef is free exactly
# when the create statement's test (``_CHEF_FREE``, the exclusion constraint's overlap) passes, so a
# start listed here is one that create can book.
FREE_STARTS = f"""
SELECT s.start
FROM (
    SELECT to_timestamp(e) AS start, to_timestamp(e) + %(hold)s::interval AS held_until
    FROM unnest(%(starts)s::bigint[]) AS e
) AS s
WHERE EXISTS (
    SELECT 1 FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {
    _CHEF_FREE.replace("%(start)s", "s.start")
    .replace("%(held_until)s", "s.held_until")
    .format(exclude=" AND b.id IS DISTINCT FROM %(exclude)s::uuid")
}
)
ORDER BY s.start
"""  # noqa: S608 - constant fragments only

# POST /bookings/search: one statement, keyset-paginated on (event_start, id). Only the filters
# given are part of the WHERE clause (fixed fragments, values as parameters), so each one can use
# its index (migration 0005): (customer_phone | customer_email | conversation_id | status,
# event_start, id), or (event_start, id) alone. A local-date bound is checked exactly in the
# booking's own zone, and coarsely (a day's margin) on event_start, which the index can use.
_SEARCH_FILTERS = {
    "conversation_id": "conversation_id = %(conversation_id)s",
    "phone": "customer_phone = %(phone)s",
    "email": "customer_email = %(email)s",
    "status": "status = %(status)s",
    "from": """event_start >= (%(from)s::date - 1)::timestamp AT TIME ZONE 'UTC'
        AND (event_start AT TIME ZONE timezone)::date >= %(from)s::date""",
    "to": """event_start < (%(to)s::date + 2)::timestamp AT TIME ZONE 'UTC'
        AND (event_start AT TIME ZONE timezone)::date <= %(to)s::date""",
    # no filter at all: confirmed, from today in the booking's zone on
    "today": """event_start >= now() - interval '2 days'
        AND (event_start AT TIME ZONE timezone)::date >= (now() AT TIME ZONE timezone)::date""",
    "after": "(event_start, id) > (%(after_start)s::timestamptz, %(after_id)s::uuid)",
}


def search_sql(filters: list[str]) -> str:
    """The search statement for the named ``_SEARCH_FILTERS`` (a fixed text per combination)."""
    where = " AND ".join(f"({_SEARCH_FILTERS[name]})" for name in filters) or "true"
    return f"SELECT {COLUMNS} FROM bookings WHERE {where} ORDER BY event_start, id LIMIT %(limit)s"  # noqa: S608 - constant fragments only


def create_booking(
    db: Database, *, fields: dict[str, Any], key: str | None, request_hash: str, attempts: int
) -> dict[str, Any] | None:
    """Run ``CREATE_BOOKING`` until it answers: a row whose ``outcome`` is ``created`` or ``existing``,
    or ``None`` when the slot is full.

    One round trip, unless a concurrent request took the chosen chef or the key first (each retry
    means another booking committed, so ``attempts`` = chefs + 2 is enough), or, for a keyed request
    that found the slot full, once more: the key's first request may be what filled it.
    """
    params = {**fields, "address": Jsonb(fields["address"]), "key": key, "hash": request_hash}
    key_retry = key is not None
    for _ in range(attempts):
        try:
            row = db.fetchone(CREATE_BOOKING, params)
        except ConstraintViolation as exc:  # an exclusion is not expected: the constraint is an arbiter
            if exc.sqlstate != EXCLUSION_VIOLATION:
                raise
            continue
        if row is not None and row["outcome"] == "retry":
            continue
        if row is None and key_retry:
            key_retry = False
            continue
        return row
    return None


def get_booking(db: Database, booking_id: UUID) -> dict[str, Any] | None:
    return db.fetchone(GET_BOOKING, {"id": booking_id})


def cancel_booking(db: Database, booking_id: UUID) -> dict[str, Any] | None:
    return db.fetchone(CANCEL_BOOKING, {"id": booking_id})


def reschedule_booking(
    db: Database, booking_id: UUID, *, version: int, current_chef: int, slot: dict[str, Any]
) -> dict[str, Any] | None:
    """One attempt; the row's ``outcome`` is ``updated``, ``full`` or ``retry`` (the row changed
    under us: read it again). ``None``: the booking does not exist. exclusion_violation propagates."""
    return db.fetchone(RESCHEDULE_BOOKING, {**slot, "id": booking_id, "version": version, "current_chef": current_chef})


def free_starts(
    db: Database, *, starts: list[datetime], hold: timedelta, chef_count: int, exclude: UUID | None = None
) -> list[datetime]:
    """Those of ``starts`` (aware, whole seconds) for which a chef is free for ``hold`` (the event and
    the travel buffer after it), ascending; ``exclude``: a booking whose own hold does not count (the
    one being moved). The starts travel as Unix seconds: an integer array costs the client a fraction
    of what as many timestamps do."""
    if not starts:
        return []
    params = {
        "starts": [int(start.timestamp()) for start in starts],
        "hold": hold,
        "chef_count": chef_count,
        "exclude": exclude,
    }
    return [row["start"] for row in db.fetchall(FREE_STARTS, params)]


def search_bookings(
    db: Database, filters: dict[str, Any], *, after: tuple[datetime, UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` bookings matching ``filters`` (keys of ``_SEARCH_FILTERS``; ``{"today": True}``
    for the default view) after the ``after`` key (event_start, id), in that order."""
    names = [name for name in _SEARCH_FILTERS if name in filters]
    params: dict[str, Any] = {**filters, "limit": limit}
    if after is not None:
        names.append("after")
        params["after_start"], params["after_id"] = after
    return db.fetchall(search_sql(names), params)
