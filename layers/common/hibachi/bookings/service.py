"""Use cases of bookings: create (one round trip), read, cancel, reschedule.

Everything that needs only the request, the clock and the settings is decided here before the
database is asked (time zone, DST, lead time, the follow-up due time); the database then decides
capacity and idempotency in the one statement. After a change, a ``schedule_followup`` job is
enqueued; a failed send never fails the request (the reconciler re-enqueues it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from hibachi import jobs
from hibachi.bookings import repository, times
from hibachi.bookings.models import AddressOut, BookingIn, BookingOut, CustomerOut, RescheduleIn
from hibachi.db import get_db
from hibachi.errors import (
    EXCLUSION_VIOLATION,
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    NotFound,
    Unprocessable,
)
from hibachi.followups.service import schedule_job
from hibachi.observability import MetricUnit, add_ms, metrics, timed_ms
from hibachi.settings import Settings, get_settings

MAX_ADVANCE_DAYS = 3 * 365  # a start further ahead is refused (422): nobody plans a party that far
ALTERNATIVES = 5  # how many free start times a 409 offers
_INVALID = "The request is not valid; see details."


class SlotFull(Conflict):
    code = "slot_full"


class BookingCancelled(Conflict):
    code = "booking_cancelled"


class BookingStarted(Conflict):
    code = "booking_started"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


def _invalid(field: str, msg: str, type_: str) -> Unprocessable:
    return Unprocessable(_INVALID, details=[{"loc": ["body", field], "msg": msg, "type": type_}])


@dataclass(frozen=True)
class Slot:
    """The instants (UTC) a booking occupies: start, end, the chef's hold, the follow-up."""

    start: datetime
    end: datetime
    held_until: datetime
    followup_due: datetime

    def params(self, duration: int, guests: int, chef_count: int) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "held_until": self.held_until,
            "due": self.followup_due,
            "duration": duration,
            "guests": guests,
            "chef_count": chef_count,
        }


def plan_slot(local_start: datetime, zone: ZoneInfo, duration_minutes: int, settings: Settings, now: datetime) -> Slot:
    """Check the local start (DST, lead time, horizon) and compute the slot; 422 when it is refused."""
    try:
        start = times.resolve_local(local_start, zone).astimezone(UTC)
    except times.LocalTimeError as exc:
        raise _invalid("event_start", exc.message, exc.kind) from None
    except OverflowError:  # year 1 or 9999: off the calendar once in UTC
        raise _invalid("event_start", "is out of range", "event_start_out_of_range") from None
    lead = settings.min_lead_hours
    if start <= now:
        raise _invalid("event_start", "must be in the future", "event_start_past")
    if start < now + timedelta(hours=lead):
        raise _invalid("event_start", f"must be at least {lead:g} hours from now", "lead_time")
    if start > now + timedelta(days=MAX_ADVANCE_DAYS):
        raise _invalid("event_start", f"must be within {MAX_ADVANCE_DAYS} days from now", "too_far_ahead")
    end = start + timedelta(minutes=duration_minutes)  # in UTC: real minutes, also across a DST change
    if settings.followup_demo_delay_seconds is not None:  # demos only: due soon after booking
        due = now + timedelta(seconds=settings.followup_demo_delay_seconds)
    else:
        due = times.followup_due(
            end,
            zone,
            delay_hours=settings.followup_delay_hours,
            earliest_hour=settings.followup_earliest_hour,
            latest_hour=settings.followup_latest_hour,
        )
    return Slot(
        start=start, end=end, held_until=end + timedelta(minutes=settings.travel_buffer_minutes), followup_due=due
    )


