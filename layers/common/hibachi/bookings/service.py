"""Use cases of bookings: create (one round trip), read, cancel, reschedule, availability, search.

Everything that needs only the request, the clock and the settings is decided here before the
database is asked (time zone, DST, lead time, service hours, the follow-up due time); the database
then decides capacity and idempotency in the one statement. After a change, a ``schedule_followup``
job is enqueued; a failed send never fails the request (the reconciler re-enqueues it).

Availability and a 409's ``next_free_starts`` come from one function (``_free_starts``): the
service-hours grid of each day (``times.service_starts``), minus the starts the lead time or the
horizon refuse, minus those without a free chef (one statement for all the days). So a start
availability lists passes every check of ``POST /bookings`` with the same duration, and a grid start
it does not list fails one of them (409 or 422). A start off the grid (18:15 on a 30-minute grid)
within service hours is checked the same way as any other: it is booked when a chef is free.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi import idempotency, jobs
from hibachi.bookings import repository, times
from hibachi.bookings.models import (
    AddressOut,
    AvailabilityDay,
    AvailabilityOut,
    AvailabilityQuery,
    BookingIn,
    BookingOut,
    BookingPage,
    BookingSearchIn,
    CustomerOut,
    RescheduleIn,
)
from hibachi.callers import Caller
from hibachi.db import Database, get_db
from hibachi.errors import (
    EXCLUSION_VIOLATION,
    AppError,
    Conflict,
    ConflictRetry,
    ConstraintViolation,
    NotFound,
    Unprocessable,
)
from hibachi.events import repository as events_repository
from hibachi.events.models import EventPage
from hibachi.followups.jobs import schedule_job
from hibachi.observability import MetricUnit, add_ms, logger, metrics, timed_ms
from hibachi.settings import Settings, get_settings

MAX_ADVANCE_DAYS = 3 * 365  # a start further ahead is refused (422): nobody plans a party that far
ALTERNATIVES = 5  # how many free start times a 409 offers: those of that day nearest the one asked for
_INVALID = "The request is not valid; see details."


class SlotFull(Conflict):
    code = "slot_full"


class BookingCancelled(Conflict):
    code = "booking_cancelled"


class BookingStarted(Conflict):
    code = "booking_started"


class OutsideServiceHours(Unprocessable):
    code = "outside_service_hours"


class ConversationMismatch(Unprocessable):
    """The assistant named a conversation other than the one it acts for."""

    code = "conversation_mismatch"


class VerificationRequired(AppError):
    """A search by a phone or email that was not verified in the caller's conversation."""

    status, code = 403, "verification_required"


def service_window(settings: Settings, zone: ZoneInfo) -> dict[str, Any]:
    """The service window as the API names it (in 422 details)."""
    return {
        "first_start": settings.service_first_start.strftime("%H:%M"),
        "last_start": settings.service_last_start.strftime("%H:%M"),
        "step_minutes": settings.slot_step_minutes,
        "timezone": zone.key,
    }


def _invalid(field: str, msg: str, type_: str) -> Unprocessable:
    return Unprocessable(_INVALID, details=[{"loc": ["body", field], "msg": msg, "type": type_}])


def wall_time(start: datetime, zone: ZoneInfo) -> datetime:
    """``times.wall_time``, its refusal a 422 on ``event_start``."""
    try:
        return times.wall_time(start, zone)
    except times.LocalTimeError as exc:
        raise _invalid("event_start", exc.message, exc.kind) from None


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
    if not times.in_service_hours(local_start, first=settings.service_first_start, last=settings.service_last_start):
        window = service_window(settings, zone)
        raise OutsideServiceHours(
            f"Events start between {window['first_start']} and {window['last_start']} local time; "
            "GET /availability lists the free start times.",
            details=[
                {
                    "loc": ["body", "event_start"],
                    "msg": f"must be between {window['first_start']} and {window['last_start']} local time",
                    "type": "outside_service_hours",
                    "window": window,
                }
            ],
        )
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


