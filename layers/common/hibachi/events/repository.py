"""SQL of the event log. One owner for the event insert: ``booking_event`` is the CTE every
statement that changes a booking adds beside its change, so the change and its event commit
together or not at all (tests/unit/test_event_statements.py fails on a statement that writes a
booking without it). A statement that changes nothing (a no-op PATCH, a repeated cancel, a retried
key) returns no row from its change's CTE, so its event CTE inserts nothing.

Ordering: ``events.seq`` is drawn when the event's row is inserted, after the change's own CTE has
locked the aggregate's row (an UPDATE of the booking, or ``FOR SHARE`` of it), so two changes of one
booking draw their seqs in the order they commit, and the publisher's "head of line per aggregate"
is the next change in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from psycopg import sql

from hibachi.db import Database
from hibachi.events.models import EventType

ACTOR_PARAM = "actor"  # every evented statement takes the actor as %(actor)s (a Jsonb object)


def utc_text(expr: str) -> sql.Composed:
    """A timestamptz expression as ISO 8601 text in UTC ("2026-12-14T02:00:00Z"), whatever the
    session's TimeZone."""
    return sql.SQL("""to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""").format(expr=sql.SQL(expr))


def booking_snapshot(alias: str) -> sql.Composed:
    """The booking as an event carries it: when, how many, which chef, the city and state. No
    customer contact data (name, phone, email, street, postal code) and nothing the customer typed
    freely (notes): events go to the staff topic, to webhooks and to a 90-day archive; what they need
    is to plan a chef's evening (docs/EVENTS.md)."""
    return sql.SQL("""jsonb_build_object(
        'id', {a}.id, 'status', {a}.status, 'version', {a}.version,
        'event_start', {start}, 'event_end', {end}, 'timezone', {a}.timezone,
        'duration_minutes', {a}.duration_minutes, 'guest_count', {a}.guest_count, 'chef_id', {a}.chef_id,
        'city', {a}.address->>'city', 'state', {a}.address->>'state',
        'conversation_id', {a}.conversation_id)""").format(
        a=sql.Identifier(alias), start=utc_text(f"{alias}.event_start"), end=utc_text(f"{alias}.event_end")
    )


def booking_event(
    source: str,
    event_type: EventType | sql.Composable,
    *,
    changes: sql.Composable | None = None,
    where: str | None = None,
    name: str = "event",
) -> sql.Composed:
    """The CTE ``name AS (INSERT INTO events ...)``: one event of ``event_type`` (a type, or an SQL
    expression over ``s``) per row of ``source`` (a CTE or table returning the booking's columns
    after the change), with the actor of the statement's ``%(actor)s``; ``changes``: an SQL jsonb
    expression over ``s`` (old and new values); ``where``: a condition on ``s``."""
    kind = sql.Literal(str(event_type)) if isinstance(event_type, EventType) else event_type
    data = sql.SQL("jsonb_build_object('booking', {snapshot})").format(snapshot=booking_snapshot("s"))
    if changes is not None:
        data = sql.SQL("{data} || jsonb_build_object('changes', {changes})").format(data=data, changes=changes)
    return sql.SQL("""{name} AS (
    INSERT INTO events (aggregate_type, aggregate_id, booking_id, conversation_id, type, version, actor, data)
    SELECT 'booking', s.id::text, s.id, s.conversation_id, {kind}, s.version, %(actor)s::jsonb, {data}
    FROM {source} s{where}
    RETURNING events.id
)""").format(
        name=sql.Identifier(name),
        kind=kind,
        data=data,
        source=sql.Identifier(source),
        where=sql.SQL(f" WHERE {where}") if where else sql.SQL(""),
    )


def conversation_event(
    source: str, event_type: EventType, data: sql.Composable, *, where: str | None = None, name: str = "event"
) -> sql.Composed:
    """The CTE ``name AS (INSERT INTO events ...)`` of a conversation's event: one per row of ``source``
    (a CTE returning the conversation's ``id`` and its ``version``, after the change, under its row
    lock), with the statement's ``%(actor)s`` and ``data`` (an SQL jsonb expression over ``s``);
    ``where``: a condition on ``s``."""
    return sql.SQL("""{name} AS (
    INSERT INTO events (aggregate_type, aggregate_id, conversation_id, type, version, actor, data)
    SELECT 'conversation', s.id, s.id, {kind}, s.version, %(actor)s::jsonb, {data}
    FROM {source} s{where}
    RETURNING events.id
)""").format(
        name=sql.Identifier(name),
        kind=sql.Literal(str(event_type)),
        data=data,
        source=sql.Identifier(source),
        where=sql.SQL(f" WHERE {where}") if where else sql.SQL(""),
    )


EVENT_COLUMNS = (
    "id",
    "type",
    "version",
    "occurred_at",
    "actor",
    "booking_id",
    "conversation_id",
    "data",
    "published_at",
)

