"""The follow-up jobs, their EventBridge Scheduler and SNS calls, and their reconcilers.

``schedule_followup`` {booking_id} (after create, reschedule, cancel; idempotent):
    1. one statement: the follow-up row follows the booking's version (pending / cancelled);
    2. the "Booking confirmed" (or "cancelled") system message for the booking's conversation, and
       the one-time schedule ``{SCHEDULE_NAME_PREFIX}{booking_id}``: created, or updated when it
       exists (a reschedule replaces it), or deleted for a cancelled booking. A follow-up due within
       a minute is put on the queue directly instead;
    3. one statement: the messages, the schedule recorded, the booking marked handled
       (``followup_version``). Until then the reconciler re-enqueues the job.
``send_followup`` {booking_id, version} (fired by the schedule, or by the reconciler):
    1. one statement claims it (pending -> sending) only if the booking is still confirmed at that
       version and the follow-up is due: a cancelled, rescheduled, sent or early one claims nothing;
    2. publish to the SNS topic; 3. one statement: the follow-up message in the conversation and
       'sent', or back to 'pending' when the publish failed (the job then fails and is retried).
    Delivered twice, the second claim finds nothing: one message, one publish. (A worker that dies
    between publish and step 3 leaves it 'sending'; the reconciler resends it after
    ``STUCK_SENDING_SECONDS``: at least once, never lost.)
"""

from __future__ import annotations

import json
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
from hibachi.followups.repository import ClaimedSend
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


# -- schedule_followup -------------------------------------------------------------------------------
def _booking_id(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _apply_schedule(row: BookingRow, settings: Settings, correlation_id: str | None) -> str | None:
    """Create/replace (or enqueue directly) the follow-up of the booking's current version; the
    schedule name, or None when nothing was scheduled (the reconciler then sends it when due)."""
    name = f"{settings.schedule_name_prefix}{row['id']}"
    due: datetime = row["followup_due_at"]
    job = send_job(row["id"], row["version"], correlation_id, due=due)
    if due <= datetime.now(UTC) + timedelta(seconds=CLAIM_SLACK_SECONDS):
        if not jobs.get_queue().send(job):
            raise RuntimeError("could not enqueue the due follow-up")
        return None
    if not (settings.scheduler_target_arn and settings.scheduler_role_arn):
        logger.warning(
            "scheduler not configured; the reconciler sends the follow-up when due",
            extra={"booking_id": str(row["id"])},
        )
        return None
    expression, zone_name = schedule_expression(due, ZoneInfo(row["timezone"]))
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
        "Description": f"Follow-up of booking {row['id']} v{row['version']}",
    }
    scheduler = aws.client("scheduler")
    try:
        scheduler.create_schedule(**request)
    except Exception as exc:
        if aws.error_code(exc) != "ConflictException":
            raise
        scheduler.update_schedule(**request)  # rescheduled (or a repeat): replace it
    return name


def _delete_schedule(booking_id: UUID, settings: Settings) -> None:
    if not (settings.scheduler_target_arn and settings.scheduler_role_arn):
        return
    try:
        aws.client("scheduler").delete_schedule(
            Name=f"{settings.schedule_name_prefix}{booking_id}", GroupName=settings.scheduler_group_name
        )
    except Exception as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise


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
    synced = repository.sync_followups(db, list(by_booking))
    messages = repository.Messages()
    scheduled: list[tuple[UUID, int, str]] = []
    done: list[tuple[UUID, int]] = []
    for followup in synced:
        row = followup.booking
        booking_id = row["id"]
        confirmed = row["status"] == "confirmed"
        if row["conversation_id"]:
            if confirmed:
                messages.add(
                    row["conversation_id"],
                    "system",
                    confirmation_text(row),
                    confirmation_metadata(row),
                    f"booking:{booking_id}:confirmed:v{row['version']}",
                )
            else:
                messages.add(
                    row["conversation_id"],
                    "system",
                    cancellation_text(row),
                    {"booking_id": str(booking_id), "kind": "booking_cancelled"},
                    f"booking:{booking_id}:cancelled",
                )
        try:
            if not confirmed:
                _delete_schedule(booking_id, settings)
            elif (
                followup.status is FollowupStatus.PENDING
                and followup.version == row["version"]
                and followup.scheduled_at is None
            ):
                correlation_id = by_booking[booking_id][0].correlation_id
                name = _apply_schedule(row, settings, correlation_id)
                if name is not None:
                    scheduled.append((booking_id, row["version"], name))
            done.append((booking_id, row["version"]))
        except Exception as exc:  # noqa: BLE001 - this booking's jobs fail and are retried; others go on
            logger.warning("follow-up schedule failed", extra={"booking_id": str(booking_id), "error": error_text(exc)})
            for job in by_booking[booking_id]:
                outcome[job.id] = exc
    result = repository.finish_schedules(db, messages, scheduled, done)
    missing = set(by_booking) - {followup.booking["id"] for followup in synced}
    if missing:
        logger.warning("schedule_followup for unknown bookings", extra={"bookings": [str(b) for b in missing][:20]})
    logger.debug("follow-ups scheduled", extra={"bookings": len(synced), **result})
    return outcome


