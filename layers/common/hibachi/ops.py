"""Operations data: queue depths, the database figures of ``/health/details``, the reconciler's
run log, follow-up listings. Shared by the health function and the ops CLI (``python -m ops``).

Every database read here is ONE statement; nothing here writes except
:func:`record_reconciler_run` (one statement per reconciler run, which also prunes old rows).

The rows and figures are TypedDicts: each is answered as JSON as it is (``/health/details``, the
ops CLI's direct invocations), so a dict that says its keys is the right shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, cast
from uuid import UUID

from psycopg import sql

from hibachi import sqs
from hibachi.db import Database
from hibachi.followups.models import FollowupStatus, FollowupView
from hibachi.observability import error_text, logger
from hibachi.settings import Settings

RECONCILER_RUNS_KEEP_DAYS = 30
QUEUE_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]

# -- the reconciler's run log -------------------------------------------------------------------------
_RECORD_RUN_SQL = (
    sql.SQL("""
WITH pruned AS (
    DELETE FROM reconciler_runs WHERE ran_at < now() - {keep}::interval
)
INSERT INTO reconciler_runs (elapsed_ms, re_enqueued, total, errors, request_id)
VALUES (%(elapsed_ms)s, %(re_enqueued)s::jsonb, %(total)s, %(errors)s::jsonb, %(request_id)s)
""")
    .format(keep=sql.Literal(f"{RECONCILER_RUNS_KEEP_DAYS} days"))
    .as_string()
)


class ReconcilerRun(TypedDict):
    """A row of the reconciler's run log (``reconciler_runs``), with its age."""

    ran_at: datetime
    elapsed_ms: float
    re_enqueued: dict[str, int]  # jobs re-enqueued, by job type
    total: int
    errors: dict[str, str]  # the failing reconcilers' error types, by job type
    request_id: str | None
    age_s: int


class FollowupFigures(TypedDict):
    pending: int
    failed: int  # overdue + stuck_sending
    overdue: int
    stuck_sending: int
    sent_today: int


class LastRun(TypedDict):
    last_run: dict[str, Any] | None  # the newest ``ReconcilerRun`` as JSON (ran_at as text), None before any


class DatabaseFigures(TypedDict):
    """The database's part of ``/health/details``."""

    followups: FollowupFigures
    emotion_stats_behind: int
    reconciler: LastRun


class FollowupListing(TypedDict):
    """A follow-up as the ops listings show it: ids, versions and times, no customer data."""

    booking_id: UUID
    version: int
    status: FollowupStatus
    due_at: datetime
    claimed_at: datetime | None
    attempts: int
    schedule_name: str | None
    updated_at: datetime


class QueueDepth(TypedDict):
    visible: int
    in_flight: int
    delayed: int


def record_reconciler_run(db: Database, result: Mapping[str, Any], request_id: str | None = None) -> bool:
    """Record one reconciler run (``hibachi.worker.reconcile``'s result); never raises.

    The run log is for the on-call engineer (``/health/details``, ``python -m ops reconcile``);
    failing to write it must not fail the run, whose effect is already done.
    """
    counts = {k: int(v) for k, v in (result.get("re_enqueued") or {}).items()}
    params = {
        "elapsed_ms": max(0.0, float(result.get("elapsed_ms") or 0.0)),
        "re_enqueued": json.dumps(counts),
        "total": sum(counts.values()),
        "errors": json.dumps({k: str(v)[:200] for k, v in (result.get("errors") or {}).items()}),
        "request_id": (request_id or "")[:128] or None,
    }
    try:
        db.execute(_RECORD_RUN_SQL, params)
        return True
    except Exception as exc:  # noqa: BLE001 - the run log is best effort
        logger.warning("reconciler run not recorded", extra={"error": error_text(exc)})
        return False


def reconciler_runs(db: Database, limit: int = 10) -> list[ReconcilerRun]:
    """The newest reconciler runs, newest first."""
    rows = db.fetchall(
        "SELECT ran_at, elapsed_ms, re_enqueued, total, errors, request_id,"
        " round(extract(epoch FROM now() - ran_at))::bigint AS age_s"
        " FROM reconciler_runs ORDER BY ran_at DESC LIMIT %s",
        (max(1, min(int(limit), 1000)),),
    )
    return cast(list[ReconcilerRun], rows)


# -- the database figures of /health/details: one statement -------------------------------------------
# A follow-up has "failed" when it should have gone out and has not: still pending FAILED_AFTER past
# its due time (its schedule was lost and the reconciler has not recovered it), or claimed for
# sending that long ago and never marked sent (a crashed send). FAILED_AFTER is three reconciler
# ticks. "Today" is the UTC day. Each count uses one of the partial indexes of 0002/0003.
FAILED_AFTER = "15 minutes"
_FAILED_AFTER = sql.Literal(FAILED_AFTER)
_FAILED = sql.SQL("""(status = 'pending' AND due_at < now() - {after}::interval)
        OR (status = 'sending' AND claimed_at < now() - {after}::interval)""").format(after=_FAILED_AFTER)

