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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict, cast
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from hibachi.callers import Caller
from hibachi.db import Database
from hibachi.errors import EXCLUSION_VIOLATION, ConstraintViolation
from hibachi.events.models import EventType
from hibachi.events.repository import booking_event, utc_text


class BookingRow(TypedDict):
    """A booking as the statements here read it. A TypedDict: ``RESCHEDULE_BOOKING`` stores it as
    JSON (``to_jsonb``) and ``GET_FOR_CHANGE`` reads that back, and the follow-up statements extend it
    with their columns; the services read it into their models."""

    id: UUID
    status: str
    version: int
    chef_id: int
    event_start: datetime
    event_end: datetime
    timezone: str
    duration_minutes: int
    guest_count: int
    customer_name: str
    customer_phone: str
    customer_email: str
    address: dict[str, Any]
    conversation_id: str | None
    notes: str | None
    request_hash: str
    followup_due_at: datetime
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None


# The columns a booking is read with, in ``BookingRow``'s order: the one list for every statement
# that returns bookings (here, and the follow-up statements in followups/repository.py).
COLUMN_NAMES = tuple(BookingRow.__annotations__)


class Created(StrEnum):
    """What ``CREATE_BOOKING`` did."""

    CREATED = "created"  # inserted with the lowest free chef
    EXISTING = "existing"  # the Idempotency-Key's booking (its request_hash tells a retry from another request)
    RETRY = "retry"  # a concurrent request took the chef or the key first: run again


class Rescheduled(StrEnum):
    """What ``RESCHEDULE_BOOKING`` did."""

    UPDATED = "updated"
    FULL = "full"  # no chef is free then; nothing changed
    RETRY = "retry"  # the row changed under us: read it again
    KEY_USED = "key_used"  # the Idempotency-Key answered another change: read what it answered


class CreateRow(BookingRow):
    outcome: Created


class CancelRow(BookingRow):
    changed: bool  # this statement cancelled it


class RescheduleRow(BookingRow):
    outcome: Rescheduled


@dataclass(frozen=True, slots=True)
class KeyAnswer:
    """What an Idempotency-Key answered before (``booking_changes``)."""

    request_hash: str
    response: dict[str, Any]  # the booking as answered, as stored JSON (times as ISO text)


@dataclass(frozen=True, slots=True)
class ForChange:
    """What a PATCH reads before it decides (``GET_FOR_CHANGE``)."""

    booking: BookingRow | None  # None: there is no such booking
    answered: KeyAnswer | None  # the caller's key's earlier answer; None: the key is unused (or none given)


def columns(alias: str | None = None) -> sql.Composed:
    """The booking columns, qualified with the table ``alias`` when given."""
    return sql.SQL(", ").join(sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in COLUMN_NAMES)


# Which bookings a caller reaches, as a condition on a booking row (``alias``), part of each
# statement that reads or changes a booking by id or by search (no round trip of its own): staff
# (``reach_all``) every one; the assistant acting in a conversation (``reach_cid``, the host's
# header) those made in it, or whose phone or email was verified in it (conversation_identities,
# values as stored on bookings). Parameters: ``reach_params(caller)``.
def reach(alias: str) -> sql.Composed:
    return sql.SQL("""(%(reach_all)s::boolean OR {a}.conversation_id = %(reach_cid)s::text OR EXISTS (
        SELECT 1 FROM conversation_identities ci
        WHERE ci.conversation_id = %(reach_cid)s::text
          AND ((ci.kind = 'phone' AND ci.value = {a}.customer_phone)
               OR (ci.kind = 'email' AND ci.value = {a}.customer_email))
    ))""").format(a=sql.Identifier(alias))


def reach_params(caller: Caller) -> dict[str, Any]:
    return {"reach_all": caller.staff, "reach_cid": caller.conversation_id}


