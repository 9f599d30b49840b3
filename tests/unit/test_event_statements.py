"""Every change is an event, by construction (GUIDE.md principle 10; issue 20): every SQL statement
of the application that changes a booking (an INSERT into or UPDATE of ``bookings``), or marks a
follow-up sent, carries the event insert (``hibachi.events.repository.booking_event``) as a CTE of
the same statement. A new statement that writes a booking without its event fails here.

The statements are found by scanning the application package for every string constant (module
attributes, and the SQL composed at import), so a statement added anywhere in ``hibachi`` is seen.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import hibachi

WRITES_BOOKING = re.compile(r"\b(INSERT\s+INTO\s+bookings\b|UPDATE\s+bookings\b)", re.IGNORECASE)
MARKS_SENT = re.compile(r"UPDATE\s+followups\b[^;]*'sent'", re.IGNORECASE | re.DOTALL)
EVENT_INSERT = re.compile(r"INSERT\s+INTO\s+events\s*\(", re.IGNORECASE)
# an UPDATE of bookings that sets only these columns is bookkeeping, not a change of the booking
BOOKKEEPING = {"followup_version"}


def _statements() -> dict[str, str]:
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(hibachi.__path__, "hibachi."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, str) and re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b", value):
                found[f"{info.name}.{name}"] = value
    return found


def _set_columns(update: str) -> set[str]:
    """The columns an ``UPDATE bookings ... SET a = ..., b = ... FROM/WHERE/RETURNING`` assigns."""
    match = re.search(
        r"UPDATE\s+bookings\b\s*\w*\s+SET\s+(.*?)\s+(FROM|WHERE|RETURNING)\b", update, re.DOTALL | re.IGNORECASE
    )
    assert match, update
    return {m.group(1) for m in re.finditer(r"(?:^|,)\s*(\w+)\s*=", match.group(1))}


def _booking_updates(text: str) -> list[str]:
    return [text[m.start() :] for m in re.finditer(r"UPDATE\s+bookings\b", text, re.IGNORECASE)]


def test_the_scan_sees_the_booking_statements():
    found = _statements()
    for name in (
        "hibachi.bookings.repository.CREATE_BOOKING",
        "hibachi.bookings.repository.CANCEL_BOOKING",
        "hibachi.bookings.repository.RESCHEDULE_BOOKING",
        "hibachi.followups.repository.FINISH_SENDS",
    ):
        assert name in found, name


def test_every_statement_that_changes_a_booking_writes_its_event():
    missing = []
    for name, text in _statements().items():
        changes = bool(MARKS_SENT.search(text))
        if WRITES_BOOKING.search(text):
            inserts = re.search(r"INSERT\s+INTO\s+bookings\b", text, re.IGNORECASE)
            updates = [u for u in _booking_updates(text) if not _set_columns(u) <= BOOKKEEPING]
            changes = changes or bool(inserts) or bool(updates)
        if changes and not EVENT_INSERT.search(text):
            missing.append(name)
    assert missing == [], f"statements that change a booking without writing its event: {missing}"


def test_the_bookkeeping_exception_is_only_the_followup_mark():
    exempt = [
        name for name, text in _statements().items() if WRITES_BOOKING.search(text) and not EVENT_INSERT.search(text)
    ]
    assert exempt == ["hibachi.followups.repository.FINISH_SCHEDULES"]


def test_the_event_insert_has_one_owner():
    """Only ``booking_event`` writes the INSERT (statements compose it): one place decides the columns."""
    import inspect

    from hibachi.events import repository

    owners = []
    for info in pkgutil.walk_packages(hibachi.__path__, "hibachi."):
        source = inspect.getsource(importlib.import_module(info.name))
        if EVENT_INSERT.search(source):
            owners.append(info.name)
    assert owners == [repository.__name__]


def test_the_check_flags_a_statement_without_its_event():
    """The detector itself: a cancel without the event CTE is caught, one with it is not."""
    from hibachi.bookings.repository import CANCEL_BOOKING

    bare = "UPDATE bookings SET status = 'cancelled', version = version + 1 WHERE id = %(id)s"
    assert WRITES_BOOKING.search(bare) and not _set_columns(_booking_updates(bare)[0]) <= BOOKKEEPING
    assert not EVENT_INSERT.search(bare)
    assert EVENT_INSERT.search(CANCEL_BOOKING)
    mark = "WITH s AS (UPDATE bookings b SET followup_version = d.version FROM d WHERE b.id = d.id) SELECT 1"
    assert _set_columns(_booking_updates(mark)[0]) <= BOOKKEEPING
