"""SQL of bookings. Each function sends one statement (one round trip) unless it says otherwise.

Capacity is enforced by ``bookings_chef_capacity``, an exclusion constraint over (chef_id, held)
of confirmed bookings; the statements below pick a chef that is free in their snapshot, and a
concurrent request that picked the same chef makes the later one fail with exclusion_violation
(23P01) without writing anything: it is retried, sees the winner, and picks another chef or none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from hibachi.db import Database

COLUMNS = """id, status, version, chef_id, event_start, event_end, timezone, duration_minutes, guest_count,
    customer_name, customer_phone, customer_email, address, conversation_id, notes, request_hash,
    followup_due_at, created_at, updated_at, cancelled_at"""

# A chef is free for [start, held_until) when none of their confirmed bookings overlaps it; the
# exclusion constraint's GiST index answers this.
_CHEF_FREE = """NOT EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.chef_id = chef AND b.status = 'confirmed'
          AND b.held && tstzrange(%(start)s::timestamptz, %(held_until)s::timestamptz, '[)'){exclude}
    )"""

# Create in ONE statement: insert with the lowest free chef (zero rows: the slot is full), or do
# nothing when the Idempotency-Key exists; the last branch then returns the booking that key made
# (its request_hash tells a retry from a different request). A key whose original request commits
# while this statement runs is neither inserted nor visible: zero rows, and the caller runs again.
CREATE_BOOKING = f"""
WITH ins AS (
    INSERT INTO bookings (chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                          customer_name, customer_phone, customer_email, address, conversation_id, notes,
                          idempotency_key, request_hash, followup_due_at)
    SELECT chef, %(start)s, %(end)s, %(held_until)s, %(timezone)s, %(duration)s, %(guests)s,
           %(name)s, %(phone)s, %(email)s, %(address)s, %(conversation_id)s, %(notes)s,
           %(key)s, %(hash)s, %(due)s
    FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {_CHEF_FREE.format(exclude="")}
    ORDER BY chef
    LIMIT 1
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING {COLUMNS}
)
SELECT true AS created, ins.* FROM ins
UNION ALL
SELECT false AS created, {COLUMNS}
FROM bookings
WHERE %(key)s::text IS NOT NULL AND idempotency_key = %(key)s::text AND NOT EXISTS (SELECT 1 FROM ins)
"""

GET_BOOKING = f"SELECT {COLUMNS} FROM bookings WHERE id = %(id)s"

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
"""

# Reschedule in ONE statement, guarded by the version the caller read: move to a free chef
# (keeping the current one when it is free; the booking's own hold does not count), or change
# nothing. The second branch returns the current row and whether any chef was free.
RESCHEDULE_BOOKING = f"""
WITH free AS (
    SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {_CHEF_FREE.format(exclude=" AND b.id <> %(id)s")}
    ORDER BY chef <> %(current_chef)s, chef
    LIMIT 1
), upd AS (
    UPDATE bookings bk SET chef_id = free.chef, event_start = %(start)s, event_end = %(end)s,
        held_until = %(held_until)s, duration_minutes = %(duration)s, guest_count = %(guests)s,
        followup_due_at = %(due)s, version = bk.version + 1, updated_at = now()
    FROM free
    WHERE bk.id = %(id)s AND bk.version = %(version)s AND bk.status = 'confirmed'
    RETURNING {", ".join("bk." + c.strip() for c in COLUMNS.split(","))}
)
SELECT 'updated' AS outcome, upd.* FROM upd
UNION ALL
SELECT CASE WHEN EXISTS (SELECT 1 FROM free) THEN 'retry' ELSE 'full' END AS outcome, {COLUMNS}
FROM bookings WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM upd)
"""

# The 409 path only: which of the candidate start times (with their hold ends) have a free chef.
FREE_STARTS = f"""
SELECT s.start
FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS s(start, held_until)
WHERE EXISTS (
    SELECT 1 FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE {_CHEF_FREE.replace("%(start)s", "s.start").replace("%(held_until)s", "s.held_until")
                     .format(exclude=" AND b.id IS DISTINCT FROM %(exclude)s::uuid")}
)
ORDER BY s.start
LIMIT %(limit)s
"""


def create_booking(db: Database, *, fields: dict[str, Any], key: str | None, request_hash: str,
                   attempts: int) -> dict[str, Any] | None:
    """Run ``CREATE_BOOKING`` until it answers; the row has ``created`` (False: the key's booking).

    ``None``: the slot is full (no chef free). One round trip unless two requests raced for the
    same chef (exclusion_violation: run again, up to ``attempts`` times) or for the same key.
    """
    params = {**fields, "address": Jsonb(fields["address"]), "key": key, "hash": request_hash}
    key_retry = key is not None
    for _ in range(attempts):
        try:
            row = db.fetchone(CREATE_BOOKING, params)
        except psycopg.errors.ExclusionViolation:
            continue  # another request took that chef a moment ago: choose again
        if row is None and key_retry:
            key_retry = False  # full, or the key's first request committed meanwhile: look once more
            continue
        return row
    return None


def get_booking(db: Database, booking_id: UUID) -> dict[str, Any] | None:
    return db.fetchone(GET_BOOKING, {"id": booking_id})


def cancel_booking(db: Database, booking_id: UUID) -> dict[str, Any] | None:
    return db.fetchone(CANCEL_BOOKING, {"id": booking_id})


def reschedule_booking(db: Database, booking_id: UUID, *, version: int, current_chef: int,
                       slot: dict[str, Any]) -> dict[str, Any] | None:
    """One attempt; the row's ``outcome`` is ``updated``, ``full`` or ``retry`` (the row changed
    under us: read it again). ``None``: the booking does not exist. exclusion_violation propagates."""
    return db.fetchone(RESCHEDULE_BOOKING, {**slot, "id": booking_id, "version": version,
                                            "current_chef": current_chef})


def free_starts(db: Database, *, starts: list[datetime], ends: list[datetime], chef_count: int,
                exclude: UUID | None = None, limit: int = 5) -> list[datetime]:
    if not starts:
        return []
    rows = db.fetchall(FREE_STARTS, {"starts": starts, "ends": ends, "chef_count": chef_count,
                                     "exclude": exclude, "limit": limit})
    return [row["start"] for row in rows]