# The chefs held at some instant of [start, held_until): one range scan of the confirmed holds that
# overlap it (``bookings_confirmed_holds``, index-only, as in ``FREE_STARTS``: a hold is at most 30 hours
# long, so an overlapping one starts in (start - 30 hours, held_until)), whatever CHEF_COUNT is. The
# overlap test is the exclusion constraint's (``held && [start, held_until)``), which stays the
# enforcer. ``exclude``: a condition on ``b`` that leaves a booking out (the one being moved).
def _held_chefs(exclude: str = "") -> sql.Composed:
    return sql.SQL("""SELECT b.chef_id FROM bookings b
    WHERE b.status = 'confirmed'
      AND b.event_start > %(start)s::timestamptz - interval '30 hours'
      AND b.event_start < %(held_until)s::timestamptz
      AND b.held_until > %(start)s::timestamptz{exclude}""").format(exclude=sql.SQL(exclude))


# Create in ONE statement. ``outcome``: ``created`` (inserted with the lowest free chef);
# ``existing`` (the Idempotency-Key's booking: the caller's (caller, key), or a key stored before
# keys were per caller, which has no caller; its request_hash tells a retry from another request);
# ``retry`` (a chef was free in this snapshot but a concurrent request took it, or the key, first:
# run again); no row at all: no chef is free, the slot is full.
# The lowest chef of 1..CHEF_COUNT not among the held ones (``_held_chefs``) is picked (a hashed anti-join).
CREATE_BOOKING = (
    sql.SQL("""
WITH prior AS (
    SELECT {columns} FROM bookings
    WHERE %(key)s::text IS NOT NULL AND idempotency_key = %(key)s::text
      AND (idempotency_caller = %(caller)s::text OR idempotency_caller IS NULL)
    ORDER BY idempotency_caller NULLS LAST
    LIMIT 1
), held AS (
    {held}
), pick AS (
    SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE NOT EXISTS (SELECT 1 FROM prior) AND chef NOT IN (SELECT chef_id FROM held)
    ORDER BY chef
    LIMIT 1
), ins AS (
    INSERT INTO bookings (chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                          customer_name, customer_phone, customer_email, address, conversation_id, notes,
                          idempotency_key, idempotency_caller, request_hash, followup_due_at)
    SELECT pick.chef, %(start)s, %(end)s, %(held_until)s, %(timezone)s, %(duration)s, %(guests)s,
           %(name)s, %(phone)s, %(email)s, %(address)s, %(conversation_id)s, %(notes)s,
           %(key)s, %(caller)s, %(hash)s, %(due)s
    FROM pick
    ON CONFLICT DO NOTHING
    RETURNING {columns}
), {event}
SELECT 'created' AS outcome, ins.* FROM ins
UNION ALL
SELECT 'existing', prior.* FROM prior
UNION ALL
SELECT 'retry', {b_columns} FROM pick LEFT JOIN bookings b ON false
WHERE NOT EXISTS (SELECT 1 FROM ins)
""")
    .format(
        columns=columns(),
        b_columns=columns("b"),
        held=_held_chefs(),
        event=booking_event("ins", EventType.BOOKING_CREATED),
    )
    .as_string()
)

GET_BOOKING = (
    sql.SQL("SELECT {columns} FROM bookings b WHERE id = %(id)s AND {reach}")
    .format(columns=columns(), reach=reach("b"))
    .as_string()
)

# Cancel in ONE statement: only a confirmed booking whose event has not started changes (status,
# cancelled_at, version); the chef is free at once because the constraint covers confirmed rows
# only. The second branch returns the unchanged row so the caller can tell "already cancelled"
# (200), "already started" (409) and "no such booking", or none the caller reaches (no row, 404).
CANCEL_BOOKING = (
    sql.SQL("""
WITH upd AS (
    UPDATE bookings b SET status = 'cancelled', cancelled_at = now(), updated_at = now(), version = version + 1
    WHERE id = %(id)s AND status = 'confirmed' AND event_start > now() AND {reach}
    RETURNING {columns}
), {event}
SELECT true AS changed, upd.* FROM upd
UNION ALL
SELECT false AS changed, {columns} FROM bookings b WHERE id = %(id)s AND {reach} AND NOT EXISTS (SELECT 1 FROM upd)
""")
    .format(columns=columns(), reach=reach("b"), event=booking_event("upd", EventType.BOOKING_CANCELLED))
    .as_string()
)

