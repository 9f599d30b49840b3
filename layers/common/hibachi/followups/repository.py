"""SQL of follow-ups. Set-based: each function is one statement for a whole batch of jobs.

The messages the worker adds to conversations (the booking confirmation, the follow-up itself) go
in with ``hibachi.conversations.repository.INSERT_MESSAGES_CTE`` (the conversations' SQL has one
owner); the booking columns are ``hibachi.bookings.repository.columns``.

A row that holds a booking is a frozen dataclass with the booking as ``BookingRow`` (the bookings'
own row type) beside the follow-up's columns, so the booking's ``version``/``status`` and the
follow-up's cannot be mixed up; the per-batch counts are TypedDicts, because the service logs them
as they are (a log line is JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from hibachi.bookings.repository import BookingRow
from hibachi.bookings.repository import columns as booking_columns
from hibachi.conversations.repository import INSERT_MESSAGES_CTE, Messages
from hibachi.db import Database
from hibachi.events.models import SYSTEM_ACTOR, EventType
from hibachi.events.repository import booking_event
from hibachi.followups.models import FollowupStatus

__all__ = [  # Messages is re-exported: the service builds the batch it hands to these statements
    "BehindBooking",
    "ClaimedSend",
    "DueFollowup",
    "FollowupStatus",
    "Messages",
    "ReminderState",
    "ScheduleCounts",
    "SendCounts",
    "SyncedFollowup",
]


@dataclass(frozen=True, slots=True)
class SyncedFollowup:
    """A booking with its follow-up as ``SYNC_FOLLOWUPS`` left it."""

    booking: BookingRow
    changed: bool  # this statement wrote the follow-up
    # The follow-up's version (the booking version it was made for) and status; None when a
    # concurrent job created the row after this statement's snapshot (that job handles it).
    version: int | None
    status: FollowupStatus | None
    scheduled_at: datetime | None  # when its schedule was recorded for this version (None: not yet)
    # the booking's reminder the same way (None: a concurrent job created the row; that job handles it)
    reminder: ReminderState | None


@dataclass(frozen=True, slots=True)
class ReminderState:
    """A booking's reminder as ``SYNC_FOLLOWUPS`` left it."""

    changed: bool  # this statement wrote it
    version: int  # the booking version it was made for (older than the booking's when it was kept: sent or sending)
    status: FollowupStatus
    due_at: datetime
    scheduled_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedSend:
    """A follow-up ``CLAIM_SENDS`` moved to ``sending``, with its booking."""

    booking: BookingRow
    version: int  # the follow-up's (the booking's, since it claims only a current one)
    channel: str | None  # the conversation's channel


@dataclass(frozen=True, slots=True)
class BehindBooking:
    """A booking whose follow-up lags its ``version`` (``BEHIND_BOOKINGS``)."""

    id: UUID
    version: int


@dataclass(frozen=True, slots=True)
class DueFollowup:
    """A follow-up to send now (``DUE_FOLLOWUPS``)."""

    booking_id: UUID
    version: int


class ScheduleCounts(TypedDict):
    """What ``FINISH_SCHEDULES`` wrote."""

    messages: int
    scheduled: int
    reminders_scheduled: int
    synced: int


class SendCounts(TypedDict):
    """What ``FINISH_SENDS`` wrote."""

    messages: int
    sent: int


