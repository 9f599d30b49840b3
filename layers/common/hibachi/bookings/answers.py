"""What the use cases of bookings answer with: the booking as the API shows it (``to_out``), the
404 that reveals nothing (``not_found``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hibachi.bookings.models import AddressOut, BookingOut, CustomerOut
from hibachi.errors import NotFound
from hibachi.observability import logger


def not_found(booking_id: UUID) -> NotFound:
    """No such booking, or none the caller reaches: the same answer, so it reveals nothing."""
    return NotFound(f"Booking {booking_id} does not exist.")


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