# Reschedule in ONE statement, guarded by the version the caller read: move to a free chef
# (keeping the current one when it is free; the booking's own hold does not count; the held chefs
# come from one range scan, ``_held_chefs``, as in create), or change nothing. The chef's
# ``chef_locks`` row is locked first, so concurrent moves onto one chef take turns (the later one
# then fails the constraint at once: exclusion_violation, run again) instead of deadlocking. A keyed
# change records its key, request hash and answer in booking_changes in the same statement (a
# concurrent change with the same key fails on its primary key: unique_violation, nothing changed).
# The second branch returns the current row and why nothing changed: ``key_used`` (the key is
# taken), ``retry`` (a chef was free: the row changed under us), ``full``.
# PATCH reads the booking (when the caller reaches it) and, for a keyed request, what its key
# answered before (a change of the caller's with that key, on any booking), in one statement; a
# row even when the booking is missing. A key's answer is only used for a booking the caller
# reaches (its request hash names the booking), so a key never hands out another's booking.
GET_FOR_CHANGE = (
    sql.SQL("""
SELECT b.*, k.request_hash AS key_hash, k.response AS key_response
FROM (SELECT 1) one
LEFT JOIN (SELECT {columns} FROM bookings b WHERE id = %(id)s AND {reach}) b ON true
LEFT JOIN booking_changes k
    ON %(key)s::text IS NOT NULL AND k.idempotency_caller = %(caller)s::text AND k.idempotency_key = %(key)s::text
""")
    .format(columns=columns(), reach=reach("b"))
    .as_string()
)

_KEY_UNUSED = sql.SQL("""(%(key)s::text IS NULL OR NOT EXISTS (
        SELECT 1 FROM booking_changes k
        WHERE k.idempotency_caller = %(caller)s::text AND k.idempotency_key = %(key)s::text))""")

# The reschedule's event: "Booking Rescheduled" when the start moved, else "Booking Details Changed"
# (the guest count or the length), with the old and new value of what changed. The old values are
# the row the caller read at %(version)s, which the UPDATE requires: they are the row it changed.
_MOVED_OR_CHANGED = sql.SQL(
    "CASE WHEN s.event_start <> %(old_start)s::timestamptz THEN {moved} ELSE {changed} END"
).format(
    moved=sql.Literal(str(EventType.BOOKING_RESCHEDULED)), changed=sql.Literal(str(EventType.BOOKING_DETAILS_CHANGED))
)
_CHANGES = sql.SQL("""jsonb_strip_nulls(jsonb_build_object(
        'event_start', CASE WHEN s.event_start <> %(old_start)s::timestamptz
            THEN jsonb_build_object('old', {old_start}, 'new', {new_start}) END,
        'duration_minutes', CASE WHEN s.duration_minutes <> %(old_duration)s::int
            THEN jsonb_build_object('old', %(old_duration)s::int, 'new', s.duration_minutes) END,
        'guest_count', CASE WHEN s.guest_count <> %(old_guests)s::int
            THEN jsonb_build_object('old', %(old_guests)s::int, 'new', s.guest_count) END,
        'chef_id', CASE WHEN s.chef_id <> %(current_chef)s::int
            THEN jsonb_build_object('old', %(current_chef)s::int, 'new', s.chef_id) END))""").format(
    old_start=utc_text("%(old_start)s::timestamptz"), new_start=utc_text("s.event_start")
)