# schedule_followup, statement 1: make each booking's follow-up row match the booking's current
# version (pending when confirmed, cancelled when cancelled); never move a row backwards to an
# older version, nor touch one already sent. The reminder the same way, due ``lead`` hours before
# the event: 'skipped' when that is not later than the change that made this version (the booking
# was made or moved later than its reminder's time; ``lead`` 0: no reminders), and a reminder
# already sent or being sent is kept, unless the event moved (a sent one is then due again at its
# new time; one being sent is left to its send, and this job retries). Returns each booking with
# its follow-up and reminder as they now are (``changed``: this statement wrote it).
SYNC_FOLLOWUPS = (
    sql.SQL("""
WITH target AS (
    SELECT DISTINCT unnest(%(ids)s::uuid[]) AS id
), up AS (
    INSERT INTO followups AS f (booking_id, version, status, due_at)
    SELECT b.id, b.version, CASE WHEN b.status = 'confirmed' THEN 'pending' ELSE 'cancelled' END, b.followup_due_at
    FROM bookings b JOIN target t ON t.id = b.id
    ON CONFLICT (booking_id) DO UPDATE SET
        version = EXCLUDED.version, status = EXCLUDED.status, due_at = EXCLUDED.due_at,
        schedule_name = NULL, scheduled_at = NULL, claimed_at = NULL, updated_at = now()
    WHERE f.version < EXCLUDED.version AND f.status <> 'sent'
    RETURNING f.booking_id, f.version, f.status
), rup AS (
    INSERT INTO reminders AS r (booking_id, version, status, due_at)
    SELECT b.id, b.version,
           CASE WHEN b.status <> 'confirmed' THEN 'cancelled'
                WHEN %(lead)s::float8 <= 0 OR d.due <= b.updated_at THEN 'skipped'
                ELSE 'pending' END,
           d.due
    FROM bookings b JOIN target t ON t.id = b.id
    CROSS JOIN LATERAL (SELECT b.event_start - make_interval(secs => %(lead)s::float8 * 3600) AS due) d
    ON CONFLICT (booking_id) DO UPDATE SET
        version = EXCLUDED.version, status = EXCLUDED.status, due_at = EXCLUDED.due_at, schedule_name = NULL,
        scheduled_at = NULL, claimed_at = NULL, sent_at = NULL, updated_at = now()
    WHERE r.version < EXCLUDED.version AND r.status <> 'sending'
      AND (r.status <> 'sent' OR (EXCLUDED.status = 'pending' AND r.due_at <> EXCLUDED.due_at))
    RETURNING r.booking_id, r.version, r.status, r.due_at
)
SELECT {booking},
       up.booking_id IS NOT NULL AS changed,
       COALESCE(up.version, f.version) AS followup_version,
       COALESCE(up.status, f.status) AS followup_status,
       CASE WHEN up.booking_id IS NULL THEN f.scheduled_at END AS scheduled_at,
       rup.booking_id IS NOT NULL AS reminder_changed,
       COALESCE(rup.version, r.version) AS reminder_version,
       COALESCE(rup.status, r.status) AS reminder_status,
       COALESCE(rup.due_at, r.due_at) AS reminder_due_at,
       CASE WHEN rup.booking_id IS NULL THEN r.scheduled_at END AS reminder_scheduled_at
FROM bookings b
JOIN target t ON t.id = b.id
LEFT JOIN up ON up.booking_id = b.id
LEFT JOIN followups f ON f.booking_id = b.id
LEFT JOIN rup ON rup.booking_id = b.id
LEFT JOIN reminders r ON r.booking_id = b.id
""")
    .format(booking=booking_columns("b"))
    .as_string()
)

# schedule_followup, statement 2: the conversation messages; the schedules created (for the
# follow-up version they were made for); and which bookings' follow-ups are fully handled.
# In both finishing statements the follow-ups' own CTEs come before the messages' (the order of
# data-modifying CTEs changes nothing: the main SELECT drives them): pg_stat_activity shows a query's
# first 1024 bytes (track_activity_query_size), and the statement is told apart by these lines
# (the on-call engineer; the reliability tests find a blocked worker by them).
FINISH_SCHEDULES = (
    sql.SQL("""
WITH sched AS (
    UPDATE followups f SET scheduled_at = now(), schedule_name = s.name, updated_at = now()
    FROM unnest(%(s_ids)s::uuid[], %(s_versions)s::int[], %(s_names)s::text[]) AS s(id, version, name)
    WHERE f.booking_id = s.id AND f.version = s.version AND f.status = 'pending'
    RETURNING f.booking_id
), rsched AS (
    UPDATE reminders r SET scheduled_at = now(), schedule_name = s.name, updated_at = now()
    FROM unnest(%(r_ids)s::uuid[], %(r_versions)s::int[], %(r_names)s::text[]) AS s(id, version, name)
    WHERE r.booking_id = s.id AND r.version = s.version AND r.status = 'pending'
    RETURNING r.booking_id
), synced AS (
    UPDATE bookings b SET followup_version = d.version
    FROM unnest(%(d_ids)s::uuid[], %(d_versions)s::int[]) AS d(id, version)
    WHERE b.id = d.id AND b.followup_version < d.version
    RETURNING b.id
), {insert_messages}
SELECT (SELECT count(*) FROM msg) AS messages, (SELECT count(*) FROM sched) AS scheduled,
       (SELECT count(*) FROM rsched) AS reminders_scheduled, (SELECT count(*) FROM synced) AS synced
""")
    .format(insert_messages=INSERT_MESSAGES_CTE)
    .as_string()
)