def request_hash(body: BookingIn) -> str:
    """SHA-256 of the normalized request (defaults filled in, email normalized), key order free."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def to_out(row: dict[str, Any]) -> BookingOut:
    zone = ZoneInfo(row["timezone"])
    return BookingOut(
        id=row["id"],
        status=row["status"],
        version=row["version"],
        event_start=row["event_start"].astimezone(zone),
        event_end=row["event_end"].astimezone(zone),
        timezone=row["timezone"],
        duration_minutes=row["duration_minutes"],
        guest_count=row["guest_count"],
        chef_id=row["chef_id"],
        customer=CustomerOut(name=row["customer_name"], phone=row["customer_phone"], email=row["customer_email"]),
        address=AddressOut(**row["address"]),
        conversation_id=row["conversation_id"],
        notes=row["notes"],
        followup_due_at=row["followup_due_at"].astimezone(zone),
        created_at=row["created_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
        cancelled_at=row["cancelled_at"].astimezone(UTC) if row["cancelled_at"] else None,
    )


def _enqueue(job: jobs.Job) -> None:
    with timed_ms() as elapsed:
        sent = jobs.get_queue().send(job)
    add_ms("EnqueueTime", elapsed[0])
    if not sent:
        metrics.add_metric(name="EnqueueFailed", unit=MetricUnit.Count, value=1)


def _slot_full(
    local_start: datetime,
    zone: ZoneInfo,
    duration_minutes: int,
    settings: Settings,
    now: datetime,
    exclude: UUID | None = None,
) -> SlotFull:
    """The 409, with the next free start times that day (one more query, on this path only)."""
    not_before = now + timedelta(hours=settings.min_lead_hours)
    starts = [s.astimezone(UTC) for s in times.candidate_starts(local_start, zone, not_before=not_before)]
    hold = timedelta(minutes=duration_minutes + settings.travel_buffer_minutes)
    free = repository.free_starts(
        get_db(),
        starts=starts,
        ends=[s + hold for s in starts],
        chef_count=settings.chef_count,
        exclude=exclude,
        limit=ALTERNATIVES,
    )
    return SlotFull(
        "No chef is free at that time. The details list the next free start times that day.",
        details={
            "event_start": local_start.isoformat(timespec="minutes"),
            "timezone": zone.key,
            "next_free_starts": [f.astimezone(zone).isoformat() for f in free],
        },
    )


def create_booking(
    body: BookingIn, *, idempotency_key: str | None, correlation_id: str | None
) -> tuple[BookingOut, bool]:
    """Book a chef (one round trip), then enqueue the follow-up job. Returns (booking, created)."""
    settings = get_settings()
    zone = times.load_zone(body.timezone)
    now = datetime.now(UTC)
    slot = plan_slot(body.event_start, zone, body.duration_minutes, settings, now)
    digest = request_hash(body)
    fields = {
        **slot.params(body.duration_minutes, body.guest_count, settings.chef_count),
        "timezone": body.timezone,
        "name": body.customer.name,
        "phone": body.customer.phone,
        "email": body.customer.email,
        "address": body.address.model_dump(mode="json"),
        "conversation_id": body.conversation_id,
        "notes": body.notes,
    }
    row = repository.create_booking(
        get_db(), fields=fields, key=idempotency_key, request_hash=digest, attempts=settings.chef_count + 2
    )
    if row is None:
        raise _slot_full(body.event_start, zone, body.duration_minutes, settings, now)
    if row["outcome"] == "existing":
        if row["request_hash"] != digest:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different booking request; use a new key.",
                details=[
                    {
                        "loc": ["header", "idempotency-key"],
                        "msg": "already used with another body",
                        "type": "idempotency_key_reused",
                    }
                ],
            )
        return to_out(row), False
    _enqueue(schedule_job(row["id"], row["version"], correlation_id))
    return to_out(row), True


def get_booking(booking_id: UUID) -> BookingOut:
    row = repository.get_booking(get_db(), booking_id)
    if row is None:
        raise NotFound(f"Booking {booking_id} does not exist.")
    return to_out(row)


def cancel_booking(booking_id: UUID, *, correlation_id: str | None) -> BookingOut:
    """Cancel (one round trip; idempotent: a cancelled booking is returned as it is)."""
    db = get_db()
    for _ in range(2):
        row = repository.cancel_booking(db, booking_id)
        if row is None:
            raise NotFound(f"Booking {booking_id} does not exist.")
        if row["changed"]:
            _enqueue(schedule_job(row["id"], row["version"], correlation_id))
            return to_out(row)
        if row["status"] == "cancelled":
            return to_out(row)
        if row["event_start"] <= datetime.now(UTC):
            raise BookingStarted("The event has already started; the booking can no longer be cancelled.")
        # confirmed and upcoming, yet unchanged: a concurrent change committed after our snapshot
    raise Conflict("The booking changed while it was being cancelled; retry.")


def reschedule_booking(booking_id: UUID, body: RescheduleIn, *, correlation_id: str | None) -> BookingOut:
    """Move a confirmed, upcoming booking (two round trips: the booking's time zone must be known to
    read the new local start; the change itself is one statement guarded by the version read)."""
    settings = get_settings()
    db = get_db()
    now = datetime.now(UTC)
    current = repository.get_booking(db, booking_id)
    for _ in range(settings.chef_count + 3):
        if current is None:
            raise NotFound(f"Booking {booking_id} does not exist.")
        if current["status"] == "cancelled":
            raise BookingCancelled("The booking is cancelled; it can no longer be changed.")
        if current["event_start"] <= now:
            raise BookingStarted("The event has already started; the booking can no longer be changed.")
        zone = ZoneInfo(current["timezone"])
        duration = body.duration_minutes if body.duration_minutes is not None else current["duration_minutes"]
        guests = body.guest_count if body.guest_count is not None else current["guest_count"]
        slot = plan_slot(body.event_start, zone, duration, settings, now)
        try:
            row = repository.reschedule_booking(
                db,
                booking_id,
                version=current["version"],
                current_chef=current["chef_id"],
                slot=slot.params(duration, guests, settings.chef_count),
            )
        except ConstraintViolation as exc:
            if exc.sqlstate != EXCLUSION_VIOLATION:
                raise
            continue  # a concurrent booking took the chef we chose: choose again
        except DatabaseUnavailable as exc:
            # Two moves into one free slot each wait for the other's new row (an UPDATE cannot use
            # the constraint as an ON CONFLICT arbiter, as create does); PostgreSQL rolls one back.
            # Nothing was changed: decide again (hibachi.db already retried twice).
            if isinstance(exc.__cause__, psycopg.errors.DeadlockDetected):
                continue
            raise
        if row is None:
            current = None
            continue
        if row["outcome"] == "updated":
            _enqueue(schedule_job(row["id"], row["version"], correlation_id))
            return to_out(row)
        if row["version"] != current["version"] or row["status"] != current["status"]:
            current = row  # changed since we read it: decide again on the new state
            continue
        if row["outcome"] == "full":
            raise _slot_full(body.event_start, zone, duration, settings, now, exclude=booking_id)
        current = repository.get_booking(db, booking_id)  # changed after this statement's snapshot
    raise Conflict("The booking is being changed concurrently; retry.")
