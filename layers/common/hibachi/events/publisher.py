"""The worker's EventBridge publisher: the event log's unpublished rows go out with PutEvents, at
least once, in order per aggregate.

Each round claims the head of line of every aggregate asked for (its oldest unpublished event:
``repository.CLAIM_HEADS``), puts them (10 entries per PutEvents, at most one per aggregate, so a
failed entry never lets a later event of its aggregate overtake it), and records which entries
EventBridge took (``FailedEntryCount``/``ErrorCode`` per entry: the others are released, not
published). An aggregate with more unpublished events goes round again. Two statements and one
PutEvents per round; an aggregate whose head failed stops there: the reconciler
(``reconcile_publish``) comes back for it after ``RECONCILE_GRACE_SECONDS``.

Delivered twice, a claim finds nothing: one PutEvents per event. A worker that dies between
PutEvents and recording it leaves the claim; after ``STALE_CLAIM_SECONDS`` the event is claimable
again and is put again with the same id (subscribers deduplicate on ``detail.id``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi import aws, jobs
from hibachi.db import Database, get_db
from hibachi.events import repository
from hibachi.events.models import SOURCES, AggregateType, EventType
from hibachi.events.repository import Claimed
from hibachi.observability import MetricUnit, error_text, exception_facts, logger, metrics
from hibachi.settings import get_settings

STALE_CLAIM_SECONDS = 120  # a claim older than this was left by a dead worker (its timeout is 60 s)
MAX_ROUNDS = 20  # an aggregate with more unpublished events than this waits for the next run
# a run stops starting PutEvents calls after this long (the worker's timeout is 60 s): what is left
# waits for the next job or the reconciler, instead of a killed invocation stranding its claims
PUBLISH_BUDGET_SECONDS = 20
PUT_EVENTS_MAX = 10  # entries per PutEvents


# -- the staff notice ----------------------------------------------------------------------------------
_TITLES = {
    EventType.BOOKING_CREATED: "New booking",
    EventType.BOOKING_RESCHEDULED: "Booking moved",
    EventType.BOOKING_DETAILS_CHANGED: "Booking changed",
    EventType.BOOKING_CANCELLED: "Booking cancelled",
    EventType.BOOKING_FOLLOWUP_SENT: "Follow-up sent",
    EventType.BOOKING_REMINDER_SENT: "Reminder sent",
}


def _local(value: Any, zone: str) -> str:
    try:
        instant = datetime.fromisoformat(str(value))
        return f"{instant.astimezone(ZoneInfo(zone)):%a %d %b %H:%M}"
    except (ValueError, KeyError, TypeError):
        return "?"


def notice(event_type: str, data: dict[str, Any]) -> str:
    """The staff notice: one line a person reads on a phone ("New booking: Sat 14 Dec 18:00, 12 guests,
    chef 2, Austin TX (booking 1a2b3c4d)"). Server facts only: the local time, the head count, the
    chef, the city and state, and the booking's short id; no customer name or contact data
    (docs/EVENTS.md). No double quote, backslash or control character: the rule's input transformer
    puts the line into a quoted JSON string as it is."""
    if event_type == EventType.CONVERSATION_NEEDS_ATTENTION:
        return _plain(attention_notice(data))
    title = _TITLES.get(event_type, event_type)  # type: ignore[call-overload]
    booking = data.get("booking")
    if not isinstance(booking, dict):
        return _plain(str(title))
    zone = str(booking.get("timezone") or "UTC")
    changes = data.get("changes") if isinstance(data.get("changes"), dict) else {}
    when = _local(booking.get("event_start"), zone)
    start_change = changes.get("event_start") if changes else None
    if isinstance(start_change, dict):
        when = f"{_local(start_change.get('old'), zone)} -> {when}"
    guests = f"{booking.get('guest_count')} guests"
    guest_change = changes.get("guest_count") if changes else None
    if isinstance(guest_change, dict):
        guests = f"{guest_change.get('old')} -> {guest_change.get('new')} guests"
    place = " ".join(str(p) for p in (booking.get("city"), booking.get("state")) if p)
    short = str(booking.get("id", ""))[:8]
    return _plain(f"{title}: {when}, {guests}, chef {booking.get('chef_id')}, {place} (booking {short})")


def _plain(text: str) -> str:
    return "".join(c for c in text.replace('"', "'") if c != "\\" and c.isprintable())[:300]


def attention_notice(data: dict[str, Any]) -> str:
    """The staff notice of a conversation that needs attention ("Conversation needs attention: web:c-1,
    mood falling (trend -0.21 per message, last score -0.60, average 0.12 over 6 scores)"): the
    conversation to open and the figures, never a message's text."""
    found = data.get("emotion")
    emotion: dict[str, Any] = found if isinstance(found, dict) else {}

    def figure(key: str) -> str:
        value = emotion.get(key)
        return f"{value:+.2f}" if isinstance(value, int | float) else "?"

    return _plain(
        f"Conversation needs attention: {data.get('conversation_id')}, mood falling (trend {figure('trend')} "
        f"per message, last score {figure('last')}, average {figure('avg')} over {emotion.get('count')} scores)"
    )


def detail(event: Claimed) -> dict[str, Any]:
    """The EventBridge ``detail`` (docs/EVENTS.md's schema): the event as ``GET /bookings/{id}/events``
    lists it, plus the staff notice."""
    return {
        "id": str(event.id),
        "type": event.type,
        "version": event.version,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "aggregate": {"type": event.aggregate_type, "id": event.aggregate_id},
        "booking_id": str(event.booking_id) if event.booking_id else None,
        "conversation_id": event.conversation_id,
        "actor": event.actor,
        "data": event.data,
        "notice": notice(event.type, event.data),
    }


def entry(event: Claimed, bus: str) -> dict[str, Any]:
    return {
        "Source": SOURCES.get(event.aggregate_type, f"hibachi.{event.aggregate_type}s"),
        "DetailType": event.type,
        "Detail": json.dumps(detail(event), separators=(",", ":"), default=str),
        "EventBusName": bus,
        "Time": event.occurred_at,
        "Resources": [],
    }


# -- publishing ----------------------------------------------------------------------------------------
def _put(events: list[Claimed], bus: str) -> dict[int, str | None]:
    """PutEvents in chunks; per seq, None (EventBridge took it) or why not. Never raises."""
    results: dict[int, str | None] = {}
    client = aws.client("events")
    for start in range(0, len(events), PUT_EVENTS_MAX):
        chunk = events[start : start + PUT_EVENTS_MAX]
        try:
            response = client.put_events(Entries=[entry(e, bus) for e in chunk])
        except Exception as exc:  # noqa: BLE001 - the whole call failed: every entry is retried
            reason = aws.error_code(exc) or type(exc).__name__
            logger.warning("PutEvents failed", extra={"events": len(chunk), "error": error_text(exc)})
            results.update({e.seq: reason for e in chunk})
            continue
        answers = response.get("Entries") or []
        for i, event in enumerate(chunk):
            # entries answer in request order; one without an EventId (or missing) failed
            answer = answers[i] if i < len(answers) else {}
            results[event.seq] = None if answer.get("EventId") else (answer.get("ErrorCode") or "NoEventId")
        if response.get("FailedEntryCount"):
            logger.warning(
                "PutEvents failed entries",
                extra={"failed": response["FailedEntryCount"], "events": len(chunk)},
            )
    return results


def publish(aggregates: list[tuple[str, str]]) -> tuple[int, int]:
    """Publish the unpublished events of ``aggregates`` ((type, id) pairs), in order per aggregate.
    Returns (published, failed); never raises for EventBridge (the reconciler retries)."""
    bus = get_settings().event_bus_name
    pending = list(dict.fromkeys(aggregates))
    if not pending:
        return 0, 0
    if not bus:
        logger.warning("EVENT_BUS_NAME is not set; events stay unpublished", extra={"aggregates": len(pending)})
        return 0, 0
    db = get_db()
    published = failed = 0
    deadline = time.monotonic() + PUBLISH_BUDGET_SECONDS
    rounds = 0
    while pending and rounds < MAX_ROUNDS * 10 and time.monotonic() < deadline:
        rounds += 1
        claimed = repository.claim_heads(db, pending, stale_seconds=STALE_CLAIM_SECONDS, limit=PUT_EVENTS_MAX)
        if not claimed:
            break
        ok, pending = _publish_round(db, claimed, pending, bus)
        published += ok
        failed += len(claimed) - ok
    if published:
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=published)
    if failed:
        metrics.add_metric(name="EventsPublishFailed", unit=MetricUnit.Count, value=failed)
    return published, failed


def _publish_round(
    db: Database, claimed: list[Claimed], pending: list[tuple[str, str]], bus: str
) -> tuple[int, list[tuple[str, str]]]:
    """Put the ``claimed`` heads, record the outcome; (how many went out, the aggregates still to
    publish this call)."""
    outcome = _put(claimed, bus)
    repository.finish_publish(db, [(e.seq, outcome.get(e.seq) is None) for e in claimed])
    ok = [e for e in claimed if outcome.get(e.seq) is None]
    going_on = {(e.aggregate_type, e.aggregate_id) for e in ok if e.more}
    handled = {(e.aggregate_type, e.aggregate_id) for e in claimed}
    if len(claimed) < PUT_EVENTS_MAX:  # every other aggregate asked for had nothing claimable
        return len(ok), [a for a in pending if a in going_on]
    # the claim was full: the unclaimed ones wait for the next round
    return len(ok), [a for a in pending if a not in handled or a in going_on]


def publish_bookings(booking_ids: list[UUID]) -> tuple[int, int]:
    """``publish`` for bookings (after a job that changed them, or that a change enqueued)."""
    return publish([(AggregateType.BOOKING.value, str(b)) for b in booking_ids])


def handle_publish_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """``publish_events`` {aggregate_type, aggregate_id}: publish that aggregate's events (a job
    whoever wrote an event without another job may enqueue; the reconciler needs none)."""
    outcome: dict[str, Exception | None] = {}
    aggregates: list[tuple[str, str]] = []
    for job in batch:
        kind, ident = job.payload.get("aggregate_type"), job.payload.get("aggregate_id")
        if kind not in SOURCES or not isinstance(ident, str) or not ident:
            outcome[job.id] = ValueError("publish_events job needs aggregate_type and aggregate_id")
            continue
        outcome[job.id] = None
        aggregates.append((kind, ident))
    publish(aggregates)
    return outcome


def publishing_after(
    handler: Callable[[list[jobs.Job]], Mapping[str, Exception | None]],
) -> Callable[[list[jobs.Job]], Mapping[str, Exception | None]]:
    """``handler``, then the events of the bookings its jobs name (``payload.booking_id``): the job a
    booking change enqueues anyway carries its publishing, so the request path sends nothing more.
    A failure to publish never fails the jobs: the events stay in the log for the reconciler."""

    def run(batch: list[jobs.Job]) -> Mapping[str, Exception | None]:
        outcome = handler(batch)
        ids: list[UUID] = []
        for job in batch:
            try:
                ids.append(UUID(str(job.payload.get("booking_id"))))
            except ValueError:
                continue
        try:
            publish_bookings(ids)
        except Exception as exc:  # noqa: BLE001 - the database went away: the reconciler publishes them
            logger.warning("event publishing failed", extra={"bookings": len(ids), **exception_facts(exc)})
        return outcome

    return run


def reconcile_publish(grace_seconds: int, limit: int) -> int:
    """The reconciler: publish what a failed PutEvents (or a lost job, or a dead worker) left
    unpublished for longer than ``grace_seconds``. Returns how many it published."""
    aggregates = repository.backlog(get_db(), grace_seconds=grace_seconds, limit=limit)
    if not aggregates:
        return 0
    published, failed = publish(aggregates)
    logger.warning(
        "reconciler published left-behind events",
        extra={"aggregates": len(aggregates), "published": published, "failed": failed},
    )
    return published
