"""The local-time rules of bookings (hibachi.bookings.times): DST gaps and folds, the follow-up due
time on ordinary and DST days, the Scheduler expression and the service-hours grid of start times."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hibachi.bookings.times import (
    LocalTimeError,
    followup_due,
    in_service_hours,
    load_zone,
    resolve_local,
    schedule_expression,
    service_starts,
)

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
RULE = {"delay_hours": 24, "earliest_hour": 10, "latest_hour": 19}


def local(zone: ZoneInfo, text: str) -> datetime:
    """An aware local time (must be unambiguous)."""
    return resolve_local(datetime.fromisoformat(text), zone)


# -- resolve_local ------------------------------------------------------------------------------------------
def test_an_ordinary_local_time_resolves_to_its_instant():
    start = resolve_local(datetime(2026, 12, 5, 18, 30), LA)
    assert start.astimezone(UTC) == datetime(2026, 12, 6, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "text"),
    [(LA, "2027-03-14T02:30"), (LA, "2027-03-14T02:00"), (LA, "2027-03-14T02:59"), (BERLIN, "2027-03-28T02:15")],
)
def test_a_time_in_the_spring_forward_gap_is_refused(zone, text):
    with pytest.raises(LocalTimeError) as info:
        resolve_local(datetime.fromisoformat(text), zone)
    assert info.value.kind == "dst_gap" and "does not exist" in info.value.message


@pytest.mark.parametrize(
    ("zone", "text"), [(LA, "2027-11-07T01:30"), (LA, "2027-11-07T01:00"), (BERLIN, "2027-10-31T02:30")]
)
def test_a_time_in_the_fall_back_fold_is_refused(zone, text):
    with pytest.raises(LocalTimeError) as info:
        resolve_local(datetime.fromisoformat(text), zone)
    assert info.value.kind == "dst_ambiguous" and "happens twice" in info.value.message


@pytest.mark.parametrize(
    ("zone", "text"),
    [(LA, "2027-03-14T03:00"), (LA, "2027-03-14T01:59"), (LA, "2027-11-07T02:00"), (LA, "2027-11-07T00:59")],
)
def test_times_next_to_a_transition_are_fine(zone, text):
    assert resolve_local(datetime.fromisoformat(text), zone).replace(tzinfo=None) == datetime.fromisoformat(text)


def test_aware_input_is_a_programming_error():
    with pytest.raises(ValueError, match="naive"):
        resolve_local(datetime(2026, 12, 5, 18, tzinfo=UTC), LA)


@pytest.mark.parametrize(
    "name", ["America/Los_Angeles", "UTC", "Europe/Berlin", "Asia/Kolkata", "America/Argentina/Salta"]
)
def test_iana_zones_load(name):
    assert load_zone(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Base",
        "",
        "../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "posix/Europe/Berlin",
        "right/UTC",
        "posixrules",
        "America/",
        "america/los_angeles",
        "Europe/Berlin\x00",
    ],
)
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="time zone"):
        load_zone(name)


# -- followup_due -------------------------------------------------------------------------------------------
def test_due_within_polite_hours_is_not_moved():
    end = local(LA, "2026-12-05T14:00")
    assert followup_due(end, LA, **RULE) == end.astimezone(UTC) + timedelta(hours=24)


def test_due_before_the_earliest_hour_moves_to_it_the_same_day():
    end = local(LA, "2026-12-05T02:30")  # a late party: due 02:30 next day
    assert followup_due(end, LA, **RULE) == local(LA, "2026-12-06T10:00").astimezone(UTC)


def test_due_after_the_latest_hour_moves_to_the_next_morning():
    end = local(LA, "2026-12-05T21:00")
    assert followup_due(end, LA, **RULE) == local(LA, "2026-12-07T10:00").astimezone(UTC)


def test_the_window_edges():
    assert followup_due(local(LA, "2026-12-05T19:00"), LA, **RULE) == local(LA, "2026-12-06T19:00").astimezone(UTC)
    late = local(LA, "2026-12-05T19:00") + timedelta(seconds=1)
    assert followup_due(late, LA, **RULE) == local(LA, "2026-12-07T10:00").astimezone(UTC)
    assert followup_due(local(LA, "2026-12-05T10:00"), LA, **RULE) == local(LA, "2026-12-06T10:00").astimezone(UTC)


def test_24_hours_across_spring_forward_is_a_real_day_then_polite():
    # ends 18:30 PST on Saturday; 24 real hours later is 19:30 PDT on Sunday: past 19:00
    end = local(LA, "2027-03-13T18:30")
    due = followup_due(end, LA, **RULE)
    assert due == local(LA, "2027-03-15T10:00").astimezone(UTC)
    # ends 17:30 PST: 24 h later is 18:30 PDT, inside the window, not moved
    end = local(LA, "2027-03-13T17:30")
    assert followup_due(end, LA, **RULE) == end.astimezone(UTC) + timedelta(hours=24)
    assert followup_due(end, LA, **RULE).astimezone(LA).hour == 18


def test_24_hours_across_fall_back_is_a_real_day_then_polite():
    # ends 09:30 PDT on Saturday; 24 real hours later is 08:30 PST on Sunday: moved to 10:00 PST
    end = local(LA, "2027-11-06T09:30")
    due = followup_due(end, LA, **RULE)
    assert due == local(LA, "2027-11-07T10:00").astimezone(UTC)
    assert due.astimezone(LA).utcoffset() == timedelta(hours=-8)


def test_the_next_morning_after_a_transition_night_is_local_ten():
    # due late on the Saturday before Berlin springs forward: next day 10:00 CEST (UTC+2)
    end = local(BERLIN, "2027-03-26T20:30")
    due = followup_due(end, BERLIN, **RULE)
    assert due == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    assert due.astimezone(BERLIN).hour == 10


def test_a_polite_hour_inside_a_gap_maps_past_the_gap():
    # a rule whose earliest hour is 2 on the night LA springs forward: 02:00 does not exist
    end = local(LA, "2027-03-13T01:00")
    due = followup_due(end, LA, delay_hours=24, earliest_hour=2, latest_hour=19)
    assert due.astimezone(LA).replace(tzinfo=None) == datetime(2027, 3, 14, 3, 0)


def test_demo_delays_are_not_moved():
    end = local(LA, "2026-12-05T23:30")
    assert followup_due(end, LA, delay_hours=0.01, earliest_hour=10, latest_hour=19) == end.astimezone(UTC) + timedelta(
        seconds=36
    )
    assert followup_due(end, LA, delay_hours=0, earliest_hour=10, latest_hour=19) == end.astimezone(UTC)


def test_due_is_always_utc_and_never_before_the_delay():
    start = local(LA, "2026-12-01T00:00")
    for minutes in range(0, 48 * 60, 17):
        end = start + timedelta(minutes=minutes)
        due = followup_due(end, LA, **RULE)
        assert due.tzinfo is UTC and due >= end + timedelta(hours=24)
        assert 10 <= due.astimezone(LA).hour <= 19


def test_bad_rules_and_naive_input_are_errors():
    with pytest.raises(ValueError, match="aware"):
        followup_due(datetime(2026, 12, 5, 18), LA, **RULE)
    with pytest.raises(ValueError, match="earliest_hour"):
        followup_due(local(LA, "2026-12-05T18:00"), LA, delay_hours=24, earliest_hour=20, latest_hour=19)


# -- schedule_expression ------------------------------------------------------------------------------------
def test_schedule_expression_is_local_and_rounded_up_to_the_minute():
    due = local(LA, "2026-12-07T10:00").astimezone(UTC)
    assert schedule_expression(due, LA) == ("at(2026-12-07T10:00:00)", "America/Los_Angeles")
    assert schedule_expression(due + timedelta(seconds=1), LA) == ("at(2026-12-07T10:01:00)", "America/Los_Angeles")


def test_schedule_expression_in_a_repeated_hour_is_utc():
    first_130 = resolve_local(datetime(2027, 11, 7, 0, 30), LA).astimezone(UTC) + timedelta(hours=1)  # 01:30 PDT
    assert schedule_expression(first_130, LA) == (f"at({first_130.replace(tzinfo=None):%Y-%m-%dT%H:%M:%S})", "UTC")


# -- service_starts, in_service_hours --------------------------------------------------------------------------
def _hm(starts: list[datetime]) -> list[str]:
    return [f"{s:%H:%M}" for s in starts]


def test_service_starts_are_the_grid_from_the_first_to_the_last_start_with_local_offsets():
    starts = service_starts(date(2026, 12, 5), LA, first=time(11, 0), last=time(20, 0), step_minutes=30)
    assert _hm(starts) == [f"{h:02d}:{m:02d}" for h in range(11, 21) for m in (0, 30)][:-1]  # 11:00 .. 20:00
    assert all(s.utcoffset() == timedelta(hours=-8) for s in starts)
    assert _hm(service_starts(date(2026, 12, 5), LA, first=time(11, 15), last=time(12, 30), step_minutes=45)) == [
        "11:15",
        "12:00",
    ]


def test_service_starts_skip_the_gap_and_the_fold():
    whole_day = {"first": time(0, 0), "last": time(23, 30), "step_minutes": 30}
    spring = service_starts(date(2027, 3, 14), LA, **whole_day)
    assert _hm(spring)[:5] == ["00:00", "00:30", "01:00", "01:30", "03:00"]  # 02:00 and 02:30 do not exist
    assert spring[3].utcoffset() == timedelta(hours=-8) and spring[4].utcoffset() == timedelta(hours=-7)
    fall = service_starts(date(2027, 11, 7), LA, **whole_day)
    assert _hm(fall)[:4] == ["00:00", "00:30", "02:00", "02:30"]  # 01:00 and 01:30 happen twice
    assert len(spring) == 46 and len(fall) == 46


def test_in_service_hours_includes_both_ends():
    window = {"first": time(11, 0), "last": time(20, 0)}
    assert in_service_hours(datetime(2026, 12, 5, 11, 0), **window)
    assert in_service_hours(datetime(2026, 12, 5, 20, 0), **window)
    assert in_service_hours(datetime(2026, 12, 5, 18, 15), **window)
    assert not in_service_hours(datetime(2026, 12, 5, 10, 59), **window)
    assert not in_service_hours(datetime(2026, 12, 5, 20, 1), **window)
    assert not in_service_hours(datetime(2026, 12, 5, 23, 0), **window)
