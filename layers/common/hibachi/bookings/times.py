"""Local-time rules of bookings: pure functions of their arguments (no I/O, no settings, no clock).

- A booking's ``event_start`` is a wall-clock time in an IANA zone. A wall-clock time that does not
  exist (the hour skipped when clocks spring forward) or happens twice (the hour repeated when they
  fall back) is refused: ``resolve_local`` raises ``LocalTimeError`` (the API answers 422).
  Detected with PEP 495's ``fold``: both readings of a wall time have the same offset unless the
  time is in a gap or a fold.
- ``followup_due``: the follow-up is due ``delay_hours`` after the event ends, moved into a polite
  local hour: before ``earliest_hour`` -> that day at ``earliest_hour``; after ``latest_hour``:00 ->
  the next day at ``earliest_hour``. Below one hour of delay (a demo) the time is not moved.
- ``schedule_expression``: the EventBridge Scheduler ``at()`` expression and its time zone for a due
  instant, never earlier than the instant.
- ``service_starts``: the slot grid of one local day (service hours, every step), without the local
  times DST makes nonexistent or ambiguous: the candidates of availability and of a 409's
  ``next_free_starts``. ``in_service_hours``: the window check of ``POST``/``PATCH /bookings``.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The form of an IANA zone name (Area/Location[/Sublocation], ASCII); the API document states it
ZONE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"
_ZONE_NAME = re.compile(ZONE_NAME_PATTERN)


class LocalTimeError(ValueError):
    """A wall-clock time that does not name exactly one instant in its zone."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "dst_gap", "dst_ambiguous" or "offset_mismatch"
        self.message = message


# Names a tz database folder holds that are not zones clients or EventBridge Scheduler know.
_NOT_ZONES = ("posix/", "right/")
_NOT_ZONE_NAMES = frozenset({"posixrules", "localtime", "Factory", "leapseconds", "leap-seconds"})


def load_zone(name: str) -> ZoneInfo:
    """The zone named ``name`` (an IANA name such as ``America/Los_Angeles``); ``ValueError`` if unknown.

    Only names of the IANA database are accepted (not file paths, not ``posix/...``), so every zone
    we store is one that EventBridge Scheduler and the clients also know. (``available_timezones()``
    would be exact but walks the whole database: ~40 ms on the first request of each environment.)
    """
    if not _ZONE_NAME.match(name) or name.startswith(_NOT_ZONES) or name in _NOT_ZONE_NAMES:
        raise ValueError("not an IANA time zone name")
    try:
        zone = ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        raise ValueError("unknown time zone") from None
    return zone


def resolve_local(local: datetime, zone: ZoneInfo) -> datetime:
    """The one instant that the naive wall-clock time ``local`` names in ``zone`` (aware, in ``zone``)."""
    if local.tzinfo is not None:
        raise ValueError("expected a naive local date-time")
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        raise LocalTimeError(
            "dst_gap",
            f"{local.isoformat(timespec='minutes')} does not exist in {zone.key}: the clocks skip that hour "
            "(daylight saving time starts). Choose another start time.",
        )
    raise LocalTimeError(
        "dst_ambiguous",
        f"{local.isoformat(timespec='minutes')} happens twice in {zone.key}: the clocks repeat that hour "
        "(daylight saving time ends). Choose another start time.",
    )


def _offset(value: datetime) -> str:
    """``-08:00`` (``+00:00`` for UTC)."""
    text = value.isoformat()
    return text[-6:] if text[-6] in "+-" else "+00:00"


def wall_time(start: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of an event's start given with or without an offset: as it is when
    naive; else its local date and time, provided the offset is the one ``zone`` has then (the form
    availability lists, ``2026-12-05T18:30:00-08:00``). ``LocalTimeError`` ("offset_mismatch") when it
    is not, or when the wall time is in a DST gap or fold (``resolve_local``)."""
    if start.tzinfo is None:
        return start
    wall = start.replace(tzinfo=None)
    instant = resolve_local(wall, zone)
    if instant.utcoffset() != start.utcoffset():
        raise LocalTimeError(
            "offset_mismatch",
            f"{start.isoformat()} has the offset {_offset(start)}, but {zone.key} is at {_offset(instant)} on that "
            f"date and time ({wall.isoformat(timespec='minutes')} local). Send the start as check_availability lists "
            "it, or the local time without an offset.",
        )
    return wall


def followup_due(
    event_end: datetime, zone: ZoneInfo, *, delay_hours: float, earliest_hour: int, latest_hour: int
) -> datetime:
    """When the post-event follow-up is due (aware, UTC). See the module docstring for the rule."""
    if event_end.tzinfo is None:
        raise ValueError("event_end must be aware")
    if not 0 <= earliest_hour <= latest_hour <= 23:
        raise ValueError("need 0 <= earliest_hour <= latest_hour <= 23")
    due = event_end.astimezone(UTC) + timedelta(hours=delay_hours)
    if delay_hours < 1:
        return due
    local = due.astimezone(zone)
    # Comparisons and datetime.combine below are on wall-clock time, which is what the rule is about.
    opens = datetime.combine(local.date(), time(earliest_hour), tzinfo=zone)
    closes = datetime.combine(local.date(), time(latest_hour), tzinfo=zone)
    if local.replace(tzinfo=None) < opens.replace(tzinfo=None):
        moved = opens
    elif local.replace(tzinfo=None) > closes.replace(tzinfo=None):
        moved = datetime.combine(local.date() + timedelta(days=1), time(earliest_hour), tzinfo=zone)
    else:
        return due
    # A polite hour that falls in a DST gap (no real zone has one at 10:00, but the rule must hold)
    # maps to the instant just after the gap: fold=0 uses the offset before the transition.
    return moved.astimezone(UTC)


def schedule_expression(due: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """``(at(yyyy-mm-ddThh:mm:ss), time zone name)`` for EventBridge Scheduler, at or after ``due``.

    Scheduler fires within the minute of its ``at()`` time, so the time is rounded up to a whole
    minute (in UTC, where minutes are plain). A local time that happens twice (the hour repeated at
    the end of DST) would be ambiguous in the zone, so that rare case is expressed in UTC.
    """
    instant = due.astimezone(UTC)
    if instant.second or instant.microsecond:
        instant = instant.replace(second=0, microsecond=0) + timedelta(minutes=1)
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset():
        return f"at({instant.replace(tzinfo=None):%Y-%m-%dT%H:%M:%S})", "UTC"
    return f"at({wall:%Y-%m-%dT%H:%M:%S})", zone.key


def service_starts(day: date, zone: ZoneInfo, *, first: time, last: time, step_minutes: int) -> list[datetime]:
    """The start times ``day`` offers in ``zone`` (aware, in ``zone``, ascending): every
    ``step_minutes`` from ``first`` to ``last`` local time (both included), without the local times
    that do not exist or happen twice (``resolve_local`` refuses them)."""
    if step_minutes <= 0:
        raise ValueError("step_minutes must be positive")
    midnight = datetime.combine(day, time(0))
    out: list[datetime] = []
    for minutes in range(first.hour * 60 + first.minute, last.hour * 60 + last.minute + 1, step_minutes):
        try:
            out.append(resolve_local(midnight + timedelta(minutes=minutes), zone))
        except LocalTimeError:
            continue
    return out


def in_service_hours(local: datetime, *, first: time, last: time) -> bool:
    """Whether the local start ``local`` (naive or aware: its wall-clock time counts) is within the
    service window ``first``..``last`` (both included)."""
    return first <= local.time() <= last
