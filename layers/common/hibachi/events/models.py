"""The events' vocabulary and their API shape, without the SQL (docs/EVENTS.md is the contract)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    """``events.type``: the EventBridge detail-type, one per kind of change."""

    BOOKING_CREATED = "Booking Created"
    BOOKING_RESCHEDULED = "Booking Rescheduled"  # the start moved (old and new in ``changes``)
    BOOKING_DETAILS_CHANGED = "Booking Details Changed"  # guest count or length, same start
    BOOKING_CANCELLED = "Booking Cancelled"
    BOOKING_FOLLOWUP_SENT = "Booking Follow-up Sent"
    BOOKING_REMINDER_SENT = "Booking Reminder Sent"
    CONVERSATION_NEEDS_ATTENTION = "Conversation Needs Attention"  # a conversation's event (escalation)


class AggregateType(StrEnum):
    BOOKING = "booking"
    CONVERSATION = "conversation"


# EventBridge ``Source`` per aggregate type
SOURCES: dict[str, str] = {
    AggregateType.BOOKING: "hibachi.bookings",
    AggregateType.CONVERSATION: "hibachi.conversations",
}

# The worker's actor (CALLER.md's SYSTEM.actor()): jobs act for nobody but the system.
SYSTEM_ACTOR: dict[str, Any] = {"kind": "system", "via": "system"}


class EventOut(BaseModel):
    """One event as ``GET /bookings/{id}/events`` lists it (and EventBridge's ``detail`` carries it)."""

    model_config = ConfigDict(defer_build=True)

    id: UUID
    type: str = Field(description="the EventBridge detail-type, e.g. 'Booking Created'")
    version: int = Field(description="the booking's version after the change")
    occurred_at: datetime
    actor: dict[str, Any] = Field(
        description="who: kind (staff, assistant, system), via (the REST route key, mcp:<tool>, system), and "
        "sub, client_id, conversation_id when known"
    )
    booking_id: UUID | None = None
    conversation_id: str | None = None
    data: dict[str, Any] = Field(
        description="'booking': the booking after the change (no customer contact data); 'changes': old and new values"
    )
    published_at: datetime | None = Field(default=None, description="when the worker published it to EventBridge")


class EventPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[EventOut]