RESCHEDULE_BOOKING = (
    sql.SQL("""
WITH held AS (
    {held}
), free AS (
    SELECT chef FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE chef NOT IN (SELECT chef_id FROM held)
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
    WHERE bk.id = %(id)s AND bk.version = %(version)s AND bk.status = 'confirmed' AND {key_unused} AND {reach}
    RETURNING {bk_columns}
), keyed AS (
    INSERT INTO booking_changes (idempotency_caller, idempotency_key, booking_id, request_hash, version, response)
    SELECT %(caller)s, %(key)s, upd.id, %(hash)s, upd.version, to_jsonb(upd) FROM upd
    WHERE %(key)s::text IS NOT NULL
), {event}
SELECT 'updated' AS outcome, upd.* FROM upd
UNION ALL
SELECT CASE WHEN NOT {key_unused} THEN 'key_used' WHEN EXISTS (SELECT 1 FROM free) THEN 'retry' ELSE 'full' END
       AS outcome, {columns}
FROM bookings WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM upd)
""")
    .format(
        # the booking's own hold, named by what the index holds (index-only): its chef and start as read
        # at %(version)s (no other confirmed hold of that chef starts then); read at another version,
        # the UPDATE changes nothing and the caller reads the booking again
        held=_held_chefs(" AND NOT (b.chef_id = %(current_chef)s AND b.event_start = %(old_start)s::timestamptz)"),
        bk_columns=columns("bk"),
        columns=columns(),
        key_unused=_KEY_UNUSED,
        reach=reach("bk"),
        event=booking_event("upd", _MOVED_OR_CHANGED, changes=_CHANGES),
    )
    .as_string()
)

# A keyed PATCH that changes nothing still takes its key (so the key with another request is 422),
# with the booking as answered; nothing when the key is taken or the booking moved on since read.
RECORD_UNCHANGED = (
    sql.SQL("""
INSERT INTO booking_changes (idempotency_caller, idempotency_key, booking_id, request_hash, version, response)
SELECT %(caller)s, %(key)s, b.id, %(hash)s, b.version, to_jsonb(b)
FROM (SELECT {columns} FROM bookings WHERE id = %(id)s AND version = %(version)s) b
ON CONFLICT DO NOTHING
RETURNING version
""")
    .format(columns=columns())
    .as_string()
)