# -- send_followup ---------------------------------------------------------------------------------
def dedup_id(send: ClaimedSend) -> str:
    """The follow-up's identity for subscribers: the same for every publish of one follow-up."""
    return f"followup:{send.booking['id']}:v{send.version}"


def _publish(send: ClaimedSend, text: str, settings: Settings) -> None:
    """Publish the follow-up for the topic's subscribers (SMS, email).

    At least once: a worker that dies between this publish and recording 'sent' publishes again
    after the reconciler's STUCK_SENDING_SECONDS. Every publish of one follow-up carries the same
    ``dedup_id`` (attribute and body) for subscribers to drop repeats; a FIFO topic (``.fifo``) gets
    it as ``MessageDeduplicationId`` and SNS drops repeats itself within its 5-minute window.
    """
    row = send.booking
    channel = send.channel if send.channel in ("sms", "email") else "sms"
    dedup = dedup_id(send)
    message = {
        "type": "booking_followup",
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
        "Subject": "Thank you from your hibachi chef",
        "MessageAttributes": {
            "booking_id": {"DataType": "String", "StringValue": str(row["id"])},
            "dedup_id": {"DataType": "String", "StringValue": dedup},
            "channel": {"DataType": "String", "StringValue": channel},
            "type": {"DataType": "String", "StringValue": "booking_followup"},
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
    outcome: dict[str, Exception | None] = {}
    by_request: dict[tuple[UUID, int], list[jobs.Job]] = {}
    for job in batch:
        request = _send_request(job)
        if request is None:
            outcome[job.id] = ValueError("send_followup job needs booking_id and version")
            continue
        outcome[job.id] = None
        by_request.setdefault(request, []).append(job)
    if not by_request:
        return outcome
    settings = get_settings()
    db = get_db()
    claimed = repository.claim_sends(db, list(by_request), slack_seconds=CLAIM_SLACK_SECONDS)
    if not claimed:
        logger.info("nothing to send (stale, cancelled, already sent or not yet due)", extra={"jobs": len(batch)})
        return outcome
    messages = repository.Messages()
    results: list[tuple[UUID, int, bool]] = []
    for send in claimed:
        row = send.booking
        key = (row["id"], send.version)
        text = followup_text(row)
        try:
            if settings.followup_topic_arn:
                _publish(send, text, settings)
            else:
                logger.warning(
                    "FOLLOWUP_TOPIC_ARN is not set; the follow-up is only stored in the conversation",
                    extra={"booking_id": str(row["id"])},
                )
        except Exception as exc:  # noqa: BLE001 - back to pending, and this job is retried
            logger.warning("follow-up publish failed", extra={"booking_id": str(row["id"]), "error": error_text(exc)})
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
                {"booking_id": str(row["id"]), "kind": "booking_followup"},
                f"booking:{row['id']}:followup",
            )
    result = repository.finish_sends(db, messages, results)
    sent = result["sent"]
    if sent:
        metrics.add_metric(name="FollowupsSent", unit=MetricUnit.Count, value=sent)
    logger.info("follow-ups sent", extra={"sent": sent, "failed": len(results) - sent})
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
    due = repository.due_followups(
        get_db(), grace_seconds=grace_seconds, stuck_seconds=STUCK_SENDING_SECONDS, limit=limit
    )
    if not due:
        return 0
    failed = jobs.get_queue().send_many([send_job(d.booking_id, d.version, "reconciler") for d in due])
    logger.warning(
        "reconciler enqueued due follow-ups",
        extra={"bookings": [str(d.booking_id) for d in due[:20]], "count": len(due), "send_failed": len(failed)},
    )
    return len(due) - len(failed)
