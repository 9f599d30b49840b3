"""The follow-up and reminder jobs, their EventBridge Scheduler and SNS calls, and their reconcilers.

``schedule_followup`` {booking_id} (after create, reschedule, cancel; idempotent):
    1. one statement: the follow-up row follows the booking's version (pending / cancelled), and so
       does the reminder row (pending / cancelled / skipped, due ``REMINDER_LEAD_HOURS`` before the event);
    2. the "Booking confirmed" (or "cancelled") system message for the booking's conversation, and
       the one-time schedules ``{SCHEDULE_NAME_PREFIX}{booking_id}`` (follow-up) and
       ``{SCHEDULE_NAME_PREFIX}rm-{booking_id}`` (reminder): created, or updated when they exist (a
       reschedule replaces them), or deleted for a cancelled booking (and a skipped reminder). One
       due within a minute is put on the queue directly instead;
    3. one statement: the messages, the schedules recorded, the booking marked handled
       (``followup_version``). Until then the reconciler re-enqueues the job: a schedule call that
       failed is made again.
``send_followup`` / ``send_reminder`` {booking_id, version} (fired by the schedule, or by the reconciler):
    1. one statement claims it (pending -> sending) only if the booking is still confirmed at that
       version and it is due (a reminder: and the event has not started): a cancelled, rescheduled,
       sent or early one claims nothing. The claim locks the booking row, so a cancel or move
       either commits first (nothing is claimed) or waits for the claim (the send precedes it);
    2. publish to the SNS topic; 3. one statement: the message in the conversation and
       'sent', or back to 'pending' when the publish failed (the job then fails and is retried).
    Delivered twice, the second claim finds nothing: one message, one publish. (A worker that dies
    between publish and step 3 leaves it 'sending'; the reconciler resends it after
    ``STUCK_SENDING_SECONDS``: at least once, never lost.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi import aws, jobs
from hibachi.bookings.repository import BookingRow
from hibachi.bookings.times import schedule_expression
from hibachi.db import get_db
from hibachi.followups import repository
from hibachi.followups.jobs import schedule_job, send_job
from hibachi.followups.models import FollowupStatus
from hibachi.followups.repository import ClaimedSend, ReminderState, SyncedFollowup
from hibachi.observability import MetricUnit, error_text, logger, metrics
from hibachi.settings import Settings, get_settings

CLAIM_SLACK_SECONDS = 60  # a schedule may fire this early (or the clocks differ this much)
STUCK_SENDING_SECONDS = 300  # a 'sending' follow-up older than this was abandoned by a dead worker
SCHEDULE_RETRY_POLICY = {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 24 * 3600}


# -- texts ----------------------------------------------------------------------------------------------
def _when(row: BookingRow) -> str:
    zone = ZoneInfo(row["timezone"])
    start = row["event_start"].astimezone(zone)
    end = row["event_end"].astimezone(zone)
    return f"{start:%a %d %b %Y}, {start:%H:%M}-{end:%H:%M} {start.tzname()} ({row['timezone']})"


# The confirmation and cancellation are ``system`` messages, and a conversation is the LLM's prompt:
# their text holds server-generated facts only (ids, dates, counts, the validated time zone), never
# what the customer typed (name, address, notes), which could carry instructions ("Ignore previous
# instructions..."). The address travels as data in the message's ``metadata`` (``confirmation_metadata``).
def confirmation_text(row: BookingRow) -> str:
    updated = " (updated)" if row["version"] > 1 else ""
    return (
        f"Booking confirmed{updated}: a hibachi chef for {row['guest_count']} guests on {_when(row)}, "
        f"{row['duration_minutes']} minutes. Booking {row['id']}, version {row['version']}."
    )


def confirmation_metadata(row: BookingRow) -> dict[str, Any]:
    """The confirmation's metadata: the ids, and the customer-typed address as data (a JSON object
    the chat client may show or hand to the model as a tool result, never as instructions)."""
    return {
        "booking_id": str(row["id"]),
        "kind": "booking_confirmed",
        "version": row["version"],
        "address": row["address"] or {},
    }


def cancellation_text(row: BookingRow) -> str:
    return f"Booking cancelled: the hibachi event on {_when(row)} is cancelled. Booking {row['id']}."


def followup_text(row: BookingRow) -> str:
    first = (row["customer_name"] or "").split()[0] if row["customer_name"] else "there"
    day = row["event_start"].astimezone(ZoneInfo(row["timezone"]))
    return (
        f"Hi {first}, thank you for having us cook for your {row['guest_count']} guests on {day:%A %d %B}! "
        "We hope everyone enjoyed the show. If you have a moment, tell us how it went, and we would love "
        "to cook for you again."
    )


def reminder_text(row: BookingRow) -> str:
    first = (row["customer_name"] or "").split()[0] if row["customer_name"] else "there"
    start = row["event_start"].astimezone(ZoneInfo(row["timezone"]))
    return (
        f"Hi {first}, a reminder: your hibachi chef is coming on {start:%A %d %B} at {start:%H:%M} "
        f"{start.tzname()} for your {row['guest_count']} guests. We look forward to cooking for you! "
        "If anything has changed, just reply here."
    )


@dataclass(frozen=True, slots=True)
class SendKind:
    """What tells a follow-up's send from a reminder's: the table, the job, the texts and names."""

    name: str  # the message's metadata ``kind``, the SNS ``type``; the dedup id's prefix
    table: str
    job_type: str
    text: Callable[[BookingRow], str]
    subject: str
    metric: str
    key: Callable[[BookingRow, int], str]  # the chat message's idempotency key


FOLLOWUP = SendKind(
    "booking_followup",
    "followups",
    jobs.SEND_FOLLOWUP,
    followup_text,
    "Thank you from your hibachi chef",
    "FollowupsSent",
    lambda row, version: f"booking:{row['id']}:followup",
)
REMINDER = SendKind(
    "booking_reminder",
    "reminders",
    jobs.SEND_REMINDER,
    reminder_text,
    "Reminder: your hibachi chef is coming",
    "RemindersSent",
    lambda row, version: f"booking:{row['id']}:reminder:v{version}",  # a moved event is reminded again
)


# -- schedule_followup -------------------------------------------------------------------------------
def _booking_id(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def reminder_schedule_name(booking_id: UUID | str, settings: Settings) -> str:
    return f"{settings.schedule_name_prefix}rm-{booking_id}"


def _put_schedule(
    name: str, due: datetime, job: jobs.Job, zone: ZoneInfo, description: str, settings: Settings
) -> str | None:
    """Create/replace the one-time schedule ``name`` that puts ``job`` on the queue at ``due`` (or
    enqueue it directly when it is due within a minute); the schedule name, or None when nothing
    was scheduled (the reconciler then sends it when due)."""
    if due <= datetime.now(UTC) + timedelta(seconds=CLAIM_SLACK_SECONDS):
        if not jobs.get_queue().send(job):
            raise RuntimeError(f"could not enqueue the due {job.type} job")
        return None
    if not (settings.scheduler_target_arn and settings.scheduler_role_arn):
        logger.warning(
            "scheduler not configured; the reconciler sends it when due",
            extra={"booking_id": job.payload.get("booking_id"), "job_type": job.type},
        )
        return None
    expression, zone_name = schedule_expression(due, zone)
    target: dict[str, Any] = {
        "Arn": settings.scheduler_target_arn,
        "RoleArn": settings.scheduler_role_arn,
        "Input": job.model_dump_json(),
        "RetryPolicy": SCHEDULE_RETRY_POLICY,
    }
    if settings.scheduler_dlq_arn:
        target["DeadLetterConfig"] = {"Arn": settings.scheduler_dlq_arn}
    request = {
        "Name": name,
        "GroupName": settings.scheduler_group_name,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": zone_name,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "State": "ENABLED",
        "Target": target,
        "Description": description,
    }
    scheduler = aws.client("scheduler")
    try:
        scheduler.create_schedule(**request)
    except Exception as exc:
        if aws.error_code(exc) != "ConflictException":
            raise
        scheduler.update_schedule(**request)  # rescheduled (or a repeat): replace it
    return name


def _apply_schedule(row: BookingRow, settings: Settings, correlation_id: str | None) -> str | None:
    """The follow-up of the booking's current version (``_put_schedule``)."""
    return _put_schedule(
        f"{settings.schedule_name_prefix}{row['id']}",
        row["followup_due_at"],
        send_job(row["id"], row["version"], correlation_id, due=row["followup_due_at"]),
        ZoneInfo(row["timezone"]),
        f"Follow-up of booking {row['id']} v{row['version']}",
        settings,
    )


