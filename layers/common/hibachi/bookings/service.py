"""Use cases of bookings, one module per concept, and the reads; the handlers and the MCP tools
import them from here:

- ``slots``: when a booking may start and what it occupies; ``GET /availability``;
- ``search``: ``POST /bookings/search``;
- ``commands``: create (one round trip), cancel, reschedule;
- here: ``GET /bookings/{id}`` and its event log.
"""

from __future__ import annotations

from uuid import UUID

from hibachi.bookings import repository
from hibachi.bookings.answers import not_found, to_out
from hibachi.bookings.commands import cancel_booking, create_booking, legacy_request_hash, reschedule_booking
from hibachi.bookings.models import BookingOut
from hibachi.bookings.search import search_bookings
from hibachi.bookings.slots import SlotFull, availability
from hibachi.callers import Caller
from hibachi.db import get_db
from hibachi.events import repository as events_repository
from hibachi.events.models import EventPage

__all__ = [
    "SlotFull",
    "availability",
    "booking_events",
    "cancel_booking",
    "create_booking",
    "get_booking",
    "legacy_request_hash",
    "reschedule_booking",
    "search_bookings",
]


def get_booking(booking_id: UUID, *, caller: Caller) -> BookingOut:
    row = repository.get_booking(get_db(), booking_id, caller=caller)
    if row is None:
        raise not_found(booking_id)
    return to_out(row)


def booking_events(booking_id: UUID) -> EventPage:
    """``GET /bookings/{id}/events`` (staff only: the route's scope): the booking's event log, oldest
    first (one round trip)."""
    rows = events_repository.list_booking_events(get_db(), booking_id)
    if rows is None:
        raise not_found(booking_id)
    return EventPage.model_validate({"items": rows})
