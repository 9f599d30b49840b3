"""The changes to bookings: create (one round trip), cancel, reschedule.

The request is checked and its slot planned before the database is asked (``slots.plan_slot``);
the database then decides capacity and idempotency in the one statement. After a change, a
``schedule_followup`` job is enqueued; a failed send never fails the request (the reconciler
re-enqueues it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi import idempotency, jobs
from hibachi.bookings import repository, times
from hibachi.bookings.answers import not_found, to_out
from hibachi.bookings.models import BookingIn, BookingOut, RescheduleIn
from hibachi.bookings.slots import _slot_full, plan_slot, wall_time
from hibachi.callers import Caller
from hibachi.db import Database, get_db
from hibachi.errors import EXCLUSION_VIOLATION, Conflict, ConflictRetry, ConstraintViolation, Unprocessable, invalid
from hibachi.followups.jobs import schedule_job
from hibachi.observability import MetricUnit, add_ms, metrics, timed_ms
from hibachi.settings import Settings, get_settings


class BookingCancelled(Conflict):
    code = "booking_cancelled"


class BookingStarted(Conflict):
    code = "booking_started"


class ConversationMismatch(Unprocessable):
    """The assistant named a conversation other than the one it acts for."""

    code = "conversation_mismatch"


CREATE_ROUTE = "POST /bookings"
RESCHEDULE_ROUTE = "PATCH /bookings/{booking_id}"
_TIMES = ("event_start", "event_end", "followup_due_at", "created_at", "updated_at", "cancelled_at")


def request_hash(body: BookingIn) -> str:
    """The create request's hash (hibachi.idempotency: route and normalized body, key order free)."""
    return idempotency.request_hash(CREATE_ROUTE, {}, body.model_dump(mode="json"))


def legacy_request_hash(body: BookingIn) -> str:
    """How bookings stored before keys were per caller hashed their request: the body alone."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _stored_answer(response: dict[str, Any]) -> dict[str, Any]:
    """A booking row kept as JSON (booking_changes.response) as the row ``to_out`` reads."""
    return {k: datetime.fromisoformat(v) if k in _TIMES and isinstance(v, str) else v for k, v in response.items()}


def _enqueue(job: jobs.Job) -> None:
    with timed_ms() as elapsed:
        sent = jobs.get_queue().send(job)
    add_ms("EnqueueTime", elapsed[0])
    if not sent:
        metrics.add_metric(name="EnqueueFailed", unit=MetricUnit.Count, value=1)


def in_conversation(body: BookingIn, caller: Caller) -> BookingIn:
    """The booking as the caller may make it: linked to the caller's conversation (the host's
    header) when the body names none; 422 ``conversation_mismatch`` when the assistant names another
    (its confirmation would land in a chat it does not act for). Staff may name any."""
    if caller.conversation_id is None or body.conversation_id == caller.conversation_id:
        return body
    if body.conversation_id is None:
        return body.model_copy(update={"conversation_id": caller.conversation_id})
    if caller.staff:
        return body
    raise ConversationMismatch(
        "conversation_id names another conversation than the one this request acts for; leave it out.",
        details=[
            {
                "loc": ["body", "conversation_id"],
                "msg": "must be the conversation of the Hibachi-Conversation header, or absent",
                "type": "conversation_mismatch",
            }
        ],
    )


def create_booking(
    body: BookingIn, *, caller: Caller, idempotency_key: str | None, correlation_id: str | None
) -> tuple[BookingOut, bool]:
    """Book a chef (one round trip: the booking and its ``Booking Created`` event), then enqueue the
    follow-up job. Returns (booking, created).

    ``caller.owner`` scopes ``idempotency_key`` (hibachi.idempotency); the request it names is the
    booking as linked to the caller's conversation (``in_conversation``), so one key used in two
    conversations is two requests (422), never the other conversation's booking. ``caller.actor()``
    is the event's actor."""
    body = in_conversation(body, caller)
    idempotency.check(caller.owner, idempotency_key)
    settings = get_settings()
    zone = times.load_zone(body.timezone)
    now = datetime.now(UTC)
    # a start with the zone's offset is the same request as the wall time alone (the same hash)
    body = body.model_copy(update={"event_start": wall_time(body.event_start, zone)})
    slot = plan_slot(body.event_start, zone, body.duration_minutes, settings, now)
    digest = request_hash(body)
    fields = {
        **slot.params(body.duration_minutes, body.guest_count, settings.chef_count),
        "timezone": body.timezone,
        "name": body.customer.name,
        "phone": body.customer.phone,
        # stored in lower case and searched so (migration 0011); the request hash keeps what was sent
        "email": body.customer.email.lower(),
        "address": body.address.model_dump(mode="json"),
        "conversation_id": body.conversation_id,
        "notes": body.notes,
    }
    try:
        row = repository.create_booking(
            get_db(),
            fields=fields,
            caller=caller.owner or None,
            key=idempotency_key,
            request_hash=digest,
            attempts=settings.chef_count + 2,
            actor=caller.actor(),
        )
    except ConstraintViolation as exc:
        if exc.constraint == "bookings_timezone_known":  # Python's tzdata knows it, PostgreSQL does not
            raise invalid("body", "timezone", "is not a time zone the database knows", "timezone_unknown") from None
        raise
    if row is None:
        raise _slot_full(body.event_start, zone, body.duration_minutes, settings, now)
    if row["outcome"] is repository.Created.EXISTING:
        if row["request_hash"] not in (digest, legacy_request_hash(body)):
            raise idempotency.reused()
        return to_out(row), False
    _enqueue(schedule_job(row["id"], row["version"], correlation_id))
    return to_out(row), True