def _apply_reminder(
    row: BookingRow, reminder: ReminderState, settings: Settings, correlation_id: str | None
) -> str | None:
    """The reminder of the booking's current version (``_put_schedule``)."""
    job = send_job(row["id"], reminder.version, correlation_id, due=reminder.due_at, job_type=jobs.SEND_REMINDER)
    return _put_schedule(
        reminder_schedule_name(row["id"], settings),
        reminder.due_at,
        job,
        ZoneInfo(row["timezone"]),
        f"Reminder of booking {row['id']} v{reminder.version}",
        settings,
    )


def _delete_schedule(booking_id: UUID, settings: Settings, name: str | None = None) -> None:
    """Delete the booking's follow-up schedule (or the schedule ``name``); gone already is fine."""
    if not (settings.scheduler_target_arn and settings.scheduler_role_arn):
        return
    try:
        aws.client("scheduler").delete_schedule(
            Name=name or f"{settings.schedule_name_prefix}{booking_id}", GroupName=settings.scheduler_group_name
        )
    except Exception as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise


class ReminderInFlight(Exception):
    """The reminder of an older version is being sent: the job retries once that send is recorded."""


def _sync_reminder(
    row: BookingRow, reminder: ReminderState | None, settings: Settings, correlation_id: str | None
) -> str | None:
    """Bring the booking's reminder schedule in line with its row; the name of a schedule made."""
    if reminder is None:  # a concurrent job made the row after this statement's snapshot: its job
        return None
    if reminder.status is FollowupStatus.SENDING and reminder.version < row["version"]:
        raise ReminderInFlight(str(row["id"]))
    if reminder.status in (FollowupStatus.CANCELLED, FollowupStatus.SKIPPED):
        # the schedule of a version before, if it had one (gone already is fine: a retry deletes again)
        _delete_schedule(row["id"], settings, reminder_schedule_name(row["id"], settings))
        return None
    if (
        reminder.status is FollowupStatus.PENDING
        and reminder.version == row["version"]
        and reminder.scheduled_at is None
    ):
        return _apply_reminder(row, reminder, settings, correlation_id)
    return None