# send_followup / send_reminder, statement 1: claim. Only a pending follow-up (reminder) of the job's
# version, whose booking is still confirmed at that same version, and which is due (``slack``
# seconds of early firing allowed), moves to 'sending'; a stale, cancelled, sent or early job claims
# nothing. A reminder also needs an event that has not started.
# The claim is where a send happens, so it is ordered with the booking's changes: ``live`` locks
# the booking (FOR SHARE, to the claim's commit). A cancel or move that commits before the lock is
# taken is seen (a row changed since the statement's snapshot is read again, and no longer
# matches); one that comes later waits for the claim's commit and follows the send. Without the
# lock, a claim that read the booking before a cancel committed could still commit after it
# (tests/integration/test_reminders.py, the race tests).
def _claim(table: str, condition: str) -> str:
    return (
        sql.SQL("""
WITH req AS (
    SELECT DISTINCT r.id, r.version FROM unnest(%(ids)s::uuid[], %(versions)s::int[]) AS r(id, version)
), live AS MATERIALIZED (
    SELECT b.id FROM bookings b JOIN req ON req.id = b.id AND req.version = b.version
    WHERE b.status = 'confirmed'{condition}
    FOR SHARE OF b
)
UPDATE {table} f SET status = 'sending', claimed_at = now(), attempts = f.attempts + 1, updated_at = now()
FROM req, live, bookings b
WHERE f.booking_id = req.id AND f.version = req.version AND f.status = 'pending' AND live.id = f.booking_id
  AND b.id = f.booking_id AND b.status = 'confirmed' AND b.version = f.version
  AND f.due_at <= now() + make_interval(secs => %(slack)s)
RETURNING {booking}, f.version AS followup_version,
    (SELECT c.channel FROM conversations c WHERE c.id = b.conversation_id) AS channel
""")
        .format(table=sql.Identifier(table), condition=sql.SQL(condition), booking=booking_columns("b"))
        .as_string()
    )


CLAIM_SENDS = _claim("followups", "")
CLAIM_REMINDERS = _claim("reminders", " AND b.event_start > now()")


# send_followup / send_reminder, statement 2: the messages of the published ones; 'sent' for those,
# back to 'pending' (to be retried) for those whose publish failed; and each sent one's event
# (``Booking Follow-up Sent`` or ``Booking Reminder Sent`` at the row's version, actor system), after a
# share lock on its booking (the event's seq is then drawn in the order of the booking's changes:
# hibachi.events).
def _finish(table: str, event_type: EventType) -> str:
    return (
        sql.SQL("""
WITH done AS (
    UPDATE {table} f SET
        status = CASE WHEN d.ok THEN 'sent' ELSE 'pending' END,
        sent_at = CASE WHEN d.ok THEN now() END,
        claimed_at = CASE WHEN d.ok THEN f.claimed_at END,
        updated_at = now()
    FROM unnest(%(d_ids)s::uuid[], %(d_versions)s::int[], %(d_ok)s::bool[]) AS d(id, version, ok)
    WHERE f.booking_id = d.id AND f.version = d.version AND f.status = 'sending'
    RETURNING f.booking_id, f.status, f.version
), sent AS (
    SELECT b.id, done.version, b.conversation_id, b.status, b.event_start, b.event_end, b.timezone,
           b.duration_minutes, b.guest_count, b.chef_id, b.address
    FROM bookings b JOIN done ON done.booking_id = b.id AND done.status = 'sent'
    FOR SHARE OF b
), {event}, {insert_messages}
SELECT (SELECT count(*) FROM msg) AS messages, (SELECT count(*) FROM done WHERE status = 'sent') AS sent
""")
        .format(
            table=sql.Identifier(table),
            insert_messages=INSERT_MESSAGES_CTE,
            event=booking_event("sent", event_type),
        )
        .as_string()
    )


FINISH_SENDS = _finish("followups", EventType.BOOKING_FOLLOWUP_SENT)
FINISH_REMINDERS = _finish("reminders", EventType.BOOKING_REMINDER_SENT)

# Reconciler: bookings whose follow-up has not been handled for their current version (the
# schedule_followup job was lost, or keeps failing) for longer than the grace period.
BEHIND_BOOKINGS = """
SELECT id, version FROM bookings
WHERE followup_version < version AND updated_at < now() - make_interval(secs => %(grace)s)
ORDER BY updated_at
LIMIT %(limit)s
"""