def _zone(name: str) -> ZoneInfo:
    """A stored booking's zone; UTC for one Python cannot load (written before migration 0009 checked
    zones), so one such row never fails a page of search results for everyone."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        logger.warning("a stored booking has a time zone Python does not know; shown in UTC")
        return ZoneInfo("UTC")


def to_out(row: Mapping[str, Any]) -> BookingOut:
    zone = _zone(row["timezone"])
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


def _free_starts(
    days: list[date],
    zone: ZoneInfo,
    duration_minutes: int,
    settings: Settings,
    now: datetime,
    exclude: UUID | None = None,
) -> dict[date, list[datetime]]:
    """The free start times (aware, in ``zone``, ascending) of each local day in ``days``: the grid
    of service hours, not earlier than the lead time allows nor later than the horizon, with a chef
    free for the event and the travel buffer (``exclude``: a booking whose own hold does not count).
    One statement for all the days; none when no day has a candidate."""
    earliest = now + timedelta(hours=settings.min_lead_hours)
    latest = now + timedelta(days=MAX_ADVANCE_DAYS)
    first_day, last_day = (earliest - timedelta(days=1)).date(), (latest + timedelta(days=1)).date()
    candidates: list[datetime] = []
    for day in days:
        if first_day <= day <= last_day:  # else none qualifies (and year 1 or 9999 stay off the UTC calendar)
            grid = times.service_starts(
                day,
                zone,
                first=settings.service_first_start,
                last=settings.service_last_start,
                step_minutes=settings.slot_step_minutes,
            )
            candidates += [s.astimezone(UTC) for s in grid if earliest <= s <= latest]
    free = repository.free_starts(
        get_db(),
        starts=candidates,
        hold=timedelta(minutes=duration_minutes + settings.travel_buffer_minutes),
        chef_count=settings.chef_count,
        exclude=exclude,
    )
    out: dict[date, list[datetime]] = {day: [] for day in days}
    for start in free:
        local = start.astimezone(zone)
        out[local.date()].append(local)
    return out


def availability(query: AvailabilityQuery) -> AvailabilityOut:
    """``GET /availability``: the free start times of ``query.days`` local days (one round trip)."""
    settings = get_settings()
    zone = times.load_zone(query.timezone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    if query.date < today:
        raise Unprocessable(
            _INVALID,
            details=[
                {
                    "loc": ["query", "date"],
                    "msg": f"{query.date.isoformat()} is in the past (today is {today.isoformat()} in {zone.key})",
                    "type": "date_past",
                }
            ],
        )
    try:
        days = [query.date + timedelta(days=k) for k in range(query.days)]
    except OverflowError:  # 9999-12-31 and later days
        raise Unprocessable(
            _INVALID,
            details=[{"loc": ["query", "date"], "msg": "the days asked for run past year 9999", "type": "date_range"}],
        ) from None
    free = _free_starts(days, zone, query.duration_minutes, settings, now)
    return AvailabilityOut(
        timezone=query.timezone,
        duration_minutes=query.duration_minutes,
        days=[AvailabilityDay(date=day, starts=free[day]) for day in days],
    )


def _slot_full(
    local_start: datetime,
    zone: ZoneInfo,
    duration_minutes: int,
    settings: Settings,
    now: datetime,
    exclude: UUID | None = None,
) -> SlotFull:
    """The 409, with the free start times of that day nearest the one asked for, earlier ones
    included (the availability of that day: one more statement, on this path only)."""
    requested = times.resolve_local(local_start, zone)
    free = _free_starts([local_start.date()], zone, duration_minutes, settings, now, exclude)[local_start.date()]
    nearest = sorted(sorted(free, key=lambda s: (abs(s - requested), s))[:ALTERNATIVES])
    return SlotFull(
        "No chef is free at that time. The details list the free start times that day nearest to it.",
        details={
            "event_start": local_start.isoformat(timespec="minutes"),
            "timezone": zone.key,
            "next_free_starts": [s.isoformat() for s in nearest],
        },
    )


# -- search ---------------------------------------------------------------------------------------------------
def _fingerprint(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _cursor(row: repository.BookingRow, fingerprint: str) -> str:
    key = {"s": row["event_start"].astimezone(UTC).isoformat(), "i": str(row["id"]), "f": fingerprint}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _after(cursor: str, fingerprint: str) -> tuple[datetime, UUID]:
    """The (event_start, id) a cursor continues after; 422 for one this search did not hand out."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = (datetime.fromisoformat(key["s"]), UUID(key["i"]))
        if key["f"] != fingerprint:
            raise ValueError("another search")
        if after[0].tzinfo is None:
            raise ValueError("naive")
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, OverflowError):
        raise _invalid("cursor", "is not a next_cursor of this search (same filters)", "cursor_invalid") from None
    return after