def _sync_followup(followup: SyncedFollowup, settings: Settings, correlation_id: str | None) -> str | None:
    """Bring the booking's follow-up schedule in line with its row (none once cancelled); the name
    of a schedule made."""
    row = followup.booking
    if row["status"] != "confirmed":
        _delete_schedule(row["id"], settings)
        return None
    if (
        followup.status is FollowupStatus.PENDING
        and followup.version == row["version"]
        and followup.scheduled_at is None
    ):
        return _apply_schedule(row, settings, correlation_id)
    return None


def _add_status_message(messages: repository.Messages, row: BookingRow) -> None:
    """The confirmation (of this version) or the cancellation, for the booking's conversation if it has one."""
    booking_id, conversation_id = row["id"], row["conversation_id"]
    if not conversation_id:
        return
    if row["status"] == "confirmed":
        messages.add(
            conversation_id,
            "system",
            confirmation_text(row),
            confirmation_metadata(row),
            f"booking:{booking_id}:confirmed:v{row['version']}",
        )
    else:
        messages.add(
            conversation_id,
            "system",
            cancellation_text(row),
            {"booking_id": str(booking_id), "kind": "booking_cancelled"},
            f"booking:{booking_id}:cancelled",
        )


def handle_schedule_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """Bring the follow-ups of the batch's bookings up to date: two statements per batch."""
    outcome: dict[str, Exception | None] = {}
    by_booking: dict[UUID, list[jobs.Job]] = {}
    for job in batch:
        booking_id = _booking_id(job.payload.get("booking_id"))
        if booking_id is None:
            outcome[job.id] = ValueError("schedule_followup job without a valid booking_id")
            continue
        outcome[job.id] = None
        by_booking.setdefault(booking_id, []).append(job)
    if not by_booking:
        return outcome
    settings = get_settings()
    db = get_db()
    synced = repository.sync_followups(db, list(by_booking), reminder_lead_hours=settings.reminder_lead_hours)
    messages = repository.Messages()
    scheduled: list[tuple[UUID, int, str]] = []
    reminders: list[tuple[UUID, int, str]] = []
    done: list[tuple[UUID, int]] = []
    for followup in synced:
        row = followup.booking
        booking_id = row["id"]
        _add_status_message(messages, row)
        correlation_id = by_booking[booking_id][0].correlation_id
        try:
            name = _sync_followup(followup, settings, correlation_id)
            if name is not None:
                scheduled.append((booking_id, row["version"], name))
            name = _sync_reminder(row, followup.reminder, settings, correlation_id)
            if name is not None:
                reminders.append((booking_id, row["version"], name))
            done.append((booking_id, row["version"]))
        except Exception as exc:  # noqa: BLE001 - this booking's jobs fail and are retried; others go on
            logger.warning("follow-up schedule failed", extra={"booking_id": str(booking_id), "error": error_text(exc)})
            for job in by_booking[booking_id]:
                outcome[job.id] = exc
    result = repository.finish_schedules(db, messages, scheduled, done, reminders)
    missing = set(by_booking) - {followup.booking["id"] for followup in synced}
    if missing:
        logger.warning("schedule_followup for unknown bookings", extra={"bookings": [str(b) for b in missing][:20]})
    logger.debug("follow-ups scheduled", extra={"bookings": len(synced), **result})
    return outcome