# Which candidate starts have a free chef: GET /availability for up to 14 days, and the 409's
# next_free_starts, in one statement either way, at a cost that does not grow with CHEF_COUNT where it
# matters most (full days). It reads ``chef_cells`` first (migration 0015: per 15-minute cell, the
# chefs whose confirmed hold starts in it, ends inside it, or covers it, kept by triggers on bookings),
# two short index range scans per candidate start s, with ``mask`` = chefs 1..CHEF_COUNT:
# - full: a cell inside [s, s + hold) that every chef of the mask covers (each is busy in the window);
# - free: a chef of the mask whose bit is clear in every cell overlapping [s, s + hold) (none of its
#   holds touches the window);
# - otherwise (holds that start or end inside a cell at the window's edge), and for every start when a
#   booking is ``exclude``d (its own hold is in the cells), the holds decide: one range scan of the
#   window's holds (``bookings_confirmed_holds``, index-only: a hold is at most 30 hours long, the
#   ``bookings_hold_length`` check, so a hold that overlaps [first, last + hold) starts in
#   (first - 30 hours, last + hold); ``first`` and ``last`` are parameters, so the planner sees the
#   range), only run when some start is undecided. Per chef, the start instants its holds rule out: a
#   start s overlaps a hold [event_start, held_until) exactly when s is in the open range
#   (event_start - hold, held_until) (``range_agg`` merges a chef's ranges); the instants every chef
#   rules out are their intersection (``range_intersect_agg``), and a start is free when it is not in
#   it. A chef without a hold in the window rules nothing out: when fewer than CHEF_COUNT chefs have one,
#   every start is free.
# Chefs are 1..CHEF_COUNT, as create picks them: a hold of a chef id above it (CHEF_COUNT lowered)
# blocks nothing, as in create. So a start listed here is one that create, whose test is the same
# overlap, can book (tests/integration/test_free_starts.py checks it against the per-chef definition).
FREE_STARTS = """
WITH mask AS (
    SELECT (repeat('1', %(chef_count)s::int) || repeat('0', 100 - %(chef_count)s::int))::bit(100) AS chefs
), judged AS MATERIALIZED (
    SELECT c.start,
           CASE WHEN %(exclude)s::uuid IS NOT NULL THEN NULL
                WHEN EXISTS (
                    SELECT 1 FROM chef_cells k
                    WHERE k.cell >= c.start AND k.cell <= c.start + %(hold)s::interval - interval '15 minutes'
                      AND k.covers & mask.chefs = mask.chefs
                ) THEN false
                WHEN coalesce((
                    SELECT bit_or(k.starts | k.ends | k.covers) FROM chef_cells k
                    WHERE k.cell > c.start - interval '15 minutes' AND k.cell < c.start + %(hold)s::interval
                ) & mask.chefs <> mask.chefs, true) THEN true
           END AS free
    FROM (SELECT to_timestamp(e) AS start FROM unnest(%(starts)s::bigint[]) AS e) c, mask
), chefs AS (
    SELECT range_agg(tstzrange(b.event_start - %(hold)s::interval, b.held_until, '()')) AS blocked
    FROM bookings b
    WHERE b.status = 'confirmed' AND b.chef_id <= %(chef_count)s::int
      AND b.event_start > %(first)s::timestamptz - interval '30 hours'
      AND b.event_start < %(last)s::timestamptz + %(hold)s::interval
      AND b.held_until > %(first)s::timestamptz
      AND (%(exclude)s::uuid IS NULL OR b.id <> %(exclude)s::uuid)
      AND EXISTS (SELECT 1 FROM judged WHERE free IS NULL)
    GROUP BY b.chef_id
), everyone AS (
    SELECT CASE WHEN count(*) < %(chef_count)s::int THEN '{}'::tstzmultirange ELSE range_intersect_agg(blocked) END
           AS blocked
    FROM chefs
)
SELECT start FROM judged WHERE free
UNION ALL
SELECT j.start FROM judged j, everyone WHERE j.free IS NULL AND NOT everyone.blocked @> j.start
ORDER BY start
"""

# POST /bookings/search: one statement, keyset-paginated on (event_start, id). Only the filters
# given are part of the WHERE clause (fixed fragments, values as parameters), so each one can use
# its index (migration 0005): (customer_phone | customer_email | conversation_id | status,
# event_start, id), or (event_start, id) alone. A local-date bound is checked exactly in the
# booking's own zone, and coarsely (a day's margin) on event_start, which the index can use.
_SEARCH_FILTERS = {
    "conversation_id": sql.SQL("conversation_id = %(conversation_id)s"),
    "phone": sql.SQL("customer_phone = %(phone)s"),
    "email": sql.SQL("customer_email = %(email)s"),
    "status": sql.SQL("status = %(status)s"),
    "from": sql.SQL("""event_start >= (%(from)s::date - 1)::timestamp AT TIME ZONE 'UTC'
        AND (event_start AT TIME ZONE zone)::date >= %(from)s::date"""),
    "to": sql.SQL("""event_start < (%(to)s::date + 2)::timestamp AT TIME ZONE 'UTC'
        AND (event_start AT TIME ZONE zone)::date <= %(to)s::date"""),
    # no filter at all: confirmed, from today in the booking's zone on
    "today": sql.SQL("""event_start >= now() - interval '2 days'
        AND (event_start AT TIME ZONE zone)::date >= (now() AT TIME ZONE zone)::date"""),
    "after": sql.SQL("(event_start, id) > (%(after_start)s::timestamptz, %(after_id)s::uuid)"),
}
# A search by phone or email is the assistant's way to find a customer's older bookings, so it is
# only allowed for an identity verified in its conversation (staff: any). ``gate`` decides that in
# the same statement: when it fails, no booking is read at all (the answer, 403
# verification_required, never says whether that phone has bookings).
_VERIFIED = {
    "phone": sql.SQL("""EXISTS (SELECT 1 FROM conversation_identities ci
        WHERE ci.conversation_id = %(reach_cid)s::text AND ci.kind = 'phone' AND ci.value = %(phone)s::text)"""),
    "email": sql.SQL("""EXISTS (SELECT 1 FROM conversation_identities ci
        WHERE ci.conversation_id = %(reach_cid)s::text AND ci.kind = 'email' AND ci.value = %(email)s::text)"""),
}
_SEARCH = sql.SQL("""
SELECT gate.verified, found.*
FROM (SELECT %(reach_all)s::boolean OR ({verified}) AS verified) gate
LEFT JOIN LATERAL (
    SELECT {columns}
    FROM bookings b
    -- ``zone``: the booking's zone when PostgreSQL knows it (every zone written since migration 0009),
    -- else UTC: one row with a zone the database cannot read must not fail every search
    CROSS JOIN LATERAL (SELECT coalesce((SELECT z.name FROM time_zones z WHERE z.name = b.timezone), 'UTC') AS zone) tz
    WHERE gate.verified AND {where} AND {reach}
    ORDER BY event_start, id
    LIMIT %(limit)s
) found ON true
ORDER BY found.event_start, found.id
""")