def search_bookings(query: BookingSearchIn, *, caller: Caller) -> BookingPage:
    """``POST /bookings/search``: one page of the bookings ``caller`` reaches matching every filter
    given, ordered by (event_start, id), and the cursor of the next page (one round trip). The
    cursor is the last key read, so each booking appears once across the pages, also while bookings
    are being made. Without any filter: the confirmed bookings from today (in each booking's zone)
    on. A phone or email filter that is not verified in the assistant's conversation: 403
    ``verification_required`` (decided in the statement; nothing read)."""
    filters = query.filters()
    fingerprint = _fingerprint(filters)
    after = _after(query.cursor, fingerprint) if query.cursor is not None else None
    params: dict[str, Any] = dict(filters) if filters else {"status": "confirmed", "today": True}
    rows = repository.search_bookings(get_db(), params, caller=caller, after=after, limit=query.limit + 1)
    if rows is None:
        unverified = [name for name in ("phone", "email") if name in filters]
        raise VerificationRequired(
            f"Searching by {' or '.join(unverified)} needs that identity verified in this conversation first "
            "(a one-time code to the customer); without it, search by this conversation or ask for the booking id.",
            details=[
                {"loc": ["body", name], "msg": "not verified in this conversation", "type": "verification_required"}
                for name in unverified
            ],
        )
    page = rows[: query.limit]
    next_cursor = _cursor(page[-1], fingerprint) if len(rows) > query.limit else None
    return BookingPage(items=[to_out(row) for row in page], next_cursor=next_cursor)


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
            raise _invalid("timezone", "is not a time zone the database knows", "timezone_unknown") from None
        raise
    if row is None:
        raise _slot_full(body.event_start, zone, body.duration_minutes, settings, now)
    if row["outcome"] is repository.Created.EXISTING:
        if row["request_hash"] not in (digest, legacy_request_hash(body)):
            raise idempotency.reused()
        return to_out(row), False
    _enqueue(schedule_job(row["id"], row["version"], correlation_id))
    return to_out(row), True


def _not_found(booking_id: UUID) -> NotFound:
    """No such booking, or none the caller reaches: the same answer, so it reveals nothing."""
    return NotFound(f"Booking {booking_id} does not exist.")


def get_booking(booking_id: UUID, *, caller: Caller) -> BookingOut:
    row = repository.get_booking(get_db(), booking_id, caller=caller)
    if row is None:
        raise _not_found(booking_id)
    return to_out(row)


def booking_events(booking_id: UUID) -> EventPage:
    """``GET /bookings/{id}/events`` (staff only: the route's scope): the booking's event log, oldest
    first (one round trip)."""
    rows = events_repository.list_booking_events(get_db(), booking_id)
    if rows is None:
        raise _not_found(booking_id)
    return EventPage.model_validate({"items": rows})


def cancel_booking(booking_id: UUID, *, caller: Caller, correlation_id: str | None) -> BookingOut:
    """Cancel (one round trip, with its ``Booking Cancelled`` event by ``caller``; idempotent: a
    cancelled booking is returned as it is, and no event is written again)."""
    db = get_db()
    for _ in range(2):
        row = repository.cancel_booking(db, booking_id, caller=caller)
        if row is None:
            raise _not_found(booking_id)
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
            raise _not_found(self.booking_id)
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
