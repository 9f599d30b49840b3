"""Slots: when a booking may start and what it occupies, and the free start times (availability).

Everything that needs only the request, the clock and the settings is decided here before the
database is asked (time zone, DST, lead time, service hours, the follow-up due time); the database
then decides capacity in the booking's one statement.

Availability and a 409's ``next_free_starts`` come from one function (``_free_starts``): the
service-hours grid of each day (``times.service_starts``), minus the starts the lead time or the
horizon refuse, minus those without a free chef (one statement for all the days). So a start
availability lists passes every check of ``POST /bookings`` with the same duration, and a grid start
it does not list fails one of them (409 or 422). A start off the grid (18:15 on a 30-minute grid)
within service hours is checked the same way as any other: it is booked when a chef is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi.bookings import repository, times
from hibachi.bookings.models import AvailabilityDay, AvailabilityOut, AvailabilityQuery
from hibachi.db import get_db
from hibachi.errors import Conflict, Unprocessable, invalid
from hibachi.settings import Settings, get_settings

MAX_ADVANCE_DAYS = 3 * 365  # a start further ahead is refused (422): nobody plans a party that far
ALTERNATIVES = 5  # how many free start times a 409 offers: those of that day nearest the one asked for


class SlotFull(Conflict):
    code = "slot_full"


class OutsideServiceHours(Unprocessable):
    code = "outside_service_hours"


def service_window(settings: Settings, zone: ZoneInfo) -> dict[str, Any]:
    """The service window as the API names it (in 422 details)."""
    return {
        "first_start": settings.service_first_start.strftime("%H:%M"),
        "last_start": settings.service_last_start.strftime("%H:%M"),
        "step_minutes": settings.slot_step_minutes,
        "timezone": zone.key,
    }


def wall_time(start: datetime, zone: ZoneInfo) -> datetime:
    """``times.wall_time``, its refusal a 422 on ``event_start``."""
    try:
        return times.wall_time(start, zone)
    except times.LocalTimeError as exc:
        raise invalid("body", "event_start", exc.message, exc.kind) from None


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
        raise invalid("body", "event_start", exc.message, exc.kind) from None
    except OverflowError:  # year 1 or 9999: off the calendar once in UTC
        raise invalid("body", "event_start", "is out of range", "event_start_out_of_range") from None
    lead = settings.min_lead_hours
    if start <= now:
        raise invalid("body", "event_start", "must be in the future", "event_start_past")
    if start < now + timedelta(hours=lead):
        raise invalid("body", "event_start", f"must be at least {lead:g} hours from now", "lead_time")
    if start > now + timedelta(days=MAX_ADVANCE_DAYS):
        raise invalid("body", "event_start", f"must be within {MAX_ADVANCE_DAYS} days from now", "too_far_ahead")
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
        past = f"{query.date.isoformat()} is in the past (today is {today.isoformat()} in {zone.key})"
        raise invalid("query", "date", past, "date_past")
    try:
        days = [query.date + timedelta(days=k) for k in range(query.days)]
    except OverflowError:  # 9999-12-31 and later days
        raise invalid("query", "date", "the days asked for run past year 9999", "date_range") from None
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