def search_sql(filters: list[str]) -> str:
    """The search statement for the named ``_SEARCH_FILTERS`` (a fixed text per combination)."""
    where = sql.SQL(" AND ").join(sql.SQL("({})").format(_SEARCH_FILTERS[name]) for name in filters)
    identities = [_VERIFIED[name] for name in filters if name in _VERIFIED]
    return _SEARCH.format(
        columns=columns(),
        where=where if filters else sql.SQL("true"),
        verified=sql.SQL(" AND ").join(identities) if identities else sql.SQL("true"),
        reach=reach("b"),
    ).as_string()


def create_booking(
    db: Database,
    *,
    fields: dict[str, Any],
    caller: str | None,
    key: str | None,
    request_hash: str,
    attempts: int,
    actor: Mapping[str, Any],
) -> CreateRow | None:
    """Run ``CREATE_BOOKING`` until it answers: a row whose ``outcome`` is ``created`` or ``existing``,
    or ``None`` when the slot is full.

    One round trip, unless a concurrent request took the chosen chef or the key first (each retry
    means another booking committed, so ``attempts`` = chefs + 2 is enough). A full slot is an answer,
    for a keyed request too: the statement looked for the key's booking in the snapshot in which it
    found no chef free, so a booking of the key's that filled the slot would have been ``existing``.
    """
    params = {
        **fields,
        "address": Jsonb(fields["address"]),
        "caller": caller,
        "key": key,
        "hash": request_hash,
        "actor": Jsonb(dict(actor)),
    }
    for _ in range(attempts):
        try:
            row = db.fetchone(CREATE_BOOKING, params)
        except ConstraintViolation as exc:  # an exclusion is not expected: the constraint is an arbiter
            if exc.sqlstate != EXCLUSION_VIOLATION:
                raise
            continue
        if row is not None and row["outcome"] == Created.RETRY:
            continue
        if row is None:
            return None
        row["outcome"] = Created(row["outcome"])
        return cast(CreateRow, row)
    return None


def get_booking(db: Database, booking_id: UUID, *, caller: Caller) -> BookingRow | None:
    """The booking, when ``caller`` reaches it."""
    return cast(BookingRow | None, db.fetchone(GET_BOOKING, {"id": booking_id, **reach_params(caller)}))