# Reconciler: follow-ups (reminders) stuck in 'sending' (the worker died mid-send) go back to
# pending, and, with the pending ones past due (the schedule was lost, failed to be created, or
# fired early), are sent directly. Only those whose booking is confirmed at the row's version can
# be claimed, so only those.
def _due(table: str, condition: str) -> str:
    return (
        sql.SQL("""
WITH stuck AS (
    UPDATE {table} SET status = 'pending', claimed_at = NULL, updated_at = now()
    WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => %(stuck)s)
    RETURNING booking_id, version
)
SELECT booking_id, version FROM stuck
UNION ALL
(SELECT f.booking_id, f.version
 FROM {table} f JOIN bookings b ON b.id = f.booking_id AND b.status = 'confirmed' AND b.version = f.version
 WHERE f.status = 'pending' AND f.due_at < now() - make_interval(secs => %(grace)s){condition}
 ORDER BY f.due_at
 LIMIT %(limit)s)
""")
        .format(table=sql.Identifier(table), condition=sql.SQL(condition))
        .as_string()
    )


DUE_FOLLOWUPS = _due("followups", "")
DUE_REMINDERS = _due("reminders", " AND b.event_start > now()")

# which table a send job's statements work on
_SENDS = {
    "followups": (CLAIM_SENDS, FINISH_SENDS, DUE_FOLLOWUPS),
    "reminders": (CLAIM_REMINDERS, FINISH_REMINDERS, DUE_REMINDERS),
}


def sync_followups(db: Database, booking_ids: list[UUID], *, reminder_lead_hours: float) -> list[SyncedFollowup]:
    synced = []
    for row in db.fetchall(SYNC_FOLLOWUPS, {"ids": booking_ids, "lead": reminder_lead_hours}):
        changed, version = row.pop("changed"), row.pop("followup_version")
        status, scheduled_at = row.pop("followup_status"), row.pop("scheduled_at")
        status = FollowupStatus(status) if status is not None else None
        r_changed, r_version, r_status = (
            row.pop("reminder_changed"),
            row.pop("reminder_version"),
            row.pop("reminder_status"),
        )
        r_due, r_scheduled = row.pop("reminder_due_at"), row.pop("reminder_scheduled_at")
        reminder = (
            ReminderState(r_changed, r_version, FollowupStatus(r_status), r_due, r_scheduled)
            if r_status is not None
            else None
        )
        synced.append(SyncedFollowup(cast(BookingRow, row), changed, version, status, scheduled_at, reminder))
    return synced


def finish_schedules(
    db: Database,
    messages: Messages,
    scheduled: list[tuple[UUID, int, str]],
    done: list[tuple[UUID, int]],
    reminders: list[tuple[UUID, int, str]] = [],  # noqa: B006 - read only
) -> ScheduleCounts:
    row = db.fetchone(
        FINISH_SCHEDULES,
        {
            **messages.params(),
            "s_ids": [s[0] for s in scheduled],
            "s_versions": [s[1] for s in scheduled],
            "s_names": [s[2] for s in scheduled],
            "r_ids": [s[0] for s in reminders],
            "r_versions": [s[1] for s in reminders],
            "r_names": [s[2] for s in reminders],
            "d_ids": [d[0] for d in done],
            "d_versions": [d[1] for d in done],
        },
    )
    return cast(ScheduleCounts, _one(row))


def claim_sends(
    db: Database, requests: list[tuple[UUID, int]], *, slack_seconds: int, table: str = "followups"
) -> list[ClaimedSend]:
    rows = db.fetchall(
        _SENDS[table][0],
        {"ids": [r[0] for r in requests], "versions": [r[1] for r in requests], "slack": slack_seconds},
    )
    claimed = []
    for row in rows:
        version, channel = row.pop("followup_version"), row.pop("channel")
        claimed.append(ClaimedSend(cast(BookingRow, row), version, channel))
    return claimed


def finish_sends(
    db: Database, messages: Messages, results: list[tuple[UUID, int, bool]], *, table: str = "followups"
) -> SendCounts:
    row = db.fetchone(
        _SENDS[table][1],
        {
            **messages.params(),
            "d_ids": [r[0] for r in results],
            "d_versions": [r[1] for r in results],
            "d_ok": [r[2] for r in results],
            "actor": Jsonb(SYSTEM_ACTOR),
        },
    )
    return cast(SendCounts, _one(row))


def behind_bookings(db: Database, *, grace_seconds: int, limit: int) -> list[BehindBooking]:
    rows = db.fetchall(BEHIND_BOOKINGS, {"grace": grace_seconds, "limit": limit})
    return [BehindBooking(**row) for row in rows]


def due_followups(
    db: Database, *, grace_seconds: int, stuck_seconds: int, limit: int, table: str = "followups"
) -> list[DueFollowup]:
    rows = db.fetchall(_SENDS[table][2], {"grace": grace_seconds, "stuck": stuck_seconds, "limit": limit})
    return [DueFollowup(**row) for row in rows]


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # pragma: no cover - a SELECT of aggregates without FROM returns one row
        raise RuntimeError("the statement returned no row")
    return row