DETAILS_SQL = (
    sql.SQL("""
SELECT
    (SELECT count(*) FROM followups WHERE status = 'pending') AS followups_pending,
    (SELECT count(*) FROM followups WHERE status = 'pending' AND due_at < now() - {after}::interval)
        AS followups_overdue,
    (SELECT count(*) FROM followups WHERE status = 'sending' AND claimed_at < now() - {after}::interval)
        AS followups_stuck_sending,
    (SELECT count(*) FROM followups
      WHERE status = 'sent' AND sent_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
        AS followups_sent_today,
    (SELECT count(*) FROM conversations WHERE scored_count > stats_count) AS emotion_stats_behind,
    (SELECT json_build_object('ran_at', r.ran_at, 'age_s', round(extract(epoch FROM now() - r.ran_at))::bigint,
                              'elapsed_ms', r.elapsed_ms, 're_enqueued', r.re_enqueued, 'total', r.total,
                              'errors', r.errors, 'request_id', r.request_id)
       FROM reconciler_runs r ORDER BY r.ran_at DESC LIMIT 1) AS reconciler_last_run
""")
    .format(after=_FAILED_AFTER)
    .as_string()
)


def database_figures(db: Database) -> DatabaseFigures:
    """Follow-up counts, the emotion-statistics backlog and the reconciler's last run (one statement)."""
    row = db.fetchone(DETAILS_SQL) or {}
    overdue, stuck = row.get("followups_overdue", 0), row.get("followups_stuck_sending", 0)
    return {
        "followups": {
            "pending": row.get("followups_pending", 0),
            "failed": overdue + stuck,
            "overdue": overdue,
            "stuck_sending": stuck,
            "sent_today": row.get("followups_sent_today", 0),
        },
        "emotion_stats_behind": row.get("emotion_stats_behind", 0),
        "reconciler": {"last_run": row.get("reconciler_last_run")},
    }


# -- follow-ups ---------------------------------------------------------------------------------------
_FOLLOWUP_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, FollowupListing.__annotations__))
_LIST_FOLLOWUPS = sql.SQL("SELECT {columns} FROM followups WHERE {where} ORDER BY due_at, booking_id LIMIT %(limit)s")
_FOLLOWUPS_SQL = {
    FollowupView.PENDING: _LIST_FOLLOWUPS.format(
        columns=_FOLLOWUP_COLUMNS, where=sql.SQL("status = 'pending'")
    ).as_string(),
    FollowupView.FAILED: _LIST_FOLLOWUPS.format(columns=_FOLLOWUP_COLUMNS, where=_FAILED).as_string(),
}


def list_followups(db: Database, status: FollowupView | str, limit: int = 50) -> list[FollowupListing]:
    """Follow-ups ``pending`` (waiting for their time) or ``failed`` (see ``FAILED_AFTER``), oldest
    due first. Ids, versions and times only: no customer data."""
    if status not in _FOLLOWUPS_SQL:
        raise ValueError(f"status must be one of {sorted(map(str, FollowupView))}")
    rows = db.fetchall(_FOLLOWUPS_SQL[FollowupView(status)], {"limit": max(1, min(int(limit), 1000))})
    for row in rows:
        row["status"] = FollowupStatus(row["status"])
    return cast(list[FollowupListing], rows)


# -- queues ---------------------------------------------------------------------------------------------
# -- the event log's publishing backlog ---------------------------------------------------------
class EventBacklog(TypedDict):
    """Unpublished events: how many, the oldest, the most attempts (``python -m ops events``)."""

    unpublished: int
    oldest_at: datetime | None
    oldest_age_s: int | None
    max_attempts: int
    by_type: dict[str, int]
    published_last_hour: int


EVENT_BACKLOG_SQL = """
SELECT count(*) FILTER (WHERE published_at IS NULL) AS unpublished,
       min(occurred_at) FILTER (WHERE published_at IS NULL) AS oldest_at,
       floor(extract(epoch FROM now() - min(occurred_at) FILTER (WHERE published_at IS NULL)))::int AS oldest_age_s,
       coalesce(max(publish_attempts) FILTER (WHERE published_at IS NULL), 0) AS max_attempts,
       coalesce((SELECT jsonb_object_agg(type, n) FROM (
           SELECT type, count(*) AS n FROM events WHERE published_at IS NULL GROUP BY type) t), '{}'::jsonb) AS by_type,
       count(*) FILTER (WHERE published_at > now() - interval '1 hour') AS published_last_hour
FROM events
WHERE published_at IS NULL OR published_at > now() - interval '1 hour'
"""


def event_backlog(db: Database) -> EventBacklog:
    """One statement over the unpublished events (partial index) and the last hour's."""
    row = db.fetchone(EVENT_BACKLOG_SQL)
    return cast(EventBacklog, row)


def sqs_client(settings: Settings, *, read_timeout: float = 2.0) -> sqs.Sqs:
    """An SQS client with short timeouts and one attempt: a health check must not hang on SQS.
    Building it costs microseconds (``hibachi.sqs``: no boto3), so a probe's budget measures SQS."""
    endpoint = sqs.settings_endpoint(settings, settings.jobs_queue_url)  # the DLQs are on the same endpoint
    return sqs.client(settings.aws_region, endpoint, connect_timeout=1, read_timeout=read_timeout, attempts=1)


def queue_depth(client: sqs.Sqs, queue_url: str) -> QueueDepth:
    """``{visible, in_flight, delayed}`` of a queue (approximate, as SQS reports it)."""
    return depth_of(client.get_queue_attributes(queue_url, QUEUE_ATTRIBUTES))


def depth_of(attrs: Mapping[str, Any]) -> QueueDepth:
    """The depth in a ``GetQueueAttributes`` answer for ``QUEUE_ATTRIBUTES`` (any SQS client's)."""
    return {
        "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def configured_queues(settings: Settings) -> dict[str, str | None]:
    return {
        "jobs": settings.jobs_queue_url,
        "jobs_dlq": settings.jobs_dlq_url,
        "scheduler_dlq": settings.scheduler_dlq_url,
    }