def cancel_booking(db: Database, booking_id: UUID, *, caller: Caller) -> CancelRow | None:
    """``None``: no such booking, or none that ``caller`` reaches. Its event (``Booking Cancelled``,
    by ``caller``) only when this statement cancelled it."""
    params = {"id": booking_id, "actor": Jsonb(caller.actor()), **reach_params(caller)}
    return cast(CancelRow | None, db.fetchone(CANCEL_BOOKING, params))


def get_for_change(db: Database, booking_id: UUID, *, caller: Caller, key: str | None) -> ForChange:
    """The booking when ``caller`` reaches it, and what ``key`` (``caller.owner``'s) answered before."""
    params = {"id": booking_id, "caller": caller.owner or None, "key": key, **reach_params(caller)}
    row = db.fetchone(GET_FOR_CHANGE, params)
    if row is None:  # pragma: no cover - the statement returns one row, the booking or not
        return ForChange(None, None)
    key_hash, key_response = row.pop("key_hash"), row.pop("key_response")
    return ForChange(
        cast(BookingRow, row) if row["id"] is not None else None,
        KeyAnswer(key_hash, key_response) if key_hash is not None else None,
    )


def reschedule_booking(
    db: Database,
    booking_id: UUID,
    *,
    version: int,
    current: Mapping[str, Any],
    slot: dict[str, Any],
    caller: Caller,
    key: str | None = None,
    request_hash: str | None = None,
) -> RescheduleRow | None:
    """One attempt (``Rescheduled`` says what it did). ``None``: the booking does not exist.
    ``current``: the booking as read at ``version`` (the chef to keep, and the old values of the
    event, by ``caller``). exclusion_violation and unique_violation (a concurrent change with the
    same key) propagate. ``key`` is ``caller.owner``'s; a booking ``caller`` does not reach is never
    changed."""
    params = {
        **slot,
        "id": booking_id,
        "version": version,
        "current_chef": current["chef_id"],
        "old_start": current["event_start"],
        "old_duration": current["duration_minutes"],
        "old_guests": current["guest_count"],
        "actor": Jsonb(caller.actor()),
        "caller": caller.owner or None,
        "key": key,
        "hash": request_hash,
        **reach_params(caller),
    }
    row = db.fetchone(RESCHEDULE_BOOKING, params)
    if row is None:
        return None
    row["outcome"] = Rescheduled(row["outcome"])
    return cast(RescheduleRow, row)


def record_unchanged(db: Database, booking_id: UUID, *, version: int, caller: str, key: str, request_hash: str) -> bool:
    """Take ``key`` for a PATCH that changed nothing; False when the key is taken or the booking changed."""
    row = db.fetchone(
        RECORD_UNCHANGED, {"id": booking_id, "version": version, "caller": caller, "key": key, "hash": request_hash}
    )
    return row is not None


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
        "first": min(starts),  # the window's ends as values: the planner sees the range it scans
        "last": max(starts),
        "hold": hold,
        "chef_count": chef_count,
        "exclude": exclude,
    }
    return [row["start"] for row in db.fetchall(FREE_STARTS, params)]


def search_bookings(
    db: Database, filters: dict[str, Any], *, caller: Caller, after: tuple[datetime, UUID] | None, limit: int
) -> list[BookingRow] | None:
    """Up to ``limit`` bookings that ``caller`` reaches matching ``filters`` (keys of
    ``_SEARCH_FILTERS``; ``{"today": True}`` for the default view) after the ``after`` key
    (event_start, id), in that order. ``None``: a phone or email filter is not an identity verified
    in ``caller``'s conversation (nothing was read)."""
    names = [name for name in _SEARCH_FILTERS if name in filters]
    params: dict[str, Any] = {**filters, "limit": limit, **reach_params(caller)}
    if after is not None:
        names.append("after")
        params["after_start"], params["after_id"] = after
    rows = db.fetchall(search_sql(names), params)  # at least the gate's row
    if not rows or not rows[0]["verified"]:
        return None
    return [
        cast(BookingRow, {k: v for k, v in row.items() if k != "verified"}) for row in rows if row["id"] is not None
    ]