# -- send_followup ---------------------------------------------------------------------------------
def dedup_id(send: ClaimedSend, kind: SendKind = FOLLOWUP) -> str:
    """The follow-up's (reminder's) identity for subscribers: the same for every publish of it."""
    prefix = "followup" if kind is FOLLOWUP else "reminder"
    return f"{prefix}:{send.booking['id']}:v{send.version}"


def _publish(send: ClaimedSend, text: str, settings: Settings, kind: SendKind = FOLLOWUP) -> None:
    """Publish the follow-up for the topic's subscribers (SMS, email).

    At least once: a worker that dies between this publish and recording 'sent' publishes again
    after the reconciler's STUCK_SENDING_SECONDS. Every publish of one follow-up carries the same
    ``dedup_id`` (attribute and body) for subscribers to drop repeats; a FIFO topic (``.fifo``) gets
    it as ``MessageDeduplicationId`` and SNS drops repeats itself within its 5-minute window.
    """
    row = send.booking
    channel = send.channel if send.channel in ("sms", "email") else "sms"
    dedup = dedup_id(send, kind)
    message = {
        "type": kind.name,
        "dedup_id": dedup,
        "booking_id": str(row["id"]),
        "version": send.version,
        "conversation_id": row["conversation_id"],
        "text": text,
        "channel": channel,
        "customer": {"name": row["customer_name"], "phone": row["customer_phone"], "email": row["customer_email"]},
        "event_start": row["event_start"].astimezone(ZoneInfo(row["timezone"])).isoformat(),
        "timezone": row["timezone"],
    }
    request: dict[str, Any] = {
        "TopicArn": settings.followup_topic_arn,
        "Message": json.dumps(message),
        "Subject": kind.subject,
        "MessageAttributes": {
            "booking_id": {"DataType": "String", "StringValue": str(row["id"])},
            "dedup_id": {"DataType": "String", "StringValue": dedup},
            "channel": {"DataType": "String", "StringValue": channel},
            "type": {"DataType": "String", "StringValue": kind.name},
        },
    }
    if (settings.followup_topic_arn or "").endswith(".fifo"):
        request.update(MessageGroupId=str(row["id"]), MessageDeduplicationId=dedup)
        request.pop("Subject")  # FIFO topics take no subject
    aws.client("sns").publish(**request)


def _send_request(job: jobs.Job) -> tuple[UUID, int] | None:
    booking_id = _booking_id(job.payload.get("booking_id"))
    version = job.payload.get("version")
    if booking_id is None or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None
    return booking_id, version


def handle_send_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """Send the due follow-ups of the batch, each once: two statements per batch."""
    return _send(batch, FOLLOWUP)


def handle_reminder_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """Send the due reminders of the batch, each once: two statements per batch."""
    return _send(batch, REMINDER)