def cancel_booking(booking_id: UUID, *, caller: Caller, correlation_id: str | None) -> BookingOut:
    """Cancel (one round trip, with its ``Booking Cancelled`` event by ``caller``; idempotent: a
    cancelled booking is returned as it is, and no event is written again)."""
    db = get_db()
    for _ in range(2):
        row = repository.cancel_booking(db, booking_id, caller=caller)
        if row is None:
            raise not_found(booking_id)
        if row["changed"]:
            _enqueue(schedule_job(row["id"], row["version"], correlation_id))
            return to_out(row)
        if row["status"] == "cancelled":
            return to_out(row)
        if row["event_start"] <= datetime.now(UTC):
            raise BookingStarted("The event has already started; the booking can no longer be cancelled.")
        # confirmed and upcoming, yet unchanged: a concurrent change committed after our snapshot
    raise ConflictRetry("The booking changed while it was being cancelled; retry.")


def _unchanged(current: repository.BookingRow, body: RescheduleIn, zone: ZoneInfo) -> bool:
    """Whether ``body`` asks for what the booking already is (the same start instant, length, head count)."""
    if body.duration_minutes not in (None, current["duration_minutes"]):
        return False
    if body.guest_count not in (None, current["guest_count"]):
        return False
    try:
        start = times.resolve_local(body.event_start, zone).astimezone(UTC)
    except (times.LocalTimeError, OverflowError):
        return False
    return bool(start == current["event_start"])