# GET /bookings/{id}/events: the booking's events, oldest first; one row with booking NULL when
# there is no such booking (404), one with id NULL when it has none (cannot happen after 0012).
LIST_BOOKING_EVENTS = (
    sql.SQL("""
SELECT b.id AS booking, {e_columns}
FROM (SELECT 1) one
LEFT JOIN bookings b ON b.id = %(id)s
LEFT JOIN events e ON b.id IS NOT NULL AND e.aggregate_type = 'booking' AND e.aggregate_id = %(id)s::text
ORDER BY e.seq
""")
    .format(e_columns=sql.SQL(", ").join(sql.Identifier("e", c) for c in EVENT_COLUMNS))
    .as_string()
)


def list_booking_events(db: Database, booking_id: UUID) -> list[dict[str, Any]] | None:
    """The booking's events, oldest first; None when there is no such booking (one round trip)."""
    rows = db.fetchall(LIST_BOOKING_EVENTS, {"id": booking_id})
    if not rows or rows[0]["booking"] is None:
        return None
    return [{c: row[c] for c in EVENT_COLUMNS} for row in rows if row["id"] is not None]


# -- publishing (the worker) ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claimed:
    """An event ``CLAIM_HEADS`` claimed for publishing: the oldest unpublished one of its aggregate."""

    seq: int
    id: UUID
    aggregate_type: str
    aggregate_id: str
    booking_id: UUID | None
    conversation_id: str | None
    type: str
    version: int
    occurred_at: datetime
    actor: dict[str, Any]
    data: dict[str, Any]
    more: bool  # the aggregate has later unpublished events


# Claim the head of line of each aggregate asked for: its oldest unpublished event, unless another
# worker holds it (a claim younger than %(stale)s seconds; an older one was abandoned by a worker
# that died). Later events of an aggregate wait until its head is published: that is what keeps
# publishing in version order per booking, also when a PutEvents entry fails.
CLAIM_HEADS = """
WITH wanted AS (
    SELECT DISTINCT t, i FROM unnest(%(types)s::text[], %(ids)s::text[]) AS w(t, i)
), heads AS (
    SELECT h.seq FROM wanted,
    LATERAL (SELECT e.seq, e.claimed_at FROM events e
             WHERE e.aggregate_type = wanted.t AND e.aggregate_id = wanted.i AND e.published_at IS NULL
             ORDER BY e.seq LIMIT 1) h
    -- the true head only, and only when no live worker holds it (never the event after it)
    WHERE h.claimed_at IS NULL OR h.claimed_at < now() - make_interval(secs => %(stale)s)
    ORDER BY h.seq LIMIT %(limit)s
), claimed AS (
    UPDATE events e SET claimed_at = now(), publish_attempts = e.publish_attempts + 1
    FROM heads
    WHERE e.seq = heads.seq AND e.published_at IS NULL
      AND (e.claimed_at IS NULL OR e.claimed_at < now() - make_interval(secs => %(stale)s))
    RETURNING e.seq, e.id, e.aggregate_type, e.aggregate_id, e.booking_id, e.conversation_id, e.type, e.version,
              e.occurred_at, e.actor, e.data
)
SELECT c.*, EXISTS (
    SELECT 1 FROM events n
    WHERE n.aggregate_type = c.aggregate_type AND n.aggregate_id = c.aggregate_id
      AND n.published_at IS NULL AND n.seq > c.seq
) AS more
FROM claimed c ORDER BY c.seq
"""

# The outcome of a PutEvents: published (ok) or released for the next attempt.
FINISH_PUBLISH = """
UPDATE events e SET published_at = CASE WHEN d.ok THEN now() END, claimed_at = NULL
FROM unnest(%(seqs)s::bigint[], %(oks)s::bool[]) AS d(seq, ok)
WHERE e.seq = d.seq AND e.published_at IS NULL
"""

# The reconciler: aggregates with an event left unpublished longer than the grace period (a failed
# PutEvents, a lost job, a dead worker), oldest first.
BACKLOG = """
SELECT aggregate_type, aggregate_id FROM (
    SELECT aggregate_type, aggregate_id, min(seq) AS first FROM events
    WHERE published_at IS NULL AND occurred_at < now() - make_interval(secs => %(grace)s)
    GROUP BY aggregate_type, aggregate_id
) a ORDER BY first LIMIT %(limit)s
"""


def claim_heads(
    db: Database, aggregates: list[tuple[str, str]], *, stale_seconds: int, limit: int = 10
) -> list[Claimed]:
    """At most ``limit`` heads (the oldest first): what one PutEvents takes, so a worker that dies
    strands no more than that many claims."""
    if not aggregates:
        return []
    params = {
        "types": [a[0] for a in aggregates],
        "ids": [a[1] for a in aggregates],
        "stale": stale_seconds,
        "limit": limit,
    }
    rows = db.fetchall(CLAIM_HEADS, params)
    return [Claimed(**row) for row in rows]


def finish_publish(db: Database, results: list[tuple[int, bool]]) -> int:
    if not results:
        return 0
    return db.execute(FINISH_PUBLISH, {"seqs": [r[0] for r in results], "oks": [r[1] for r in results]})


def backlog(db: Database, *, grace_seconds: int, limit: int) -> list[tuple[str, str]]:
    rows = db.fetchall(BACKLOG, {"grace": grace_seconds, "limit": limit})
    return [cast(tuple[str, str], (row["aggregate_type"], row["aggregate_id"])) for row in rows]