def _send(batch: list[jobs.Job], kind: SendKind) -> dict[str, Exception | None]:
    outcome: dict[str, Exception | None] = {}
    by_request: dict[tuple[UUID, int], list[jobs.Job]] = {}
    for job in batch:
        request = _send_request(job)
        if request is None:
            outcome[job.id] = ValueError(f"{kind.job_type} job needs booking_id and version")
            continue
        outcome[job.id] = None
        by_request.setdefault(request, []).append(job)
    if not by_request:
        return outcome
    settings = get_settings()
    db = get_db()
    claimed = repository.claim_sends(db, list(by_request), slack_seconds=CLAIM_SLACK_SECONDS, table=kind.table)
    if not claimed:
        logger.info(
            "nothing to send (stale, cancelled, already sent or not yet due)",
            extra={"jobs": len(batch), "job_type": kind.job_type},
        )
        return outcome
    messages = repository.Messages()
    results: list[tuple[UUID, int, bool]] = []
    for send in claimed:
        row = send.booking
        key = (row["id"], send.version)
        text = kind.text(row)
        try:
            if settings.followup_topic_arn:
                _publish(send, text, settings, kind)
            else:
                logger.warning(
                    "FOLLOWUP_TOPIC_ARN is not set; the message is only stored in the conversation",
                    extra={"booking_id": str(row["id"]), "job_type": kind.job_type},
                )
        except Exception as exc:  # noqa: BLE001 - back to pending, and this job is retried
            logger.warning(
                "publish failed",
                extra={"booking_id": str(row["id"]), "job_type": kind.job_type, "error": error_text(exc)},
            )
            results.append((*key, False))
            for job in by_request.get(key, []):
                outcome[job.id] = exc
            continue
        results.append((*key, True))
        if row["conversation_id"]:
            messages.add(
                row["conversation_id"],
                "assistant",
                text,
                {"booking_id": str(row["id"]), "kind": kind.name},
                kind.key(row, send.version),
            )
    result = repository.finish_sends(db, messages, results, table=kind.table)
    sent = result["sent"]
    if sent:
        metrics.add_metric(name=kind.metric, unit=MetricUnit.Count, value=sent)
    logger.info("sent", extra={"job_type": kind.job_type, "sent": sent, "failed": len(results) - sent})
    return outcome


# -- reconcilers -----------------------------------------------------------------------------------
def reconcile_schedule_jobs(grace_seconds: int, limit: int) -> int:
    """Re-enqueue ``schedule_followup`` for bookings whose follow-up lags their version."""
    behind = repository.behind_bookings(get_db(), grace_seconds=grace_seconds, limit=limit)
    if not behind:
        return 0
    failed = jobs.get_queue().send_many([schedule_job(b.id, b.version, "reconciler") for b in behind])
    logger.warning(
        "reconciler re-enqueued schedule_followup jobs",
        extra={"bookings": [str(b.id) for b in behind[:20]], "count": len(behind), "send_failed": len(failed)},
    )
    return len(behind) - len(failed)


def reconcile_send_jobs(grace_seconds: int, limit: int) -> int:
    """Enqueue ``send_followup`` for follow-ups past due and unsent (a lost or early schedule, or a
    worker that died mid-send)."""
    return _reconcile_sends(grace_seconds, limit, FOLLOWUP)


def reconcile_reminder_jobs(grace_seconds: int, limit: int) -> int:
    """Enqueue ``send_reminder`` for reminders past due and unsent, whose event has not started (a
    schedule call that failed, a lost or early schedule, or a worker that died mid-send)."""
    return _reconcile_sends(grace_seconds, limit, REMINDER)


def _reconcile_sends(grace_seconds: int, limit: int, kind: SendKind) -> int:
    due = repository.due_followups(
        get_db(), grace_seconds=grace_seconds, stuck_seconds=STUCK_SENDING_SECONDS, limit=limit, table=kind.table
    )
    if not due:
        return 0
    failed = jobs.get_queue().send_many(
        [send_job(d.booking_id, d.version, "reconciler", job_type=kind.job_type) for d in due]
    )
    logger.warning(
        "reconciler enqueued due sends",
        extra={
            "job_type": kind.job_type,
            "bookings": [str(d.booking_id) for d in due[:20]],
            "count": len(due),
            "send_failed": len(failed),
        },
    )
    return len(due) - len(failed)