@dataclass
class _Move:
    """One PATCH (``reschedule_booking``): its request, and the booking as last read, decided again
    on each attempt."""

    booking_id: UUID
    given: RescheduleIn  # as sent: its offset is checked once the booking's zone is known
    body: RescheduleIn  # its wall time
    caller: Caller
    key: str | None
    digest: str | None
    correlation_id: str | None
    settings: Settings
    db: Database
    now: datetime
    state: repository.ForChange = field(init=False)  # set by read()

    def read(self) -> None:
        self.state = repository.get_for_change(self.db, self.booking_id, caller=self.caller, key=self.key)

    def attempt(self) -> BookingOut | None:
        """The answer, or None to decide again (on the booking as read now)."""
        answered, current = self.state.answered, self.state.booking
        if answered is not None and (current is not None or answered.request_hash != self.digest):
            # the key answered before: the same request (its hash names this booking, which the
            # caller reaches) gets that answer; another request is 422
            if answered.request_hash != self.digest:
                raise idempotency.reused()
            return to_out(_stored_answer(answered.response))
        if current is None:
            raise not_found(self.booking_id)
        if current["status"] == "cancelled":
            raise BookingCancelled("The booking is cancelled; it can no longer be changed.")
        if current["event_start"] <= self.now:
            raise BookingStarted("The event has already started; the booking can no longer be changed.")
        zone = ZoneInfo(current["timezone"])
        wall_time(self.given.event_start, zone)  # an offset must be the zone's then (422 offset_mismatch)
        if _unchanged(current, self.body, zone):
            return self._keep(current)
        return self._write(current, zone)

    def _keep(self, current: repository.BookingRow) -> BookingOut | None:
        """The booking as it is, with the key (if any) taken for this answer."""
        owner = self.caller.owner or None
        if self.key is None or self.digest is None or owner is None:
            return to_out(current)
        if repository.record_unchanged(
            self.db, self.booking_id, version=current["version"], caller=owner, key=self.key, request_hash=self.digest
        ):
            return to_out(current)
        self.read()  # the key was taken, or the booking changed, meanwhile
        return None

    def _write(self, current: repository.BookingRow, zone: ZoneInfo) -> BookingOut | None:
        """The change in one statement guarded by the version read; a full slot is a 409."""
        duration = self.body.duration_minutes if self.body.duration_minutes is not None else current["duration_minutes"]
        guests = self.body.guest_count if self.body.guest_count is not None else current["guest_count"]
        slot = plan_slot(self.body.event_start, zone, duration, self.settings, self.now)
        try:
            row = repository.reschedule_booking(
                self.db,
                self.booking_id,
                version=current["version"],
                current=current,
                slot=slot.params(duration, guests, self.settings.chef_count),
                caller=self.caller,
                key=self.key,
                request_hash=self.digest,
            )
        except ConstraintViolation as exc:
            if exc.sqlstate == EXCLUSION_VIOLATION:
                return None  # a concurrent booking took the chef we chose: choose again
            if exc.constraint == "booking_changes_pkey":
                self.read()  # a concurrent request with the same key changed it first
                return None
            raise
        except ConflictRetry:
            # Two moves into one free slot each wait for the other's new row (an UPDATE cannot use
            # the constraint as an ON CONFLICT arbiter, as create does); PostgreSQL rolls one back.
            # Nothing was changed: decide again (hibachi.db already retried twice).
            return None
        if row is not None and row["outcome"] is repository.Rescheduled.UPDATED:
            _enqueue(schedule_job(row["id"], row["version"], self.correlation_id))
            return to_out(row)
        if row is not None and row["outcome"] is repository.Rescheduled.FULL and row["version"] == current["version"]:
            raise _slot_full(self.body.event_start, zone, duration, self.settings, self.now, exclude=self.booking_id)
        self.read()  # gone, changed since we read it, or the key taken: decide again
        return None


def reschedule_booking(
    booking_id: UUID,
    body: RescheduleIn,
    *,
    caller: Caller,
    idempotency_key: str | None = None,
    correlation_id: str | None,
) -> BookingOut:
    """Move a confirmed, upcoming booking (two round trips: the booking's time zone must be known to
    read the new local start; the change itself is one statement guarded by the version read).

    A PATCH that asks for what the booking already is changes nothing: the booking as it is, no new
    version, no job. With ``idempotency_key`` (scoped to ``caller``), a retry gets the first answer;
    the key with another request (another body or booking) is 422. A booking the caller does not
    reach is 404, also for a key's earlier answer. The change writes its event (``Booking
    Rescheduled`` or ``Booking Details Changed``, by ``caller``) in its statement; no change, no event."""
    idempotency.check(caller.owner, idempotency_key)
    settings, db, now = get_settings(), get_db(), datetime.now(UTC)
    # the request as its wall time (an offset is checked once the booking's zone is known)
    wall = body.model_copy(update={"event_start": body.event_start.replace(tzinfo=None)})
    digest = None
    if idempotency_key is not None:
        digest = idempotency.request_hash(RESCHEDULE_ROUTE, {"booking_id": booking_id}, wall.model_dump(mode="json"))
    move = _Move(booking_id, body, wall, caller, idempotency_key, digest, correlation_id, settings, db, now)
    move.read()
    for _ in range(settings.chef_count + 3):
        if (answer := move.attempt()) is not None:
            return answer
    raise ConflictRetry("The booking is being changed concurrently; retry.")
